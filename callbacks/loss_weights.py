"""Apply the loss-weight schedule at every epoch start and log the weights."""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L

from gainakt.model.module import GainAKTModule
from gainakt.schedules import Schedule


class LossWeightSchedule(L.Callback):
    """Sets ``(w_bce, w_im)`` from ``schedule.weights(epoch)``; logs ``weights/bce`` and ``weights/im``.

    The weights depend on the epoch only, so a resumed run needs no schedule state. The callback
    still checkpoints the last epoch and weights it applied, to warn when a resume with changed
    settings (e.g. a larger ``trainer.max_epochs`` moving ``phase1_frac``'s boundary) re-enters an
    earlier phase.
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._last: tuple[int, float, float] | None = None
        self._restored: tuple[int, float, float] | None = None

    def _apply(self, trainer: L.Trainer, pl_module: GainAKTModule) -> tuple[float, float]:
        bce, im = self.schedule.weights(trainer.current_epoch)
        pl_module.set_loss_weights(bce, im)
        return bce, im

    def on_fit_start(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        self._apply(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        if self._restored is not None:
            epoch, bce, im = self._restored
            if self.schedule.weights(epoch) != (bce, im):
                warnings.warn(
                    f"resumed run: epoch {epoch} was trained with weights (bce={bce}, im={im}) but the schedule "
                    f"now gives {self.schedule.weights(epoch)}; its phases moved (set schedule.phase1_epochs "
                    "to keep them fixed across resumes)",
                    stacklevel=2,
                )
            self._restored = None
        bce, im = self._apply(trainer, pl_module)
        self._last = (trainer.current_epoch, bce, im)
        pl_module.log("weights/bce", bce, on_step=False, on_epoch=True)
        pl_module.log("weights/im", im, on_step=False, on_epoch=True)

    def state_dict(self) -> dict[str, Any]:
        return {"last": self._last}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        last = state_dict.get("last")
        self._restored = tuple(last) if last is not None else None
