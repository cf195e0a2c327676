"""Reader for AKT's files: ``*test1.csv`` .. ``*test5.csv``, records of an id line and comma lists.

A record is ``user_idx,original_user_id``, then (in the ``_pid`` variants) a problem line, a skill
line and a response line; whether problem lines are present is read off the file's structure.
The five files are a disjoint partition of the students and AKT's protocol rotates over them: for
``data.fold=k`` the test split is file k+1 and validation file k+2 (mod 5), so fold k reproduces
AKT's own fold k+1. AKT's ``train{k}``/``valid{k}`` files, if present, are ignored (they are the
same students). ``skill.json`` / ``problems.json`` map original ids to AKT's 1-based indices; the
original ids are kept, and indices are renumbered 0..n-1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from gainakt.data.interactions import InteractionData
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
)
from gainakt.errors import DataError

NUM_FILES = 5
TEST_FILE = re.compile(r".*test([1-5])\.csv$")
EXPECTED = (
    "the AKT format (per student: 'user_idx,original_user_id' / [comma-separated problem ids] / "
    "comma-separated skill ids / 0-1 responses)"
)
OPTIONS = ("skill_range",)


def _test_files(root: Path) -> dict[int, Path]:
    found: dict[int, list[Path]] = {}
    for path in root.iterdir() if root.is_dir() else []:
        match = TEST_FILE.fullmatch(path.name)
        if match and path.is_file():
            found.setdefault(int(match.group(1)), []).append(path)
    for k, paths in found.items():
        if len(paths) > 1:
            raise DataError(f"{root}: several test{k} files ({', '.join(p.name for p in paths)}); expected one")
    return {k: v[0] for k, v in found.items()}


def files(root: str | Path | None) -> list[Path]:
    path = folder(root, f"a folder with five files *test1.csv .. *test5.csv in {EXPECTED}")
    found = _test_files(path)
    missing = [k for k in range(1, NUM_FILES + 1) if k not in found]
    if missing:
        raise DataError(
            f"{path}: no *test{missing[0]}.csv; expected the five AKT files *test1.csv .. *test5.csv "
            f"(found: {', '.join(sorted(p.name for p in path.iterdir())) if path.is_dir() else path.name})"
        )
    extras = [path / name for name in ("skill.json", "problems.json") if (path / name).is_file()]
    return [found[k] for k in range(1, NUM_FILES + 1)] + extras


def detect(root: Path) -> bool:
    found = _test_files(root) if root.is_dir() else {}
    if len(found) != NUM_FILES:
        return False
    try:
        with open(found[1], encoding="utf-8") as handle:
            first = handle.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return len(first) == 2 and all(tok.strip().isdigit() for tok in first)


def _record_sizes(path: Path, lines: list[str], numbers: np.ndarray) -> list[int]:
    """The layouts, 3 (no problem line) or 4 lines per record, that this file fits.

    An id line has two values; when both layouts put one at every record start (short files),
    the layout under which every record's lists agree in length decides. A file whose every line
    holds two values fits both; :func:`record_size` then takes the layout of the other files.
    """
    commas = np.array([line.rstrip(",").count(",") for line in lines])
    fits = [size for size in (3, 4) if len(lines) % size == 0 and (commas[::size] == 1).all()]
    if len(fits) > 1:
        fits = [size for size in fits if all((commas[k::size] == commas[1::size]).all() for k in range(2, size))]
    if not fits:
        size = 4 if (path.parent / "problems.json").is_file() else 3
        bad = np.flatnonzero(commas[::size] != 1)
        where = int(numbers[size * bad[0]]) if len(bad) else int(numbers[-1])
        raise DataError(
            f"{path}, line {where}: records do not split into 3- or 4-line records starting with an id line "
            f"({len(lines)} non-blank lines); expected {EXPECTED}"
        )
    return fits


def record_size(paths: list[Path], fits: list[list[int]]) -> int:
    """One layout for the dataset: the one its unambiguous files fit, else (every file fits both)
    4 lines when the folder has AKT's ``problems.json``, 3 without."""
    decided = {f[0] for f in fits if len(f) == 1}
    if len(decided) > 1:
        raise DataError(f"{paths[0].parent}: some files have problem lines and some do not; expected {EXPECTED}")
    if decided:
        return decided.pop()
    return 4 if (paths[0].parent / "problems.json").is_file() else 3


def _inverse_map(path: Path) -> dict[int, str]:
    """AKT's ``{original: index}`` json as ``{index: original}``."""
    try:
        mapping = json.loads(read_text(path, "a JSON object {original_id: index}"))
        return {int(index): str(original) for original, index in mapping.items()}
    except (ValueError, AttributeError, TypeError):
        raise DataError(f"{path}: not a JSON object of original id -> integer index") from None


def read(root: str | Path | None, options: dict[str, Any]) -> InteractionData:
    paths = files(root)
    declared = skill_range(options)
    lengths, fold, student_ids = [], [], []
    skills, problems, responses = [], [], []
    contents = [content_lines(read_text(path, EXPECTED)) for path in paths[:NUM_FILES]]
    size = record_size(paths, [_record_sizes(path, *content) for path, content in zip(paths, contents)])
    for k, (path, (lines, numbers)) in enumerate(zip(paths, contents)):
        ids, _ = int_lists(path, lines[::size], numbers[::size], "user id")  # two per line, as _record_sizes saw
        count = None
        for offset, field in zip(range(1, size), ("problem", "skill", "response")[4 - size :]):
            values, got = int_lists(path, lines[offset::size], numbers[offset::size], field)
            if count is None:
                count, first = got, field
            check_same_lengths(path, count, got, numbers[offset::size], f"{field}s", f"the {first} line")
            if field == "response":
                values = check_responses(path, values, got, numbers[offset::size])
                responses.append(values)
            else:
                check_ids(path, values, got, numbers[offset::size], field, declared if field == "skill" else None)
                (skills if field == "skill" else problems).append(values)
        lengths.append(count)
        fold.append(np.full(len(count), k))
        student_ids.extend(str(i) for i in ids[1::2])
    skill_index, skill_values = renumber(np.concatenate(skills))
    names = _inverse_map(paths[0].parent / "skill.json") if (paths[0].parent / "skill.json").is_file() else {}
    extra: dict[str, Any] = {}
    if problems:
        problem_index, problem_values = renumber(np.concatenate(problems))
        pnames = {}
        if (paths[0].parent / "problems.json").is_file():
            pnames = _inverse_map(paths[0].parent / "problems.json")
        extra = dict(problems=problem_index, problem_ids=[pnames.get(int(p), str(p)) for p in problem_values])
    return pack(
        lengths=np.concatenate(lengths),
        skills=skill_index,
        responses=np.concatenate(responses),
        fold=np.concatenate(fold),
        student_ids=student_ids,
        skill_ids=np.array([names.get(int(s), str(s)) for s in skill_values]),
        rotating_test=True,
        **extra,
    )
