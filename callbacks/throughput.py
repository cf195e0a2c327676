"""Measure real (unpadded) training interactions per second, excluding validation."""

from __future__ import annotations

import time

import lightning as L


class Throughput(L.Callback):
    """Counts real interactions of each training batch and the time spent in training batches."""

    def __init__(self) -> None:
        self.interactions = 0
        self.seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._start
        self.interactions += int(batch["mask"].sum())

    @property
    def interactions_per_second(self) -> float:
        return self.interactions / self.seconds if self.seconds > 0 else 0.0
