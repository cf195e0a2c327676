"""The run folder's two checkpoints: the selected one (by a monitored metric) and the last one."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from gainakt.run.folder import BEST_CHECKPOINT, RunFolder


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, writing where :class:`RunFolder` says the checkpoints are, and
    ``last.ckpt`` after every epoch.

    Lightning 2.6 writes the last checkpoint only in the steps where the monitored one improved, so
    a run whose metric stopped improving would resume from an old epoch; the run folder promises
    the last epoch.

    Args:
        run_dir: the run folder.
        monitor, mode: the metric that selects the checkpoint, and whether higher (max) is better.
        **kwargs: other ModelCheckpoint arguments.
    """

    def __init__(self, run_dir: str, monitor: str, mode: str, **kwargs: Any) -> None:
        super().__init__(dirpath=RunFolder(run_dir).checkpoints, filename=BEST_CHECKPOINT, monitor=monitor, mode=mode,
                         save_last=True, auto_insert_metric_name=False, **kwargs)  # fmt: skip

    def best_epoch(self) -> int | None:
        """The epoch whose weights ``best.ckpt`` holds, read from the file itself (None without one)."""
        if not self.best_model_path:
            return None
        return int(torch.load(self.best_model_path, map_location="cpu", weights_only=False, mmap=True)["epoch"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missing(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missing(trainer)

    def _save_last_if_missing(self, trainer: L.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer):  # skipped when this step is already saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
