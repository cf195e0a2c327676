"""One lifecycle for the commands that write a run folder (train, evaluate): the folder is announced
first and last, the summary always ends with a status, and the exit code follows the status.

Process-wide settings (warning filters, config resolvers) belong to the entry points and are
made by :func:`prepare_process`, never as a side effect of importing a module.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any

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


def prepare_process() -> None:
    """What every entry point sets up before Hydra composes its config."""
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    register_resolvers()


def exit_code(summary: dict[str, Any]) -> int:
    return EXIT_CODES.get(summary.get("status", "failed"), EXIT_CODES["failed"])


class RunLifecycle:
    """``with RunLifecycle(folder, summary, "Run folder") as run:`` around a command's work.

    On leaving, the summary gets its status — ``completed``; ``failed`` with the error for a user
    error (printed as one line, no traceback) or a bug (re-raised); ``interrupted`` for Ctrl-C or
    SIGTERM (Lightning turns Ctrl-C into ``SystemExit``) — and is written to the folder, the result
    table is printed, then the folder again. Only a ``writer`` (rank 0 under DDP) writes and prints.

    Args:
        folder: the run or evaluation folder.
        summary: the summary so far; the command adds its results to ``run.summary``.
        label: how the folder is announced (``Run folder``, ``Evaluation folder``).
        on_interrupt: called on an interruption for extra summary entries and a hint to print.
        writer: write and print (false on the non-zero ranks of a DDP run).
    """

    def __init__(
        self, folder: RunFolder, summary: dict[str, Any], label: str,
        on_interrupt: Callable[[], tuple[dict[str, Any], str]] | None = None, writer: bool = True,
    ) -> None:  # fmt: skip
        self.folder = folder
        self.summary = {"status": "running", "run_dir": str(folder.root), **summary}
        self.label = label
        self.on_interrupt = on_interrupt
        self.writer = writer

    def __enter__(self) -> RunLifecycle:
        self.folder.root.mkdir(parents=True, exist_ok=True)
        self._announce()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        handled = True
        if exc is None:
            self.summary["status"] = "completed"
        elif isinstance(exc, GainAKTError):
            self.summary.update(status="failed", error=str(exc))
            print(f"error: {exc}", file=sys.stderr, flush=True)
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
            signal_name = "SIGTERM" if isinstance(exc, SIGTERMException) else "SIGINT (Ctrl-C)"
            self.summary.update(status="interrupted", error=f"stopped by {signal_name}")
            if self.on_interrupt is not None:
                extra, hint = self.on_interrupt()
                self.summary.update(extra)
                print(hint, file=sys.stderr, flush=True)
        else:
            self.summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            handled = False
        if self.writer:
            self.folder.write_summary(self.summary)
            print(format_table(self.summary), flush=True)
        self._announce()
        return handled

    def _announce(self) -> None:
        if self.writer:
            print(f"{self.label}: {self.folder.root}", flush=True)

    @property
    def exit_code(self) -> int:
        return exit_code(self.summary)
