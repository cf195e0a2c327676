"""LightningModule around GainAKT3Exp: losses, metrics per split and encoder, optimiser groups."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from gainakt.model.gainakt3exp import GainAKT3Exp, ModelOutput
from gainakt.model.losses import gain_variance_loss, masked_bce, weighted_total

ENCODERS = ("enc1", "enc2")
SPLITS = ("train", "val", "test")


class GainAKTModule(L.LightningModule):
    """Trains both encoders; the loss weights are set from outside by the schedule callback.

    Args:
        num_skills, num_students: sizes taken from the data.
        lr, weight_decay: Adam's (L2) settings.
        gains_lr_mult: learning-rate multiplier of encoder 2's gains head (V2 used 3).
        curve_lr_mult: learning-rate multiplier of the learning-curve scalars (beta, M_sat, ...),
            which each see only their own skill's steps and so move slowly at the base rate.
        variance_weight: weight of the gain-variance loss (0 turns it off).
        **architecture: passed to :class:`GainAKT3Exp` (d_model, n_heads, accumulate, ...).
    """

    def __init__(
        self,
        num_skills: int,
        num_students: int = 0,
        lr: float = 1e-3,
        weight_decay: float = 1.7571e-5,
        gains_lr_mult: float = 1.0,
        curve_lr_mult: float = 1.0,
        variance_weight: float = 0.0,
        **architecture: Any,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = GainAKT3Exp(num_skills=num_skills, num_students=num_students, **architecture)
        self.lr = lr
        self.weight_decay = weight_decay
        self.gains_lr_mult = gains_lr_mult
        self.curve_lr_mult = curve_lr_mult
        self.loss_weights = {"bce": 1.0, "im": 1.0, "var": variance_weight}
        self.last_loss_terms: dict[str, torch.Tensor] = {}
        self.metrics = nn.ModuleDict(
            {
                f"{split}_{enc}": MetricCollection(
                    {"auc": BinaryAUROC(), "acc": BinaryAccuracy()}, prefix=f"{split}/{enc}_"
                )
                for split in SPLITS
                for enc in ENCODERS
            }
        )

    def set_loss_weights(self, bce: float, im: float) -> None:
        """Set the BCE (encoder 1) and IM (encoder 2) weights and freeze what a zero weight leaves idle.

        Frozen parameters get no gradient, so Adam neither steps nor decays them: with L2 decay a
        merely zero-weighted encoder would otherwise shrink toward zero.
        """
        self.loss_weights.update(bce=float(bce), im=float(im))
        for p in self.net.encoder1_parameters():
            p.requires_grad_(bce != 0.0)
        train_enc2 = im != 0.0 or self.loss_weights["var"] != 0.0
        for p in self.net.encoder2_parameters():
            p.requires_grad_(train_enc2)

    def forward(self, batch: dict[str, torch.Tensor], need_all_gains: bool = False) -> ModelOutput:
        return self.net(batch["skills"], batch["responses"], batch["student"], need_all_gains=need_all_gains)

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> tuple[torch.Tensor, ModelOutput]:
        need_var = split == "train" and self.loss_weights["var"] != 0.0
        out = self(batch, need_all_gains=need_var)
        target = batch["responses"][:, 1:]
        scored = batch["mask"][:, 1:]
        terms = {"bce": masked_bce(out.enc1_logit, target, scored), "im": masked_bce(out.enc2_logit, target, scored)}
        if need_var:
            assert out.gains_all is not None
            terms["var"] = gain_variance_loss(out.gains_all, batch["mask"])
        total = weighted_total(terms, self.loss_weights)
        if split == "train":
            self.last_loss_terms = {name: value.detach() for name, value in terms.items()}
        n = int(scored.sum())
        for name, value in terms.items():
            self.log(f"{split}/loss_{name}", value, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log(f"{split}/loss", total, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        labels = target[scored]
        for enc, logit in (("enc1", out.enc1_logit), ("enc2", out.enc2_logit)):
            collection = self.metrics[f"{split}_{enc}"]
            collection.update(torch.sigmoid(logit[scored].float()), labels)
            self.log_dict(collection, on_step=False, on_epoch=True, batch_size=n)
        return total, out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, "train")
        self.log("loss", loss, prog_bar=True, logger=False, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> ModelOutput:
        """Returns the model output, so monitoring callbacks read its gains instead of recomputing them."""
        return self._step(batch, "val")[1]

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        head, curve = self.net.gains_head_parameters(), self.net.curve_parameters()
        special = {id(p) for p in head + curve}
        rest = [p for p in self.parameters() if id(p) not in special]
        groups = [
            {"params": rest, "lr": self.lr, "name": "base"},
            {"params": head, "lr": self.lr * self.gains_lr_mult, "name": "gains_head"},
            {"params": curve, "lr": self.lr * self.curve_lr_mult, "name": "curve"},
        ]
        return torch.optim.Adam(groups, lr=self.lr, weight_decay=self.weight_decay)
