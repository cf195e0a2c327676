"""Ctrl-C (SIGINT) or SIGTERM during training stops the run between two training steps, so that
``resume=`` continues it exactly.

``checkpoints/last.ckpt`` stays the state at the end of the last completed epoch, and a resumed run
trains the interrupted epoch again from its start: the random generators travel in that checkpoint
(callbacks/rng_state.py), so it draws the same batches and dropout masks as a run never stopped and
ends with the same metrics. Saving the position inside the epoch instead would not be exact: the
epoch's running training metrics (loss means, the AUC's stored predictions) live in Lightning's
result collection and the torchmetrics states, which checkpoints do not hold.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupt(L.Callback):
    """Defers Ctrl-C and SIGTERM inside the training loop to the start of the next training step (or
    the end of training), then stops the run as the signal would have: ``KeyboardInterrupt`` for
    Ctrl-C, Lightning's ``SIGTERMException`` for SIGTERM. A second Ctrl-C stops at once. Outside the
    training loop (data loading, testing) the signals act at once, as usual; on several devices
    (DDP) Lightning's own handling stays, since a deferred stop on one rank would stall the others.
    """

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1 or threading.current_thread() is not threading.main_thread():
            return
        self.requested = None
        self._previous = {sig: signal.signal(sig, self._request) for sig in SIGNALS}

    def _request(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.requested == signal.SIGINT:
            raise KeyboardInterrupt  # pressed twice: stop now
        self.requested = signum
        message = (f"\n{signal.Signals(signum).name}: stopping before the next training step "
                   "(checkpoints/last.ckpt keeps the last completed epoch; Ctrl-C again stops at once)\n")
        with contextlib.suppress(OSError):  # one system call: a handler must not re-enter a buffered stream
            os.write(sys.stderr.fileno(), message.encode())

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._stop_if_requested()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()
        self._stop_if_requested()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _stop_if_requested(self) -> None:
        if self.requested is None:
            return
        signum, self.requested = self.requested, None
        self._restore()
        if signum == signal.SIGTERM:
            raise SIGTERMException
        raise KeyboardInterrupt
