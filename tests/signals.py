"""A callback that sends this process a real signal in the middle of an epoch (interruption tests)."""

from __future__ import annotations

import os
import signal

import lightning as L


class SignalAt(L.Callback):
    """Sends ``signal`` (a name, e.g. ``SIGINT``) to its own process after training batch ``batch`` of
    epoch ``epoch``, as a user's Ctrl-C would arrive. Only in a run that did not resume, so the
    resumed run of the same overrides trains on undisturbed."""

    def __init__(self, epoch: int, batch: int, signal: str = "SIGINT") -> None:
        self.epoch, self.batch, self.signal = epoch, batch, signal

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        if trainer.ckpt_path is None and (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), getattr(signal, self.signal))
