"""Reader for DTransformer's 4-line format: per record ``count`` / problems / skills (KCs) / responses.

As shipped for Algebra 2005 (``train.txt`` / ``test.txt``); records are chunks of at most 200
interactions rather than whole students, and carry no ids, so each record is one "student" here.
Problem and skill ids are renumbered 0..n-1 in increasing order, originals kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gainakt.data.formats import three_line
from gainakt.data.interactions import InteractionData
from gainakt.data.formats.parsing import check_ids, folder, pack, renumber, train_test_pair
from gainakt.errors import DataError

FIELDS = ("problem", "skill", "response")
EXPECTED = (
    "the 4-line DTransformer format (per record: interaction count / comma-separated problem ids / "
    "skill ids / 0-1 responses)"
)
OPTIONS = ("skill_range",)


def files(root: str | Path | None) -> list[Path]:
    return train_test_pair(folder(root, f"a folder with *train and *test files in {EXPECTED}"), three_line.SUFFIXES)


def detect(root: Path) -> bool:
    try:
        paths = train_test_pair(root, three_line.SUFFIXES)
    except DataError:
        return False
    return all(three_line.looks_like(p, len(FIELDS)) for p in paths)


def read(root: str | Path | None, options: dict[str, Any]) -> InteractionData:
    paths = files(root)
    records = [three_line.read_counted(p, FIELDS, EXPECTED) for p in paths]
    three_line.check_skills(records, options)
    for r in records:
        check_ids(r.path, r.values["problem"], r.lengths, r.numbers["problem"], "problem", None)
    skills, skill_ids = renumber(np.concatenate([r.values["skill"] for r in records]))
    problems, problem_ids = renumber(np.concatenate([r.values["problem"] for r in records]))
    return pack(
        lengths=np.concatenate([r.lengths for r in records]),
        skills=skills,
        responses=np.concatenate([r.values["response"] for r in records]),
        fold=three_line.fold_of(paths, records),
        student_ids=[f"{p.name}:{i}" for p, r in zip(paths, records) for i in range(len(r.lengths))],
        skill_ids=skill_ids,
        problems=problems,
        problem_ids=problem_ids,
    )
