"""Measure training time and real (unpadded) training interactions per second, excluding validation."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class Throughput(L.Callback):
    """Counts real interactions of each training batch, the time spent in training batches, and the
    wall time of the training loop (validation included). The totals travel in checkpoints, so a
    resumed run reports those of all its parts (an interrupted epoch that is trained again counts once).
    """

    def __init__(self) -> None:
        self.interactions = 0
        self.seconds = 0.0  # inside training batches
        self._earlier = 0.0  # training-loop seconds of the parts before this one (from the checkpoint)
        self._loop_start: float | None = None
        self._start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loop_start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._earlier, self._loop_start = self.train_seconds, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._start
        self.interactions += int(batch["mask"].sum())

    @property
    def train_seconds(self) -> float:
        """Wall time of the training loop so far, over every part of a resumed run."""
        running = time.perf_counter() - self._loop_start if self._loop_start is not None else 0.0
        return self._earlier + running

    @property
    def interactions_per_second(self) -> float:
        return self.interactions / self.seconds if self.seconds > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"interactions": self.interactions, "seconds": self.seconds, "train_seconds": self.train_seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.interactions = int(state_dict["interactions"])
        self.seconds = float(state_dict["seconds"])
        self._earlier = float(state_dict["train_seconds"])
