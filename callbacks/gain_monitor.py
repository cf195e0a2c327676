"""Watch encoder 2's gains on validation data every epoch (the quantity the inverse warmup targets)."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from gainakt.verification.gain_stats import GainSums, add_gain_sums, gain_sums, summarise_gains
from gainakt.model.module import GainAKTModule


class GainMonitor(L.Callback):
    """Logs ``gains/{std,mean,cv_skills,mean_after_correct,mean_after_incorrect}`` of the real per-step
    gains g_t[q_t] on the validation split, and TensorBoard histograms of the gains and of β, M_sat,
    γ and θ.

    Args:
        histograms: also write the TensorBoard histograms (needs a TensorBoard logger).
    """

    def __init__(self, histograms: bool = True) -> None:
        self.histograms = histograms
        self._sums: GainSums | None = None
        self._gains: list[tuple[torch.Tensor, torch.Tensor]] = []  # (gains, real) per batch, on the device

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        self._sums, self._gains = None, []

    def on_validation_batch_end(self, trainer, pl_module: GainAKTModule, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.sanity_checking:
            return
        gain = outputs.gain  # the validation step's forward pass (GainAKTModule.validation_step)
        self._sums = add_gain_sums(
            self._sums, gain_sums(gain, batch["skills"], batch["responses"], pl_module.net.num_skills)
        )
        if self.histograms:  # the real gains are selected once, at the epoch's end
            # a copy: a compiled network with CUDA graphs reuses its output memory at the next batch
            self._gains.append((gain.detach().float().flatten().clone(), (batch["skills"] >= 0).flatten()))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        if trainer.sanity_checking or self._sums is None:
            return
        for name, value in summarise_gains(self._sums).items():
            pl_module.log(f"gains/{name}", value, on_step=False, on_epoch=True)
        tensorboard = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if not self.histograms or tensorboard is None:
            return
        net, step = pl_module.net, trainer.current_epoch
        writer = tensorboard.experiment
        gains, real = (torch.cat(parts) for parts in zip(*self._gains))
        writer.add_histogram("gains/per_step", gains[real].cpu(), step)
        params = {"beta": net.beta, "saturation": net.saturation, "gamma": net.gamma, "theta": net.theta}
        for name, value in params.items():
            if value is not None:
                writer.add_histogram(f"params/{name}", value.detach().float().cpu().reshape(-1), step)
        self._gains = []
