"""The run folder's two checkpoints: the selected one (by a monitored metric) and the last one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from gainakt.model.module import ENCODERS, PER_ENCODER_MONITOR, state_encoder
from gainakt.run.folder import BEST_CHECKPOINT, RunFolder


def held_epochs(checkpoint: dict[str, Any]) -> dict[str, int]:
    """The epoch whose weights a checkpoint holds, per encoder: one epoch for both, unless the
    checkpoint was composed per encoder (``encoder_epochs``)."""
    composed = checkpoint.get("encoder_epochs", {})  # an encoder never kept is that of the file's epoch
    return {enc: int(composed.get(enc, checkpoint["epoch"])) for enc in ENCODERS}


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, writing where :class:`RunFolder` says the checkpoints are, and
    ``last.ckpt`` after every epoch.

    Lightning 2.6 writes the last checkpoint only in the steps where the monitored one improved, so
    a run whose metric stopped improving would resume from an old epoch; the run folder promises
    the last epoch.

    With ``monitor=val/per_encoder_auc`` ``best.ckpt`` holds each encoder at its own best
    validation epoch. The encoders share no parameter and neither reads the other's output, so
    the composed weights give exactly those two epochs' validation AUCs; its ``encoder_epochs``
    names the epochs. The rest of the file (optimiser, loops) is that of the epoch it was written.

    Args:
        run_dir: the run folder.
        monitor, mode: the metric that selects the checkpoint, and whether higher (max) is better.
        **kwargs: other ModelCheckpoint arguments.
    """

    def __init__(self, run_dir: str, monitor: str, mode: str, **kwargs: Any) -> None:
        super().__init__(dirpath=RunFolder(run_dir).checkpoints, filename=BEST_CHECKPOINT, monitor=monitor, mode=mode,
                         save_last=True, auto_insert_metric_name=False, **kwargs)  # fmt: skip
        self.per_encoder = monitor == PER_ENCODER_MONITOR
        self.encoder_best: dict[str, tuple[float, int]] = {}  # per encoder: best validation AUC, its epoch
        self._encoder_weights: dict[str, dict[str, torch.Tensor]] = {}  # each encoder's state at that epoch
        self._composing = False
        self._improved = False  # an encoder beat its best in this validation

    def best_epochs(self) -> dict[str, int] | None:
        """Per encoder, the epoch whose weights ``best.ckpt`` holds, read from the file itself (None
        without one)."""
        if not self.best_model_path:
            return None
        return held_epochs(torch.load(self.best_model_path, map_location="cpu", weights_only=False, mmap=True))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missing(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.per_encoder and not self._should_skip_saving_checkpoint(trainer):
            self._keep_improved_encoders(trainer, pl_module)
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missing(trainer)

    def _keep_improved_encoders(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Copy the weights of each encoder whose validation AUC beat its best so far; ``best.ckpt``
        is written in exactly these epochs (the monitor, the mean of the bests, rises then too)."""
        self._restore_encoder_weights()
        self._improved = False
        for enc in ENCODERS:
            auc = trainer.callback_metrics.get(f"val/{enc}_auc")
            if auc is None or not torch.isfinite(auc):
                continue
            value = float(auc)
            if enc not in self.encoder_best or value > self.encoder_best[enc][0]:
                self.encoder_best[enc] = (value, trainer.current_epoch)
                self._encoder_weights[enc] = pl_module.encoder_state(enc)
                self._improved = True

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        """Per encoder: write ``best.ckpt`` whenever an encoder improved (decided on the AUCs
        themselves, not on their mean, which a float might not see move)."""
        if not self.per_encoder:
            return super()._save_topk_checkpoint(trainer, monitor_candidates)
        if self._improved:
            path = self._get_metric_interpolated_filepath_name(monitor_candidates, trainer, self.best_model_path or None)
            score = monitor_candidates.get(self.monitor)
            self.best_model_path, self.best_model_score, self.best_k_models = path, score, {path: score}
            self._save_checkpoint(trainer, path)

    def _restore_encoder_weights(self) -> None:
        """After a resume, the kept encoders' weights are those of ``best.ckpt``."""
        missing = [enc for enc in self.encoder_best if enc not in self._encoder_weights]
        if missing and self.best_model_path and Path(self.best_model_path).is_file():
            state = torch.load(self.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
            for enc in missing:
                self._encoder_weights[enc] = {k: v for k, v in state.items() if state_encoder(k) == enc}

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        self._composing = self.per_encoder and Path(filepath).stem == BEST_CHECKPOINT
        try:
            super()._save_checkpoint(trainer, filepath)
        finally:
            self._composing = False

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._composing:  # best.ckpt: each encoder's weights from its own best epoch
            for enc, weights in self._encoder_weights.items():
                checkpoint["state_dict"].update(weights)
            checkpoint["encoder_epochs"] = {enc: epoch for enc, (_, epoch) in self.encoder_best.items()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "encoder_best": dict(self.encoder_best)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.encoder_best = {enc: tuple(best) for enc, best in state_dict.get("encoder_best", {}).items()}

    def _save_last_if_missing(self, trainer: L.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer):  # skipped when this step is already saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
