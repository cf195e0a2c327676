"""LightningModule around GainAKT3Exp: losses under the loss-weight schedule, metrics per split and
encoder, and the optimiser over the model's parameter groups."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from gainakt.errors import ConfigError
from gainakt.model.cuda_graphs import GraphedNetwork
from gainakt.model.gainakt3exp import ENCODER1_MODULES, GainAKT3Exp, ModelOutput
from gainakt.model.losses import gain_variance_loss, masked_bce, masked_mean, teacher_target, weighted_total
from gainakt.model.metrics import MaskedAccuracy, MaskedAUROC, WeightedMean
from gainakt.model.schedules import Schedule
from gainakt.run.checkpoint_io import read_checkpoint
from gainakt.verification.trajectories import BatchReadings, scored_rows

ENCODERS = ("enc1", "enc2")
SPLITS = ("train", "val", "test")
LOSS_TERMS = ("bce", "im", "var", "waviness", "mastery")
LR_GROUPS = ("gains", "curve")  # the model's groups with their own learning-rate multiplier
OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
PER_ENCODER_MONITOR = "val/per_encoder_auc"  # the mean of each encoder's best validation AUC so far
# Architecture options younger than the first checkpoints, each with the value that turns it off: a
# checkpoint saved before an option existed holds the network without it, so it loads with that value.
# (The guess and slip values only complete the signature: under response=threshold they build nothing.)
ADDED_ARCHITECTURE = {
    "response": "threshold", "guess_init": 0.25, "slip_init": 0.1, "guess_max": 0.5, "slip_max": 0.5,
    "learn_offset": False, "learn_temperature": False, "recency_enc1": "none", "recency_enc2": "none",
    "retriever": False, "skill_readout": False, "history_enc1": False, "recurrent_enc1": 0,
    "response_ability": False, "skill_ability": False, "skill_recency": False, "related_skills": 0,
    "recent_ability": 0.0, "skill_forgetting": False, "ability_in": "guess_slip",
}  # fmt: skip


def state_encoder(key: str) -> str | None:
    """The encoder ("enc1" or "enc2") that a key of the module's state dict belongs to, or None for
    state outside the network (metrics)."""
    parts = key.split(".")
    if parts[0] != "net":
        return None
    return "enc1" if parts[1] in ENCODER1_MODULES else "enc2"


class GainAKTModule(L.LightningModule):
    """Trains both encoders under a loss-weight schedule it applies itself.

    Args:
        num_skills, num_students: sizes taken from the data.
        variance_weight: weight of the gain-variance loss (0 turns it off).
        waviness_weight: weight of encoder 1's waviness loss (DKT+), relative to its BCE, so it
            trains while encoder 1 does: :func:`readout_waviness` between consecutive states, which
            needs the read-out (``skill_readout``); 0 turns it off.
        mastery_weight: weight, relative to encoder 2's (w_im), of a second encoder-2 loss on its
            prediction from mastery alone (:attr:`ModelOutput.mastery_logit`: the per-skill guess
            and slip around theta, none of the record terms). The record terms can explain the
            answers mastery does not; this asks mastery itself to explain them, so the gains carry
            more of each answer's news. Needs ``response=guess_slip``; 0 turns it off.
        teacher_share: share of encoder 2's training target that is encoder 1's prediction of the
            same answer (detached): (1 - share) * r + share * p_enc1. Used while encoder 1 trains
            (w_bce != 0), so a frozen, untrained encoder 1 never teaches; 0: the answers alone.
        lr_mults: learning-rate multiplier of each group of :data:`LR_GROUPS` (``optim.*_lr_mult``).
        schedule: (w_bce, w_im) per epoch; training refuses to start without one, so the weights
            can never silently fall back to (1, 1). Not needed to evaluate a checkpoint.
        optimizer: the configured optimiser class with its arguments (``optim``, a Hydra
            ``_partial_``), called with the model's parameter groups. Not needed to evaluate.
        compile: arguments of ``torch.compile`` for the network (e.g. ``{"dynamic": True}``), or
            None to run it eagerly. Not saved with the checkpoint: evaluation runs eagerly unless
            asked otherwise.
        cudnn_attention: let PyTorch choose cuDNN's attention kernels on a GPU. cuDNN builds a plan
            for every new batch shape (tens of milliseconds each), which bucketed batches pay
            through their first epochs; off, PyTorch's flash and memory-efficient kernels run.
            A process-wide switch, set when the model is configured.
        cuda_graphs: train through CUDA graphs, one captured forward and backward per batch shape
            (:class:`GraphedNetwork`): one GPU only, not with ``compile``. Evaluation runs eagerly.
        clip_per_encoder: clip each encoder's gradient norm to the Trainer's ``gradient_clip_val`` on
            its own. The encoders share no parameter; one joint norm would let a large encoder-2
            gradient shrink encoder 1's step (and the reverse), the only coupling left between them.
        **architecture: passed to :class:`GainAKT3Exp` (d_model, n_heads, accumulate, ...).
    """

    def __init__(
        self,
        num_skills: int,
        num_students: int,
        variance_weight: float,
        lr_mults: Mapping[str, float],
        schedule: Schedule | None = None,
        optimizer: OptimizerFactory | None = None,
        compile: Mapping[str, Any] | None = None,  # these defaults serve checkpoints that do not store
        cudnn_attention: bool = True,  # the value (older ones lack clip_per_encoder or teacher_share); the configured
        cuda_graphs: bool = False,  # values are in conf/model/gainakt.yaml
        clip_per_encoder: bool = False,
        teacher_share: float = 0.0,
        waviness_weight: float = 0.0,
        mastery_weight: float = 0.0,
        **architecture: Any,
    ) -> None:
        super().__init__()
        # checkpoints stay plain data, and how to run the network is this process's choice
        self.save_hyperparameters(ignore=("schedule", "optimizer", "compile", "cudnn_attention", "cuda_graphs"))
        unknown = set(lr_mults) ^ set(LR_GROUPS)
        if unknown:
            raise ConfigError(f"lr_mults: expected exactly the groups {', '.join(LR_GROUPS)}; got {sorted(lr_mults)}")
        self.net = GainAKT3Exp(num_skills=num_skills, num_students=num_students, mastery_output=bool(mastery_weight),
                               **architecture)  # fmt: skip
        self.schedule = schedule
        self.optimizer_factory = optimizer
        self.compile_options = dict(compile) if compile is not None else None
        self.cudnn_attention = cudnn_attention
        if cuda_graphs and compile is not None:
            raise ConfigError("model.cuda_graphs=true and model.compile both fuse the step: choose one (model.compile=null)")
        self.cuda_graphs = cuda_graphs
        self.clip_per_encoder = clip_per_encoder
        self.teacher_share = teacher_share
        self.graphed: GraphedNetwork | None = None  # built in configure_model, once the device is known
        self.lr_mults = dict(lr_mults)
        if waviness_weight and not architecture.get("skill_readout"):
            raise ValueError(f"waviness_weight={waviness_weight} smooths the per-skill read-out, which "
                             "skill_readout=False leaves out")
        self.waviness_weight = waviness_weight
        if mastery_weight and architecture.get("response") != "guess_slip":
            raise ValueError(f"mastery_weight={mastery_weight} needs response='guess_slip': the threshold "
                             "response already predicts from mastery alone")
        self.mastery_weight = mastery_weight
        self.loss_weights = {"bce": 1.0, "im": 1.0, "var": variance_weight, "waviness": waviness_weight,
                             "mastery": mastery_weight}
        self.last_loss_terms: dict[str, torch.Tensor] = {}
        self._applied: tuple[int, float, float] | None = None  # last (epoch, w_bce, w_im), checkpointed
        self.best_val_auc: dict[str, torch.Tensor] = {}  # per encoder, the best validation AUC so far, checkpointed
        self._restored: tuple[int, float, float] | None = None
        # Metrics and losses accumulate on the device and are logged once per epoch: no step reads
        # a value back to the host (see gainakt.model.metrics).
        self.metrics = nn.ModuleDict(
            {
                f"{split}_{enc}": MetricCollection(
                    {"auc": MaskedAUROC(), "acc": MaskedAccuracy()}, prefix=f"{split}/{enc}_", compute_groups=False
                )
                for split in SPLITS
                for enc in ENCODERS
            }
        )
        self.losses = nn.ModuleDict(
            {f"{split}_{term}": WeightedMean() for split in SPLITS for term in ("total", *LOSS_TERMS)}
        )

    # -- loss weights -------------------------------------------------------------------------------
    def set_loss_weights(self, bce: float, im: float) -> None:
        """Set the BCE (encoder 1) and IM (encoder 2) weights and freeze what a zero weight leaves idle.

        Frozen parameters get no gradient, so the optimiser neither steps nor decays them: with
        weight decay a merely zero-weighted encoder would otherwise shrink toward zero.
        """
        self.loss_weights.update(bce=float(bce), im=float(im), waviness=float(bce) * self.waviness_weight,
                                 mastery=float(im) * self.mastery_weight)
        for p in self.net.encoder1_parameters():
            p.requires_grad_(bce != 0.0)
        train_enc2 = im != 0.0 or self.loss_weights["var"] != 0.0
        for p in self.net.encoder2_parameters():
            p.requires_grad_(train_enc2)

    def _apply_schedule(self) -> tuple[float, float]:
        if self.schedule is None:
            raise ConfigError(
                "GainAKTModule has no loss-weight schedule: pass schedule=... (the `schedule` config group) "
                "to train; only evaluation may go without one"
            )
        bce, im = self.schedule.weights(self.current_epoch)
        self.set_loss_weights(bce, im)
        return bce, im

    def on_fit_start(self) -> None:
        self._apply_schedule()

    def on_train_epoch_start(self) -> None:
        if self._restored is not None:
            epoch, bce, im = self._restored
            if self.schedule.weights(epoch) != (bce, im):
                warnings.warn(
                    f"resumed run: epoch {epoch} was trained with weights (bce={bce}, im={im}) but the schedule "
                    f"now gives {self.schedule.weights(epoch)}; its phases moved (set schedule.phase1_epochs "
                    "to keep them fixed across resumes)",
                    stacklevel=2,
                )
            self._restored = None
        bce, im = self._apply_schedule()
        self._applied = (self.current_epoch, bce, im)
        self.log("weights/bce", bce, on_step=False, on_epoch=True)
        self.log("weights/im", im, on_step=False, on_epoch=True)

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str = "cpu") -> GainAKTModule:
        """Load a checkpoint of this or an older version: architecture options it does not record
        (:data:`ADDED_ARCHITECTURE`) take the value that turns them off, as the network it holds had them."""
        saved = read_checkpoint(path).get("hyper_parameters", {})
        older = {key: off for key, off in ADDED_ARCHITECTURE.items() if key not in saved}
        return cls.load_from_checkpoint(path, map_location=map_location, **older)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["loss_weights_applied"] = self._applied
        checkpoint["best_val_auc"] = {enc: float(value) for enc, value in self.best_val_auc.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        applied = checkpoint.get("loss_weights_applied")
        self._restored = tuple(applied) if applied is not None else None
        self.best_val_auc = {enc: torch.tensor(value) for enc, value in checkpoint.get("best_val_auc", {}).items()}

    def encoder_state(self, encoder: str) -> dict[str, torch.Tensor]:
        """A detached copy of one encoder's entries of the state dict (see :func:`state_encoder`)."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if state_encoder(k) == encoder}

    def configure_model(self) -> None:
        """Choose the attention kernels, compile the network in place (its parameter names, hence
        checkpoints, stay the same) or prepare its CUDA graphs.

        Lightning calls this once the model is on its device. Compiling takes over a minute on the
        first batches of the original-size model on a GPU host, and its gain is not measured yet
        (docs/performance.md)."""
        torch.backends.cuda.enable_cudnn_sdp(self.cudnn_attention)
        if self.cuda_graphs and self.graphed is None:
            if self.device.type != "cuda" or self.trainer.world_size != 1:
                raise ConfigError(
                    f"model.cuda_graphs=true needs one CUDA GPU (trainer=gpu, trainer.devices=1); this run trains "
                    f"on {self.trainer.world_size} {self.device.type} device(s): set model.cuda_graphs=false"
                )
            if self.trainer.accumulate_grad_batches != 1:  # .grad aliases a graph's buffer (CapturedStep)
                raise ConfigError("model.cuda_graphs=true cannot accumulate gradients over batches: "
                                  "set trainer.accumulate_grad_batches=1 or model.cuda_graphs=false")
            self.graphed = GraphedNetwork(self.net)
        if self.compile_options is not None and getattr(self.net, "_compiled_call_impl", None) is None:
            self.net.compile(**self.compile_options)

    # -- steps ----------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], need_all_gains: bool = False) -> ModelOutput:
        args = (batch["skills"], batch["responses"], batch["student"])
        if self.graphed is not None and self.training and torch.is_grad_enabled():
            return self.graphed(*args, need_all_gains=need_all_gains)
        return self.net(*args, need_all_gains=need_all_gains)

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> tuple[torch.Tensor, ModelOutput]:
        need_var = split == "train" and self.loss_weights["var"] != 0.0
        out = self(batch, need_all_gains=need_var)
        target = batch["responses"][:, 1:]
        scored = batch["mask"][:, 1:]
        share = self.teacher_share if split == "train" and self.loss_weights["bce"] != 0.0 else 0.0
        im_target = teacher_target(target, out.enc1_logit, share)
        terms = {"bce": masked_bce(out.enc1_logit, target, scored), "im": masked_bce(out.enc2_logit, im_target, scored)}
        if split == "train" and self.loss_weights["waviness"] != 0.0:
            assert out.waviness is not None
            terms["waviness"] = masked_mean(out.waviness, batch["mask"][:, 1:-1])  # steps t and t+1 both real
        if split == "train" and self.loss_weights["mastery"] != 0.0:
            assert out.mastery_logit is not None
            terms["mastery"] = masked_bce(out.mastery_logit, im_target, scored)
        if need_var:
            assert out.gains_all is not None
            terms["var"] = gain_variance_loss(out.gains_all, batch["mask"])
        total = weighted_total(terms, self.loss_weights)
        if split == "train":
            self.last_loss_terms = {name: value.detach() for name, value in terms.items()}
        n = scored.sum()  # stays on the device: the epoch means are weighted by scored steps
        for name, value in (("total", total), *terms.items()):
            self.losses[f"{split}_{name}"].update(value, n)
        for enc, logit in (("enc1", out.enc1_logit), ("enc2", out.enc2_logit)):
            self.metrics[f"{split}_{enc}"].update(torch.sigmoid(logit.float()), target, scored)
        return total, out

    def _epoch_values(self, split: str) -> dict[str, torch.Tensor]:
        """The split's epoch metrics and losses (``{split}/enc1_auc``, ``{split}/loss_bce``, ...), as
        tensors on the device, and reset them. torchmetrics reduces them over processes, so every
        rank gets the same values."""
        values: dict[str, torch.Tensor] = {}
        for enc in ENCODERS:
            collection = self.metrics[f"{split}_{enc}"]
            if all(metric.update_count for metric in collection.values()):
                values.update(collection.compute())
            collection.reset()
        for name in ("total", *LOSS_TERMS):
            metric: Metric = self.losses[f"{split}_{name}"]
            if metric.update_count:
                values[f"{split}/loss" if name == "total" else f"{split}/loss_{name}"] = metric.compute()
            metric.reset()
        return values

    def _log_epoch(self, split: str) -> None:
        """Log the split's epoch values (:meth:`_epoch_values`) once."""
        self.log_dict(self._epoch_values(split), on_step=False, on_epoch=True)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, "train")
        if self.trainer.progress_bar_callback is not None:  # read back only when the bar refreshes
            self.log("loss", loss, prog_bar=True, logger=False, on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> BatchReadings:
        """Returns the forward pass's readings, so the monitoring callbacks share its rows
        (computed once, when first asked for) instead of running the model again."""
        return BatchReadings(self.net, batch, self._step(batch, "val")[1])

    def on_validation_epoch_end(self) -> None:
        """Log the validation epoch's values, ``val/mean_auc`` (the mean of both encoders' validation
        AUCs: one epoch good for both), each encoder's best validation AUC so far
        (``val/enc1_auc_best``, ...; the sanity check does not count) and ``val/per_encoder_auc``,
        the mean of those bests: the validation AUC of a checkpoint that holds each encoder at its
        own best epoch, which rises whenever either encoder improves. Computed from the device
        values, so nothing is read back before Lightning logs them."""
        values = self._epoch_values("val")
        aucs = {enc: values[f"val/{enc}_auc"] for enc in ENCODERS if f"val/{enc}_auc" in values}
        if len(aucs) == len(ENCODERS):
            values["val/mean_auc"] = torch.stack(list(aucs.values())).mean()
            if not self.trainer.sanity_checking:
                for enc, auc in aucs.items():
                    best = self.best_val_auc.get(enc)
                    self.best_val_auc[enc] = auc if best is None else torch.fmax(best.to(auc.device), auc)
                    values[f"val/{enc}_auc_best"] = self.best_val_auc[enc]
                values[PER_ENCODER_MONITOR] = torch.stack([self.best_val_auc[enc] for enc in ENCODERS]).mean()
        self.log_dict(values, on_step=False, on_epoch=True)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """Both encoders' readings of every scored interaction (``trajectories.scored_rows``), on CPU:
        Lightning's predict loop runs it with the device and precision of ``test``."""
        rows = scored_rows(self.net, batch, self(batch))
        return {name: value.cpu() for name, value in rows.items()}

    # -- optimiser ------------------------------------------------------------------------------------
    def encoder_parameters(self, encoder: str) -> list[nn.Parameter]:
        """The parameters of one encoder (``enc1`` or ``enc2``): the two share none."""
        if encoder not in ENCODERS:
            raise ValueError(f"encoder={encoder!r}; expected one of {', '.join(ENCODERS)}")
        return self.net.encoder1_parameters() if encoder == "enc1" else self.net.encoder2_parameters()

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:  # fmt: skip
        """Lightning's clipping, or with ``clip_per_encoder`` the same norm clip per encoder."""
        if not (self.clip_per_encoder and gradient_clip_val and gradient_clip_algorithm in (None, "norm")):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        for enc in ENCODERS:
            grads = [p for p in self.encoder_parameters(enc) if p.grad is not None]
            if grads:
                nn.utils.clip_grad_norm_(grads, gradient_clip_val)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The configured optimiser over the model's groups: each group's learning rate is the base
        rate times its multiplier, and groups the model marks as not decayed get weight decay 0."""
        if self.optimizer_factory is None:
            raise ConfigError("GainAKTModule has no optimizer: pass optimizer=... (the `optim` config group) to train")
        groups = self.net.optimizer_groups()
        optimizer = self.optimizer_factory(
            [{"params": g["params"], "name": g["name"], **({} if g["decay"] else {"weight_decay": 0.0})} for g in groups]
        )
        for group in optimizer.param_groups:
            group["lr"] *= self.lr_mults.get(group["name"], 1.0)
        return optimizer
