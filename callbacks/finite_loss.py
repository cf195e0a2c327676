"""Stop at the first non-finite training loss, before it reaches the weights."""

from __future__ import annotations

import math

import lightning as L
import torch

from gainakt.errors import GainAKTError


class NonFiniteLossError(GainAKTError):
    """Training produced a NaN or infinite loss."""


class FiniteLossGuard(L.Callback):
    """Checks the loss before backward and names the epoch, step and offending loss term."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if torch.isfinite(loss).all():
            return
        terms = getattr(pl_module, "last_loss_terms", {})
        bad = [f"{name}={float(value)}" for name, value in terms.items() if not math.isfinite(float(value))]
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {trainer.current_epoch}, step {trainer.global_step} "
            f"(batch {trainer.fit_loop.epoch_loop.batch_progress.current.ready - 1}): "
            f"loss={float(loss.detach())}; terms {', '.join(bad) or 'all finite (the weighted sum overflowed)'}. "
            "The last good checkpoint is kept; lower optim.lr or check the data."
        )
