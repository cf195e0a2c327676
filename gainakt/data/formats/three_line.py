"""Reader for the 3-line format of DKVMN and DKT: per student ``count`` / ``skills`` / ``responses``.

Files come as a ``*train`` / ``*test`` pair (the test file is the fixed test split; folds are drawn
over the train students) or as one file (the pykt protocol draws test and folds). There are no
student ids; skill ids (often 1-based) are renumbered 0..C-1 in increasing order, originals kept.
The record parser is shared with the 4-line DTransformer format (``count`` / problems / skills /
responses), which differs only in its extra line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gainakt.data.interactions import TEST_FOLD, UNASSIGNED, InteractionData
from gainakt.data.formats.parsing import (
    check_ids,
    check_responses,
    check_same_lengths,
    content_lines,
    folder,
    int_lists,
    pack,
    read_text,
    renumber,
    skill_range,
    split_list,
    train_test_pair,
)
from gainakt.errors import DataError

SUFFIXES = (".csv", ".txt")
FIELDS = ("skill", "response")
EXPECTED = "the 3-line format (per student: interaction count / comma-separated skill ids / 0-1 responses)"
OPTIONS = ("skill_range",)


@dataclass
class Records:
    """One file's records: per-record lengths and each field's values concatenated."""

    path: Path
    lengths: np.ndarray  # [R]
    values: dict[str, np.ndarray]  # field -> [N]
    numbers: dict[str, np.ndarray]  # field -> [R] file line of that field's list


def files(root: str | Path | None) -> list[Path]:
    return train_test_pair(folder(root, f"a folder with *train and *test files in {EXPECTED}"), SUFFIXES)


def read_counted(path: Path, fields: tuple[str, ...], expected: str) -> Records:
    """Parse count-headed records of ``1 + len(fields)`` lines, checking every length and response."""
    lines, numbers = content_lines(read_text(path, expected))
    size = 1 + len(fields)
    headers = lines[::size]
    for line, number in zip(headers, numbers[::size]):
        if not line.isdigit():
            raise DataError(f"{path}, line {number}: {line[:40]!r} is not an interaction count; expected {expected}")
    if len(lines) % size:
        start = int(numbers[len(lines) - len(lines) % size])
        raise DataError(
            f"{path}, line {start}: the last record has {len(lines) % size} of its {size} lines; expected {expected}"
        )
    counts = np.array([int(h) for h in headers], dtype=np.int64)
    values: dict[str, np.ndarray] = {}
    field_numbers: dict[str, np.ndarray] = {}
    for k, field in enumerate(fields, start=1):
        field_numbers[field] = numbers[k::size]
        values[field], got = int_lists(path, lines[k::size], field_numbers[field], field)
        check_same_lengths(path, counts, got, field_numbers[field], f"{field}s", "the count line")
    values["response"] = check_responses(path, values["response"], counts, field_numbers["response"])
    return Records(path=path, lengths=counts, values=values, numbers=field_numbers)


def looks_like(path: Path, num_fields: int, probe: int = 60) -> bool:
    """Whether the first ``probe`` records read as count-headed records of ``1 + num_fields`` lines.

    Several records are checked because one record of length 1 fits both the 3- and the 4-line form.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for _, line in zip(range(probe * (1 + num_fields)), handle) if line.strip()]
    except (OSError, UnicodeDecodeError):
        return False
    size = 1 + num_fields
    whole = len(lines) - len(lines) % size
    if whole == 0:
        return False
    for start in range(0, whole, size):
        if not lines[start].isdigit():
            return False
        count = int(lines[start])
        if any(len(split_list(lines[start + k])) != count for k in range(1, size)):
            return False
    return len(lines) == whole or lines[whole].isdigit()


def detect(root: Path) -> bool:
    try:
        paths = train_test_pair(root, SUFFIXES)
    except DataError:
        return False
    return all(looks_like(p, len(FIELDS)) for p in paths)


def fold_of(paths: list[Path], records: list[Records]) -> np.ndarray:
    """A test file's students are the fixed test split; the others await the protocol's folds.

    A single file given as ``data.root`` is never a test split, whatever its name.
    """
    return np.concatenate([
        np.full(len(r.lengths), TEST_FOLD if len(paths) > 1 and p.stem.endswith("test") else UNASSIGNED)
        for p, r in zip(paths, records)
    ])


def check_skills(records: list[Records], options: dict[str, Any]) -> None:
    declared = skill_range(options)
    for r in records:
        check_ids(r.path, r.values["skill"], r.lengths, r.numbers["skill"], "skill", declared)


def read(root: str | Path | None, options: dict[str, Any]) -> InteractionData:
    paths = files(root)
    records = [read_counted(p, FIELDS, EXPECTED) for p in paths]
    check_skills(records, options)
    skills, skill_ids = renumber(np.concatenate([r.values["skill"] for r in records]))
    return pack(
        lengths=np.concatenate([r.lengths for r in records]),
        skills=skills,
        responses=np.concatenate([r.values["response"] for r in records]),
        fold=fold_of(paths, records),
        student_ids=[f"{p.name}:{i}" for p, r in zip(paths, records) for i in range(len(r.lengths))],
        skill_ids=skill_ids,
    )
