"""Watch encoder 2's gains on validation data every epoch (the quantity the inverse warmup targets)."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from gainakt.model.module import GainAKTModule
from gainakt.verification.gain_stats import GainSums, add_gain_sums, gain_sums, summarise_gains


class GainMonitor(L.Callback):
    """Logs ``val/gain_{std,mean,cv_skills,ratio_correct_incorrect,mean_after_correct,mean_after_incorrect}``
    of the gains on the validation split, and TensorBoard histograms of the gains and of β, M_sat,
    γ and θ.

    The statistics are those of the final checks 1, 5 and 6 (``gain_stats``), over the same kind of
    rows (every scored interaction, its gain the mean over its skills): they differ from the
    checks' values only in being taken on validation data every epoch instead of on test data at
    the end, which the ``val/`` prefix says. The rows are every position of each batch, padding
    weighted 0 (``trajectories.BatchReadings.rows``), and the sums stay on the device until the epoch's
    end, so no validation batch waits for the host.

    Args:
        min_rows_per_skill: skills with fewer rows are left out of ``cv_skills`` (``checks.min_rows_per_skill``).
        histograms: also write the TensorBoard histograms (needs a TensorBoard logger).
    """

    def __init__(self, min_rows_per_skill: int, histograms: bool) -> None:
        self.min_rows_per_skill = min_rows_per_skill
        self.histograms = histograms
        self._sums: GainSums | None = None
        self._gains: list[tuple[torch.Tensor, torch.Tensor]] = []  # (gains, weights) per batch, on the device

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        self._sums, self._gains = None, []

    def on_validation_batch_end(self, trainer, pl_module: GainAKTModule, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.sanity_checking:
            return
        rows = outputs.rows  # the validation step's readings (BatchReadings), shared with the other monitor
        sums = gain_sums(rows["gain"], rows["skills"], rows["response"], pl_module.net.num_skills, rows["weight"])
        self._sums = add_gain_sums(self._sums, sums)
        if self.histograms:  # the scored rows' gains are selected once, at the epoch's end
            self._gains.append((rows["gain"], rows["weight"]))  # new tensors, not a compiled network's reused outputs

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        if trainer.sanity_checking or self._sums is None:
            return
        for name, value in summarise_gains(self._sums, self.min_rows_per_skill).items():
            pl_module.log(f"val/gain_{name}", value, on_step=False, on_epoch=True)
        tensorboard = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if not self.histograms or tensorboard is None:
            return
        net, step = pl_module.net, trainer.current_epoch
        writer = tensorboard.experiment
        gains, weights = (torch.cat(parts) for parts in zip(*self._gains))
        _histogram(writer, "val/gains", gains[weights > 0], step)
        params = {"beta": net.beta, "saturation": net.saturation, "gamma": net.gamma, "theta": net.mastery_threshold,
                  "guess": net.guess, "slip": net.slip}  # fmt: skip
        for name, value in params.items():
            if value is not None:
                _histogram(writer, f"params/{name}", value.detach().float().reshape(-1), step)
        self._gains = []


def _histogram(writer, tag: str, values: torch.Tensor, step: int) -> None:
    """A TensorBoard histogram of the finite ``values``: TensorBoard cannot bin NaN or infinity, which a
    diverging network produces in validation before the finite-loss guard stops the run at the next
    training step (that guard, not a histogram, is where the user is told)."""
    finite = values[torch.isfinite(values)].cpu()
    if finite.numel():
        writer.add_histogram(tag, finite, step)
