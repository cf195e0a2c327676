"""One lifecycle for the commands that write a run folder (train, evaluate): the folder is announced
first and last, the summary always ends with a status, the exit code follows the status, and what
the command prints is also kept in the folder's log.

Process-wide settings (warning filters, config resolvers) belong to the entry points and are
made by :func:`prepare_process`, never as a side effect of importing a module.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gainakt.errors import GainAKTError
from gainakt.run.config import register_resolvers
from gainakt.run.folder import RunFolder
from gainakt.run.summary import format_table

EXIT_CODES = {"completed": 0, "failed": 2, "interrupted": 130}
QUIET_WARNINGS = (  # Lightning advice that does not apply to this project's small, vectorised loaders
    r".*does not have many workers.*",
    r".*is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)
ADVERT_PREFIX = "💡 Tip:"  # Lightning's adverts for its cloud products, logged at INFO on every run
ADVERT_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")  # where they start
LIBRARY_LOGGERS = ("lightning.pytorch", "lightning.fabric")  # they print themselves (not through the root logger)
TRANSCRIPT = logging.getLogger("gainakt.transcript")  # what a command prints, copied into its folder's log
TRANSCRIPT.propagate = False
TRANSCRIPT.addHandler(logging.NullHandler())  # a process that writes no log (DDP rank > 0) prints only once
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's, so the log reads as one file


def _no_adverts(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(ADVERT_PREFIX)


def prepare_process() -> None:
    """What every entry point sets up before Hydra composes its config."""
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ADVERT_LOGGERS:
        logging.getLogger(name).addFilter(_no_adverts)
    register_resolvers()


def set_threads(threads: int | None) -> None:
    """``threads`` (conf/runtime): PyTorch's CPU threads in this process; None keeps PyTorch's default
    (one per core). Multi-threaded kernels wait on each other when other work shares the cores."""
    if threads is not None:
        torch.set_num_threads(threads)


def say(text: str, err: bool = False) -> None:
    """Print ``text`` for the user. A closed pipe (``| head``, a ``| tee`` that Ctrl-C ended first)
    silences that stream for the rest of the process instead of raising ``BrokenPipeError``."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except ValueError:  # the stream was closed (a test harness capturing output)
        pass


def exit_code(summary: dict[str, Any]) -> int:
    return EXIT_CODES.get(summary.get("status", "failed"), EXIT_CODES["failed"])


def replaces_summary(previous: dict[str, Any] | None, status: str) -> bool:
    """Whether an attempt ending with ``status`` may overwrite the folder's summary ``previous``.

    A failed attempt (a damaged checkpoint, a bad override on ``resume=``) never does, and an
    interrupted one never replaces a completed run's results: what the folder holds survives.
    """
    if previous is None or status == "completed":
        return True
    return status == "interrupted" and previous.get("status") != "completed"


class RunLifecycle:
    """``with RunLifecycle(folder, summary, "Run folder") as run:`` around a command's work.

    On leaving, the summary gets its status — ``completed``; ``failed`` with the error for a user
    error (printed as one line, no traceback) or a bug (re-raised); ``interrupted`` for Ctrl-C or
    SIGTERM (Lightning turns Ctrl-C into ``SystemExit``) — and is written to the folder (or, when
    it must not replace the summary already there, beside it), the result table is printed, then
    the folder again. Everything printed, warnings and a bug's traceback also go to ``log``. Only
    a ``writer`` (rank 0 under DDP) writes and prints.

    Args:
        folder: the run or evaluation folder.
        summary: the summary so far; the command adds its results to ``run.summary``.
        label: how the folder is announced (``Run folder``, ``Evaluation folder``).
        log: the file that keeps what the command printed (Hydra's job log of the same command).
        on_interrupt: called on an interruption for extra summary entries and a hint to print.
        writer: write and print (false on the non-zero ranks of a DDP run).
    """

    def __init__(
        self, folder: RunFolder, summary: dict[str, Any], label: str, log: Path,
        on_interrupt: Callable[[], tuple[dict[str, Any], str]] | None = None, writer: bool = True,
    ) -> None:  # fmt: skip
        self.folder = folder
        self.summary = {"status": "running", "run_dir": str(folder.root), **summary}
        self.label = label
        self.log = log
        self.on_interrupt = on_interrupt
        self.writer = writer
        self.previous: dict[str, Any] | None = None
        self._handler: logging.Handler | None = None
        self._showwarning = warnings.showwarning

    def __enter__(self) -> RunLifecycle:
        self.folder.root.mkdir(parents=True, exist_ok=True)
        self.previous = self.folder.read_summary()  # a resumed run's summary
        if self.writer:
            self._start_transcript()
        self._announce()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        handled = True
        if exc is None:
            self.summary["status"] = "completed"
        elif isinstance(exc, GainAKTError):
            self.summary.update(status="failed", error=str(exc))
            self.say(f"error: {exc}", err=True)
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
            signal_name = "SIGTERM" if isinstance(exc, SIGTERMException) else "SIGINT (Ctrl-C)"
            self.summary.update(status="interrupted", error=f"stopped by {signal_name}")
            if self.on_interrupt is not None:
                extra, hint = self.on_interrupt()
                self.summary.update(extra)
                self.say(hint, err=True)
        else:
            self.summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            TRANSCRIPT.error("".join(traceback.format_exception(kind, exc, tb)).rstrip())
            handled = False
        if self.writer:
            self._write_summary()
            table = format_table(self.summary)
            self.say(table)
        self._announce()
        self._stop_transcript()
        return handled

    def _write_summary(self) -> None:
        if replaces_summary(self.previous, self.summary["status"]):
            self.folder.write_summary(self.summary)
            return
        self.folder.write_attempt(self.summary)
        self.say(
            f"{self.folder.summary.name} keeps the run's {self.previous.get('status')} results; this "
            f"{self.summary['status']} attempt is in {self.folder.attempt.name}",
            err=True,
        )

    def say(self, text: str, err: bool = False) -> None:
        """Print ``text`` and keep it in the log (the folder's log only when this process is the writer)."""
        say(text, err)
        TRANSCRIPT.log(logging.WARNING if err else logging.INFO, text)

    def _announce(self) -> None:
        if self.writer:
            self.say(f"{self.label}: {self.folder.root}")

    @staticmethod
    def _transcribed() -> list[logging.Logger]:
        """Our transcript, and the libraries' loggers that print on their own (a library logger that
        propagates reaches the folder's log through Hydra's root handler already)."""
        libraries = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
        return [TRANSCRIPT, *(logger for logger in libraries if not logger.propagate)]

    def _start_transcript(self) -> None:
        handler = logging.FileHandler(self.log, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        for logger in self._transcribed():
            logger.addHandler(handler)
        TRANSCRIPT.setLevel(logging.INFO)
        self._handler = handler
        original = self._showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
            original(message, category, filename, lineno, file, line)
            TRANSCRIPT.warning(warnings.formatwarning(message, category, filename, lineno, line).rstrip())

        warnings.showwarning = show

    def _stop_transcript(self) -> None:
        if self._handler is None:
            return
        warnings.showwarning = self._showwarning
        for logger in self._transcribed():
            logger.removeHandler(self._handler)
        self._handler.close()
        self._handler = None

    @property
    def exit_code(self) -> int:
        return exit_code(self.summary)
