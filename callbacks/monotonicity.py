"""Count mastery decreases on validation data every epoch: the learning curves must never go down."""

from __future__ import annotations

import lightning as L
import torch

from gainakt.errors import CheckFailed
from gainakt.model.module import GainAKTModule
from gainakt.verification.gain_stats import mastery_decreases


class MonotonicityCheck(L.Callback):
    """Logs ``val/monotonicity_violations``: check 3's count (``gain_stats.mastery_decreases``) on
    the validation rows of the epoch, instead of the test rows at the end. The count of each batch
    stays on the device (every position, padding weighted 0: ``trajectories.BatchReadings.rows``) and the
    epoch's total is read once.

    Args:
        tolerance: a fall smaller than this is not counted (``checks.monotonicity_tolerance``).
        fail_on_violation: stop the run with an error when the count is not 0.
    """

    def __init__(self, tolerance: float, fail_on_violation: bool) -> None:
        self.tolerance = tolerance
        self.fail_on_violation = fail_on_violation
        self._violations: torch.Tensor | None = None  # summed on the device, read once per epoch

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        self._violations = None

    def on_validation_batch_end(self, trainer, pl_module: GainAKTModule, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.sanity_checking:
            return
        rows = outputs.rows  # the validation step's readings (BatchReadings), shared with the other monitor
        count = mastery_decreases(rows["window"], rows["skills"], rows["position"], rows["mastery_before"],
                                  rows["mastery_after"], self.tolerance, rows["weight"])  # fmt: skip
        self._violations = count if self._violations is None else self._violations + count

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        if trainer.sanity_checking:
            return
        violations = 0 if self._violations is None else int(self._violations)
        pl_module.log("val/monotonicity_violations", float(violations), on_step=False, on_epoch=True)
        if self.fail_on_violation and violations:
            raise CheckFailed(
                f"monotonicity: {violations} mastery decreases on validation data at epoch "
                f"{trainer.current_epoch} (callbacks.monotonicity.fail_on_violation=true)"
            )
