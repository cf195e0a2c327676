"""Reader for pykt-toolkit processed data: ``train_valid.csv`` (with ``fold``) and ``test.csv``.

One row per student, full sequence in log order; ``concepts`` and ``responses`` are comma lists and
a multi-skill interaction joins its skills with ``_`` (pykt's convention); a ``questions`` column, if
present and not ``NA``, gives problem ids. Without the full files, pykt's ``train_valid_sequences.csv``
/ ``test_sequences.csv`` are read instead: there a long sequence is cut into rows of at most 200,
padded with -1, and the rows of one ``uid`` are joined back in order. Test rows get fold -1.
``keyid2idx.json``, when present, gives the original user and skill ids.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gainakt.data.interactions import TEST_FOLD, InteractionData
from gainakt.data.formats.parsing import (
    check_ids,
    check_responses,
    check_same_lengths,
    folder,
    int_lists,
    pack,
    read_text,
    renumber,
    skill_range,
    split_list,
)
from gainakt.errors import DataError

FULL = ("train_valid.csv", "test.csv")
SEQUENCES = ("train_valid_sequences.csv", "test_sequences.csv")
KEYS = "keyid2idx.json"
OBTAIN = (
    "pykt-format data is produced by pykt-toolkit's data preprocessing "
    "(https://github.com/pykt-team/pykt-toolkit, e.g. data/assist2015/); see README.md, 'Datasets'."
)
REQUIRED_COLUMNS = ("fold", "uid", "concepts", "responses")
EXPECTED = f"a pykt CSV with columns {','.join(REQUIRED_COLUMNS)}"
OPTIONS = ("skill_range",)
PAD = -1


def files(root: str | Path | None) -> list[Path]:
    """The files this reader needs, failing with a message that says where to get them."""
    path = folder(root, f"a folder holding {' and '.join(FULL)}. {OBTAIN}")
    for names in (FULL, SEQUENCES):
        if all((path / n).is_file() for n in names):
            return [path / n for n in names] + ([path / KEYS] if (path / KEYS).is_file() else [])
    raise DataError(
        f"expected file {path / FULL[0]} (data.root={root}) but it does not exist. "
        f"A pykt dataset folder holds {' and '.join(FULL)} (or {' and '.join(SEQUENCES)}). {OBTAIN}"
    )


def detect(root: Path) -> bool:
    return root.is_dir() and any(all((root / n).is_file() for n in names) for names in (FULL, SEQUENCES))


@dataclass
class _File:
    """One parsed pykt file, one entry per interaction slot (padding included until dropped)."""

    uids: list[str]  # [R] per CSV row
    fold: np.ndarray  # [R]
    row: np.ndarray  # [N] CSV row of each slot
    skills: np.ndarray  # [N, K], -1 padded
    responses: np.ndarray  # [N]
    problems: np.ndarray | None  # [N]


def read(root: str | Path | None, options: dict[str, Any]) -> InteractionData:
    """Read both files of a pykt folder into one dataset, keeping pykt's folds and test split."""
    paths = files(root)
    parsed = [_read_file(path, skill_range(options)) for path in paths[:2]]
    width = max(f.skills.shape[1] for f in parsed)
    student_ids: list[str] = []
    fold, student, keep_problems = [], [], all(f.problems is not None for f in parsed)
    for f in parsed:
        # rows of one uid (pykt's sequence files cut a student into several rows) become one student
        first_row: dict[str, int] = {}
        for i, uid in enumerate(f.uids):
            first_row.setdefault(uid, i)
        index = {uid: len(student_ids) + i for i, uid in enumerate(first_row)}
        student.append(np.array([index[u] for u in f.uids], dtype=np.int64)[f.row])
        fold.append(f.fold[list(first_row.values())])
        student_ids.extend(first_row)
    student_of = np.concatenate(student)
    order = np.argsort(student_of, kind="stable")
    skills = np.concatenate([np.pad(f.skills, ((0, 0), (0, width - f.skills.shape[1])), constant_values=PAD)
                             for f in parsed])[order]
    skill_index, skill_values = renumber(skills)
    if skill_values[0] == PAD:  # keep -1 as the padding of a skill set, not a skill
        skill_index, skill_values = skill_index - 1, skill_values[1:]
    names, users = _originals(paths, "concepts"), _originals(paths, "uid")
    extra: dict[str, Any] = {}
    if keep_problems:
        problem_index, problem_values = renumber(np.concatenate([f.problems for f in parsed])[order])
        extra = dict(problems=problem_index, problem_ids=problem_values)
    return pack(
        lengths=np.bincount(student_of, minlength=len(student_ids)),
        skills=skill_index,
        responses=np.concatenate([f.responses for f in parsed])[order],
        fold=np.concatenate(fold),
        student_ids=[users.get(int(u), u) if u.isdigit() else u for u in student_ids],
        skill_ids=np.array([names.get(int(s), str(s)) for s in skill_values]),
        **extra,
    )


def _read_file(path: Path, declared: tuple[int, int] | None) -> _File:
    rows = list(_rows(path))
    if not rows:
        raise DataError(f"{path}: a header but no rows; expected {EXPECTED}")
    numbers = np.array([line for line, _ in rows], dtype=np.int64)
    test = path.name.startswith("test")
    fold = np.array([TEST_FOLD if test else _fold(row["fold"], path, line) for line, row in rows], dtype=np.int64)
    concepts = [row["concepts"] or "" for _, row in rows]
    if any("_" in c for c in concepts):
        sets = [[tok.split("_") for tok in split_list(c)] for c in concepts]
        lengths = np.array([len(s) for s in sets], dtype=np.int64)
        width = max((len(s) for seq in sets for s in seq), default=1)
        padded = [s + [str(PAD)] * (width - len(s)) for seq in sets for s in seq]
        flat, _ = int_lists(path, [",".join(s) for s in padded], np.repeat(numbers, lengths), "concept")
        skills = flat.reshape(-1, width)
    else:
        flat, lengths = int_lists(path, concepts, numbers, "concept")
        skills = flat[:, None]
    responses, got = int_lists(path, [row["responses"] or "" for _, row in rows], numbers, "response")
    check_same_lengths(path, lengths, got, numbers, "responses", "the concepts list")
    problems = None
    if all(row.get("questions") not in (None, "", "NA") for _, row in rows):
        problems, got = int_lists(path, [row["questions"] for _, row in rows], numbers, "question")
        check_same_lengths(path, lengths, got, numbers, "questions", "the concepts list")
    row = np.repeat(np.arange(len(rows)), lengths)
    real = skills[:, 0] != PAD  # pykt pads the last row of a cut sequence with -1
    ones = np.ones(int(real.sum()), dtype=np.int64)
    responses = check_responses(path, responses[real], ones, numbers[row[real]])
    used = skills[real] != PAD
    check_ids(path, skills[real][used], np.ones(int(used.sum()), dtype=np.int64),
              np.repeat(numbers[row[real]], used.sum(axis=1)), "concept", declared)
    return _File(
        uids=[r["uid"] for _, r in rows],
        fold=fold,
        row=row[real],
        skills=skills[real],
        responses=responses,
        problems=None if problems is None else problems[real],
    )


def _originals(paths: list[Path], key: str) -> dict[int, str]:
    """Index -> original id from ``keyid2idx.json`` (empty when the file is absent)."""
    keys = [p for p in paths if p.name == KEYS]
    if not keys:
        return {}
    try:
        mapping = json.loads(read_text(keys[0], "pykt's keyid2idx.json"))[key]
        return {int(index): str(original) for original, index in mapping.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DataError(f"{keys[0]}: expected a JSON object with a {key!r} mapping of original id -> index") from None


def _rows(path: Path):
    read_text(path, EXPECTED)  # empty file and encoding errors, with their line
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(
                f"{path}, line 1: header {','.join(columns) or '(empty file)'} lacks column(s) "
                f"{', '.join(missing)}; expected {EXPECTED}"
            )
        for row in reader:
            yield reader.line_num, row


def _fold(token: str | None, path: Path, line: int) -> int:
    try:
        fold = int(str(token).strip())
    except ValueError:
        raise DataError(f"{path}, line {line}: fold {token!r} is not an integer") from None
    if fold < 0:
        raise DataError(f"{path}, line {line}: fold {fold} in {path.name}; expected 0 or more")
    return fold
