"""Reader for the raw ASSISTments 2009-10 skill-builder file (``skill_builder_data*.csv``, latin-1).

Columns used: ``order_id,user_id,problem_id,skill_id,correct`` (the others are ignored). The file
repeats an answer once per skill of a multi-skill problem, with the same ``order_id``; those rows
are folded into ONE interaction whose skill set is the union of their skills, so the answer is
scored once. Rule for empty ``skill_id``: such a row contributes no skill; an interaction left with
no skill at all is dropped and counted (``adjusted['no_skill_dropped']``). Interactions are put in
``order_id`` order per student; no split ships with the file, so the pykt protocol draws test and
folds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gainakt.data.interactions import UNASSIGNED, InteractionData
from gainakt.data.formats.parsing import (
    check_ids,
    csv_table,
    numeric_column,
    pack,
    raw_csv_file,
    raw_csv_files,
    renumber,
    skill_range,
)
from gainakt.data.qmatrix import skill_sets
from gainakt.errors import DataError

COLUMNS = ("order_id", "user_id", "problem_id", "skill_id", "correct")
ENCODING = "latin-1"
EXPECTED = "the raw ASSISTments 2009-10 skill-builder CSV with columns order_id,user_id,problem_id,skill_id,correct"
OPTIONS = ("skill_range",)


def files(root: str | Path | None) -> list[Path]:
    return raw_csv_files(root, COLUMNS, EXPECTED)


def detect(root: Path) -> bool:
    return raw_csv_file(root, COLUMNS) is not None


def read(root: str | Path | None, options: dict[str, Any]) -> InteractionData:
    path = files(root)[0]
    table = csv_table(path, COLUMNS, EXPECTED, encoding=ENCODING)
    order = numeric_column(path, table, "order_id", integer=True)
    columns = {c: numeric_column(path, table, c, integer=True) for c in ("user_id", "problem_id", "correct")}
    lines = np.arange(len(table), dtype=np.int64) + 2
    bad = np.flatnonzero((columns["correct"] != 0) & (columns["correct"] != 1))
    if len(bad):
        raise DataError(f"{path}, line {int(bad[0]) + 2}: correct {int(columns['correct'][bad[0]])}; expected 0 or 1")

    orders, first, group = np.unique(order, return_index=True, return_inverse=True)
    for name, values in columns.items():
        differs = np.flatnonzero(values != values[first[group]])
        if len(differs):
            i = int(differs[0])
            raise DataError(
                f"{path}, line {i + 2}: order_id {int(order[i])} has {name} {int(values[i])} but line "
                f"{int(first[group[i]]) + 2} has {int(values[first[group[i]]])}; expected the rows of one "
                "answer (one order_id) to agree on user, problem and correctness"
            )

    has_skill = table["skill_id"].str.strip().to_numpy() != ""
    skill = np.full(len(table), -1, dtype=np.int64)
    skill[has_skill] = numeric_column(path, table[has_skill], "skill_id", integer=True)
    check_ids(path, skill[has_skill], np.ones(int(has_skill.sum()), dtype=np.int64), lines[has_skill], "skill",
              skill_range(options))
    skill_index, skill_ids = renumber(skill[has_skill])
    sets = skill_sets(group[has_skill], skill_index.astype(np.int64), len(orders))
    skilled = sets[:, 0] >= 0
    kept = np.flatnonzero(skilled)
    if len(kept) == 0:
        raise DataError(f"{path}: no row has a skill_id; expected skill ids for at least some answers")
    user = columns["user_id"][first[kept]]
    kept = kept[np.lexsort((orders[kept], user))]
    users, lengths = np.unique(columns["user_id"][first[kept]], return_counts=True)
    problems, problem_ids = renumber(columns["problem_id"][first[kept]])
    return pack(
        lengths=lengths,
        skills=sets[kept],
        responses=columns["correct"][first[kept]],
        fold=np.full(len(users), UNASSIGNED),
        student_ids=users.astype(str),
        skill_ids=skill_ids,
        problems=problems,
        problem_ids=problem_ids,
        adjusted={"no_skill_dropped": int(len(orders) - len(kept)), "skill_rows_folded": int(len(table) - len(orders))},
    )
