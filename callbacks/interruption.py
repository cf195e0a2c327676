"""On Ctrl-C (SIGINT) or SIGTERM, save ``last.ckpt`` before the run stops, so it can be resumed."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException


class SaveOnInterrupt(L.Callback):
    """Writes the interrupted state to ``path`` (atomically, through the trainer's checkpoint IO).

    Other exceptions (a bug, a non-finite loss) leave the last good checkpoint untouched.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.saved = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.path)
            self.saved = True
