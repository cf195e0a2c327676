"""Apply the loss-weight schedule at every epoch start and log the weights."""

from __future__ import annotations

import lightning as L

from gainakt.model.module import GainAKTModule


class LossWeightSchedule(L.Callback):
    """Sets ``(w_bce, w_im)`` from ``schedule.weights(epoch)``; logs ``weights/bce`` and ``weights/im``."""

    def __init__(self, schedule) -> None:
        self.schedule = schedule

    def _apply(self, trainer: L.Trainer, pl_module: GainAKTModule) -> tuple[float, float]:
        bce, im = self.schedule.weights(trainer.current_epoch)
        pl_module.set_loss_weights(bce, im)
        return bce, im

    def on_fit_start(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        self._apply(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        bce, im = self._apply(trainer, pl_module)
        pl_module.log("weights/bce", bce, on_step=False, on_epoch=True)
        pl_module.log("weights/im", im, on_step=False, on_epoch=True)
