"""Count mastery decreases on validation data every epoch: the learning curves must never go down."""

from __future__ import annotations

import lightning as L
import torch

from gainakt.errors import CheckFailed
from gainakt.verification.gain_stats import count_mastery_decreases
from gainakt.model.module import GainAKTModule


class MonotonicityCheck(L.Callback):
    """Logs ``checks/monotonicity_violations``: steps where any skill's mastery fell, over the epoch.

    Args:
        tolerance: a fall smaller than this is not counted (0: any fall counts).
        fail_on_violation: stop the run with an error when the count is not 0.
    """

    def __init__(self, tolerance: float = 0.0, fail_on_violation: bool = False) -> None:
        self.tolerance = tolerance
        self.fail_on_violation = fail_on_violation
        self._violations: torch.Tensor | int = 0  # summed on the device, read once per epoch

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        self._violations = 0

    def on_validation_batch_end(self, trainer, pl_module: GainAKTModule, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.sanity_checking:
            return
        m = pl_module.net.mastery_all_skills(outputs.gain, outputs.gains_all, batch["skills"], batch["student"])
        self._violations += count_mastery_decreases(m, batch["mask"], self.tolerance)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        if trainer.sanity_checking:
            return
        violations = int(self._violations)
        pl_module.log("checks/monotonicity_violations", float(violations), on_step=False, on_epoch=True)
        if self.fail_on_violation and violations:
            raise CheckFailed(
                f"monotonicity: {violations} mastery decreases on validation data at epoch "
                f"{trainer.current_epoch} (callbacks.monotonicity.fail_on_violation=true)"
            )
