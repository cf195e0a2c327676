"""Stop at the first non-finite training loss, naming the epoch, step and loss term."""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch

from gainakt.errors import GainAKTError


class NonFiniteLossError(GainAKTError):
    """Training produced a NaN or infinite loss."""


@dataclass
class _Pending:
    """One step's loss and terms, being copied to the host without stopping the device."""

    values: torch.Tensor  # [loss, *terms] in pinned host memory, filled asynchronously
    ready: torch.cuda.Event
    epoch: int
    step: int
    batch: int
    names: tuple[str, ...]


class FiniteLossGuard(L.Callback):
    """Checks every training loss; the message names the terms that are not finite.

    On a CPU the check runs before backward, so a non-finite loss never reaches the weights. On a
    GPU, reading the loss at once would make every step wait for the device; the loss and terms are
    instead copied to the host as the device gets there and checked at the next steps, and all of
    them before validation and at the end of each epoch, i.e. before any checkpoint is written. The
    run then stops a step or two after the bad one, with the weights in memory already spoilt but
    every checkpoint on disk written from finite ones.
    """

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        terms = getattr(pl_module, "last_loss_terms", {})
        values = torch.stack([loss.detach().float(), *(v.float() for v in terms.values())])
        where = (trainer.current_epoch, trainer.global_step, trainer.fit_loop.epoch_loop.batch_progress.current.ready - 1)
        if values.device.type != "cuda":
            self._check(values, *where, tuple(terms))
            return
        ready = torch.cuda.Event()
        self._pending.append(_Pending(values.to("cpu", non_blocking=True), ready, *where, tuple(terms)))
        ready.record()
        self._drain(wait=False)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx) -> None:
        self._drain(wait=False)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drain(wait=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drain(wait=True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drain(wait=True)

    def _drain(self, wait: bool) -> None:
        """Check the copied losses the device has delivered (all of them if ``wait``), oldest first."""
        while self._pending and (wait or self._pending[0].ready.query()):
            item = self._pending.pop(0)
            item.ready.synchronize()
            self._check(item.values, item.epoch, item.step, item.batch, item.names)

    def _check(self, values: torch.Tensor, epoch: int, step: int, batch: int, names: tuple[str, ...]) -> None:
        loss, *terms = (float(v) for v in values)
        if math.isfinite(loss):  # a zero-weighted term may be anything: it does not train
            return
        self._pending.clear()
        bad = [f"{name}={value}" for name, value in zip(names, terms) if not math.isfinite(value)]
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {epoch}, step {step} (batch {batch}): loss={loss}; "
            f"terms {', '.join(bad) or 'all finite (the weighted sum overflowed)'}. "
            "The last good checkpoint is kept; lower optim.lr or check the data."
        )
