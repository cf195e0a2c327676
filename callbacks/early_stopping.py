"""Early stopping that does not count epochs in which the monitored encoder is frozen by the schedule."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping


class ScheduleAwareEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping, skipping epochs whose loss weight ``loss_weight`` is 0.

    During inverse warmup's phase 1 encoder 1 is frozen (w_bce = 0), so its validation AUC cannot
    improve; counting those epochs would stop a V3 run (15 frozen epochs, patience 10) before
    phase 2 starts.

    Args:
        loss_weight: name of the module's loss weight that trains the monitored metric
            (``bce`` for encoder 1, ``im`` for encoder 2); null counts every epoch.
        **kwargs: EarlyStopping's arguments (monitor, mode, patience, ...).
    """

    def __init__(self, loss_weight: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss_weight = loss_weight

    def _should_skip_check(self, trainer: L.Trainer) -> bool:
        if super()._should_skip_check(trainer):
            return True
        weights = getattr(trainer.lightning_module, "loss_weights", {})
        return self.loss_weight is not None and weights.get(self.loss_weight) == 0.0
