"""Hydra's hooks around a command (``hydra.callbacks`` in conf/config.yaml): what must happen before
Hydra creates the run folder, and what a sweep prints.

Hydra turns an exception raised in a hook into a warning, so a failed check exits here itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig

from gainakt.errors import GainAKTError
from gainakt.run.lifecycle import EXIT_CODES, say


class CommandHooks(Callback):
    """Checks a single run's config before its folder exists, and announces a sweep's folder.

    Args:
        check: dotted name of the function that checks the composed config (it raises a
            :class:`GainAKTError`); a config error then stops with one line and exit code 2,
            leaving no run folder behind. Each sweep job is checked inside its own folder instead,
            so the sweep keeps a ``failed`` record of it.
    """

    def __init__(self, check: str) -> None:
        self.check = get_method(check)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self.check(config)
        except GainAKTError as exc:
            say(f"error: {exc}", err=True)
            sys.exit(EXIT_CODES["failed"])

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        say(f"Sweep folder: {Path(config.hydra.sweep.dir).resolve()}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        say(f"Sweep folder: {Path(config.hydra.sweep.dir).resolve()}")
