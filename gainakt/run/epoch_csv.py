"""A Lightning logger that keeps ``metrics.csv`` as exactly one row per epoch.

Lightning logs validation metrics before and training-epoch metrics after ``on_train_epoch_end``;
this logger merges everything logged for the same epoch into one row, whatever the order.
The file is rewritten atomically on each update and reread on resume, so rows are appended
across a restart and a crash never leaves a half-written file. Test metrics go to the summary.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from gainakt.run.atomic import write_text_atomic


class EpochCSVLogger(Logger):
    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.rows: dict[int, dict[str, Any]] = {}
        if self.path.is_file():
            with open(self.path, newline="") as handle:
                for row in csv.DictReader(handle):
                    # Logged values are floats: reread them as floats, so an integral value such as a
                    # 0.0 loss weight is written back as "0.0", exactly as an uninterrupted run writes it.
                    values = {k: float(v) for k, v in row.items() if v != "" and k != "epoch"}
                    self.rows[int(row["epoch"])] = {"epoch": int(row["epoch"]), **values}

    @property
    def name(self) -> str:
        return "epoch_csv"

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Hyperparameters live in the run folder's config.yaml."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if "epoch" not in metrics:
            return
        values = {k: float(v) for k, v in metrics.items() if k != "epoch" and not k.startswith("test/")}
        if not values:
            return
        epoch = int(metrics["epoch"])
        self.rows.setdefault(epoch, {"epoch": epoch}).update(values)
        self._write()

    def _write(self) -> None:
        columns = ["epoch"] + sorted({k for row in self.rows.values() for k in row} - {"epoch"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for epoch in sorted(self.rows):
            writer.writerow(self.rows[epoch])
        write_text_atomic(self.path, buffer.getvalue())


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and not math.isinf(value) else value


def read_epoch_rows(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as numbers, in epoch order."""
    with open(path, newline="") as handle:
        return [{k: _number(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
