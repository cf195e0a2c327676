"""The run folder's two checkpoints: the selected one (by a monitored metric) and the last one."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from gainakt.run.folder import BEST_CHECKPOINT, RunFolder


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, writing where :class:`RunFolder` says the checkpoints are.

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
