"""Reader for the raw ASSISTments 2015 file (``2015_100_skill_builders_main_problems.csv``).

Columns ``user_id,log_id,sequence_id,correct``; ``sequence_id`` is the skill (the 2015 data has no
problem ids). A fractional ``correct`` is partial credit: ``partial_credit=drop`` (default, as pykt
and AKT do) leaves those rows out, ``binarise`` keeps them as incorrect (only full credit counts as
correct); either way the number of such rows is recorded. Each student's rows are put in ``log_id``
order. No split ships with the file, so the pykt protocol draws test and folds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gainakt.data.interactions import UNASSIGNED, InteractionData
from gainakt.data.formats.parsing import check_ids, csv_table, numeric_column, pack, raw_csv_file, raw_csv_files, renumber, skill_range
from gainakt.errors import ConfigError, DataError

COLUMNS = ("user_id", "log_id", "sequence_id", "correct")
EXPECTED = "the raw ASSISTments 2015 CSV with columns user_id,log_id,sequence_id,correct"
OPTIONS = ("partial_credit", "skill_range")
PARTIAL_CREDIT = ("drop", "binarise")


def files(root: str | Path | None) -> list[Path]:
    return raw_csv_files(root, COLUMNS, EXPECTED)


def detect(root: Path) -> bool:
    return raw_csv_file(root, COLUMNS) is not None


def read(root: str | Path | None, options: dict[str, Any]) -> InteractionData:
    mode = options.get("partial_credit", "drop")
    if mode not in PARTIAL_CREDIT:
        raise ConfigError(f"data.reader.partial_credit={mode!r}; expected one of {', '.join(PARTIAL_CREDIT)}")
    path = files(root)[0]
    table = csv_table(path, COLUMNS, EXPECTED)
    user = numeric_column(path, table, "user_id", integer=True)
    log_id = numeric_column(path, table, "log_id", integer=True)
    skill = numeric_column(path, table, "sequence_id", integer=True)
    correct = numeric_column(path, table, "correct", integer=False)
    lines = np.arange(len(table), dtype=np.int64) + 2
    outside = np.flatnonzero((correct < 0) | (correct > 1))
    if len(outside):
        i = int(outside[0])
        raise DataError(
            f"{path}, line {i + 2}: correct {table['correct'].iloc[i]!r}; expected 0, 1 or partial credit in between"
        )
    check_ids(path, skill, np.ones(len(skill), dtype=np.int64), lines, "sequence (skill)", skill_range(options))
    partial = (correct != 0) & (correct != 1)
    if mode == "drop":
        keep = ~partial
        adjusted = {"partial_credit_dropped": int(partial.sum())}
    else:
        keep = np.ones(len(correct), dtype=bool)
        adjusted = {"partial_credit_binarised": int(partial.sum())}
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((rows, log_id[rows], user[rows]))]
    if len(rows) == 0:
        raise DataError(f"{path}: every row has partial credit and partial_credit=drop; no interactions left")
    users, lengths = np.unique(user[rows], return_counts=True)
    skills, skill_ids = renumber(skill[rows])
    return pack(
        lengths=lengths,
        skills=skills,
        responses=(correct[rows] == 1).astype(np.int8),
        fold=np.full(len(users), UNASSIGNED),
        student_ids=users.astype(str),
        skill_ids=skill_ids,
        adjusted=adjusted,
    )
