"""Measure training time and real (unpadded) training interactions per second, excluding validation."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch


def wait_for_device(device: torch.device) -> None:
    """Wait until the device has finished the work queued so far (a no-op on a CPU), so that a
    host clock read next covers that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Throughput(L.Callback):
    """Real interactions of the training batches over the wall time of each epoch's training part
    (from the epoch's start to its validation, data loading included), and the validation time;
    and the wall time of the whole training loop (validation included).

    Nothing is read back from the device per batch: interactions are summed on the device, and the
    device is waited for once at the end of each part, so the times cover the queued work.
    ``epochs`` holds one record per epoch: ``interactions``, ``train_seconds``, ``val_seconds`` and
    ``started`` (Unix time), so jobs sharing a device can be added up over the time they overlap.
    The records and the loop time travel in checkpoints, so a resumed run reports those of all its
    parts (an interrupted epoch that is trained again counts once).
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []  # those of the earlier parts of a resumed run included
        self._count: torch.Tensor | None = None
        self._train_start: float | None = None
        self._val_start: float | None = None
        self._current: dict[str, float] = {}
        self._earlier = 0.0  # training-loop seconds of the parts before this one (from the checkpoint)
        self._loop_start: float | None = None

    def _begin_epoch(self, pl_module: L.LightningModule) -> None:
        wait_for_device(pl_module.device)
        self._count, self._current = None, {"started": time.time(), "val_seconds": 0.0}
        self._train_start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loop_start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._earlier, self._loop_start = self.train_seconds, None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._begin_epoch(pl_module)
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self._current:  # a run resumed in the middle of an epoch skips on_train_epoch_start
            self._begin_epoch(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        count = batch["mask"].sum()
        self._count = count if self._count is None else self._count + count

    def _end_training_part(self, pl_module: L.LightningModule) -> None:
        if self._train_start is not None:
            wait_for_device(pl_module.device)
            self._current["train_seconds"] = time.perf_counter() - self._train_start
            self._train_start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or not self._current:
            return
        self._end_training_part(pl_module)
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None:
            wait_for_device(pl_module.device)
            self._current["val_seconds"] += time.perf_counter() - self._val_start
            self._val_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._current:
            return
        self._end_training_part(pl_module)
        self.epochs.append(self._epoch_so_far())
        self._current = {}

    @property
    def interactions(self) -> int:
        return int(sum(e["interactions"] for e in self.epochs))

    @property
    def seconds(self) -> float:
        return sum(e["train_seconds"] for e in self.epochs)

    @property
    def train_seconds(self) -> float:
        """Wall time of the training loop so far, over every part of a resumed run."""
        running = time.perf_counter() - self._loop_start if self._loop_start is not None else 0.0
        return self._earlier + running

    @property
    def interactions_per_second(self) -> float:
        return self.interactions / self.seconds if self.seconds > 0 else 0.0

    def _epoch_so_far(self) -> dict[str, float]:
        """The current epoch's record; inside its training part (a checkpoint written there), up to now."""
        record = dict(self._current, interactions=0 if self._count is None else int(self._count))
        if self._train_start is not None:
            record["train_seconds"] = time.perf_counter() - self._train_start
        return record

    def state_dict(self) -> dict[str, Any]:
        # Lightning writes the epoch's checkpoint after its validation, before the epoch ends: the
        # epoch under way travels too, so a run resumed from it has every epoch's record
        current = [self._epoch_so_far()] if self._current else []
        return {"epochs": [*map(dict, self.epochs), *current], "train_seconds": self.train_seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._earlier = float(state_dict["train_seconds"])
        if "epochs" in state_dict:
            self.epochs = [dict(e) for e in state_dict["epochs"]]
        else:  # a checkpoint from before per-epoch records keeps totals only: one record stands for them
            totals = {"interactions": int(state_dict["interactions"]), "train_seconds": float(state_dict["seconds"])}
            self.epochs = [{**totals, "val_seconds": 0.0, "started": 0.0}]
