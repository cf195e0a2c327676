"""Parsing shared by the line-oriented readers: text, integer lists, checks, renumbering, packing.

Lists are parsed in bulk (one ``int`` per token, lengths as arrays) and checked with numpy; only when
a check fails is the offending line searched for, so every failure names the file, the line and
what was expected while the valid path stays fast.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gainakt.data.interactions import InteractionData
from gainakt.errors import ConfigError, DataError


def folder(root: str | Path | None, expected: str) -> Path:
    """``data.root`` as a path, or a message saying what the folder should hold."""
    if root in (None, ""):
        raise DataError(f"data.root is not set: expected {expected}. Pass it as data.root=/path/to/folder.")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"data.root={root} does not exist; expected {expected}")
    return path


def read_text(path: Path, what: str, encoding: str = "utf-8") -> str:
    """The whole file as text; an empty or undecodable file is a :class:`DataError`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); expected {what}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not {encoding} text ({exc.reason} at byte {exc.start}); expected {what}"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty; expected {what}")
    return text


def content_lines(text: str) -> tuple[list[str], np.ndarray]:
    """Non-blank lines, stripped, with their 1-based line numbers in the file."""
    lines: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped:
            lines.append(stripped)
            numbers.append(number)
    return lines, np.asarray(numbers, dtype=np.int64)


def split_list(line: str) -> list[str]:
    """Tokens of a comma list; one trailing comma (DKT's files end every list with one) is allowed."""
    if line.endswith(","):
        line = line[:-1]
    return [tok.strip() for tok in line.split(",")] if line else []


def int_lists(path: Path, lines: Sequence[str], numbers: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse comma lists of integers: all values concatenated [N] and each line's length [R]."""
    tokens = [split_list(line) for line in lines]
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    try:
        values = np.fromiter(map(int, chain.from_iterable(tokens)), dtype=np.int64, count=int(lengths.sum()))
    except ValueError:
        for toks, number in zip(tokens, numbers):
            for tok in toks:
                if not _is_int(tok):
                    raise DataError(
                        f"{path}, line {number}: {what} {tok!r} is not an integer; "
                        f"expected a comma-separated list of integer {what}s"
                    ) from None
        raise
    return values, lengths


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def line_of(values_index: int, lengths: np.ndarray, numbers: np.ndarray) -> int:
    """File line holding flat value ``values_index`` of lists with ``lengths`` on lines ``numbers``."""
    return int(numbers[np.searchsorted(np.cumsum(lengths), values_index, side="right")])


def check_responses(path: Path, responses: np.ndarray, lengths: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Responses as int8, or an error naming the first line holding one that is not 0 or 1."""
    bad = np.flatnonzero((responses != 0) & (responses != 1))
    if len(bad):
        line = line_of(int(bad[0]), lengths, numbers)
        raise DataError(f"{path}, line {line}: response {int(responses[bad[0]])}; expected 0 or 1")
    return responses.astype(np.int8)


def check_same_lengths(
    path: Path, expected: np.ndarray, got: np.ndarray, numbers: np.ndarray, what: str, reference: str
) -> None:
    """Each list on lines ``numbers`` must be as long as its record's ``reference`` says."""
    bad = np.flatnonzero(expected != got)
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{path}, line {int(numbers[i])}: {int(got[i])} {what} but {reference} says {int(expected[i])}; "
            "expected lines of one record to have the same length"
        )


def check_ids(path: Path, ids: np.ndarray, lengths: np.ndarray, numbers: np.ndarray, what: str,
              declared: Sequence[int] | None) -> None:
    """Ids must be non-negative and, when a range ``[lo, hi]`` is declared, inside it."""
    lo, hi = (0, None) if declared is None else (int(declared[0]), int(declared[1]))
    bad = np.flatnonzero((ids < lo) | (ids > hi if hi is not None else False))
    if len(bad):
        line = line_of(int(bad[0]), lengths, numbers)
        expected = f"ids from {lo}" if hi is None else f"ids in the declared range {lo}..{hi} (data.reader.skill_range)"
        raise DataError(f"{path}, line {line}: {what} id {int(ids[bad[0]])}; expected {expected}")


def renumber(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map ids to 0..n-1 in increasing order of the id; returns (index [N] int32, original id of each index)."""
    originals, index = np.unique(ids, return_inverse=True)
    return index.astype(np.int32).reshape(ids.shape), originals


def skill_range(options: dict[str, Any]) -> tuple[int, int] | None:
    """The declared ``[lo, hi]`` skill-id range of the reader options, validated."""
    value = options.get("skill_range")
    if value is None:
        return None
    try:
        lo, hi = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"data.reader.skill_range={value!r}; expected [lowest_id, highest_id] or null") from None
    if lo > hi or lo < 0:
        raise ConfigError(f"data.reader.skill_range={value!r}; expected 0 <= lowest_id <= highest_id")
    return lo, hi


def pack(
    lengths: np.ndarray,
    skills: np.ndarray,
    responses: np.ndarray,
    fold: np.ndarray,
    student_ids: Sequence[str] | np.ndarray,
    skill_ids: np.ndarray,
    problems: np.ndarray | None = None,
    problem_ids: np.ndarray | None = None,
    **extra: Any,
) -> InteractionData:
    """Assemble flat arrays into an :class:`InteractionData`; ``skills`` is [N] or [N, K] (-1 padded)."""
    skills = np.asarray(skills, dtype=np.int32)
    if skills.ndim == 1:
        skills = skills[:, None]
    return InteractionData(
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        skills=skills,
        responses=np.asarray(responses, dtype=np.int8),
        fold=np.asarray(fold, dtype=np.int8),
        num_skills=len(skill_ids),
        student_ids=np.asarray(student_ids, dtype=str),
        problems=None if problems is None else np.asarray(problems, dtype=np.int32),
        num_problems=0 if problem_ids is None else len(problem_ids),
        skill_ids=np.asarray(skill_ids).astype(str),
        problem_ids=None if problem_ids is None else np.asarray(problem_ids).astype(str),
        **extra,
    )


def train_test_pair(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The ``*train*``/``*test*`` files of a folder (stems ending in train/test), or ``[root]`` for a file."""
    if root.is_file():
        return [root]
    found = {}
    for part in ("train", "test"):
        matches = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in suffixes and p.stem.endswith(part))
        if len(matches) > 1:
            raise DataError(
                f"{root}: several {part} files ({', '.join(p.name for p in matches)}); expected one file "
                f"whose name ends in '{part}' (point data.root at a single file to read just that one)"
            )
        if matches:
            found[part] = matches[0]
    if "train" not in found:
        raise DataError(
            f"{root}: no file named *train{'/'.join(suffixes)}; expected a train file and, optionally, a test file "
            f"(found: {', '.join(sorted(p.name for p in root.iterdir())) or 'nothing'})"
        )
    return [found[p] for p in ("train", "test") if p in found]


def csv_table(path: Path, columns: Sequence[str], what: str, encoding: str = "utf-8") -> pd.DataFrame:
    """A raw CSV as strings (row i is file line i + 2), with the ``columns`` a reader needs checked."""
    text = read_text(path, what, encoding)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}); expected {what}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}, line 1: header lacks column(s) {', '.join(missing)}; expected {what}"
            f" (found columns: {', '.join(map(str, table.columns[:12]))})"
        )
    if table.empty:
        raise DataError(f"{path}: a header but no rows; expected {what}")
    return table


def numeric_column(path: Path, table: pd.DataFrame, column: str, integer: bool) -> np.ndarray:
    """Column ``column`` as numbers; the first value that is not one is named with its line."""
    values = pd.to_numeric(table[column].str.strip(), errors="coerce")
    bad = values.isna().to_numpy()
    if integer:
        bad = bad | (values.fillna(0) % 1 != 0).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        raise DataError(f"{path}, line {i + 2}: {column} {table[column].iloc[i]!r} is not {kind}")
    return values.to_numpy(dtype=np.int64 if integer else np.float64)


def raw_csv_files(root: str | Path | None, columns: Sequence[str], expected: str) -> list[Path]:
    """The one raw CSV a raw-format reader reads: ``data.root`` itself, or the single matching CSV in it."""
    path = folder(root, f"{expected} (or a folder holding it)")
    if path.is_file():
        return [path]
    found = raw_csv_file(path, columns)
    if found is None:
        raise DataError(f"{path}: no single CSV file whose header has {','.join(columns)}; expected {expected}")
    return [found]


def raw_csv_file(root: Path, columns: Sequence[str]) -> Path | None:
    """The CSV under ``root`` (or ``root`` itself) whose header holds ``columns``, if exactly one does."""
    candidates = [root] if root.is_file() else sorted(p for p in root.iterdir() if p.suffix == ".csv" and p.is_file())
    matches = [p for p in candidates if set(columns) <= set(_header(p))]
    return matches[0] if len(matches) == 1 else None


def _header(path: Path) -> list[str]:
    try:
        with open(path, encoding="latin-1") as handle:
            return [c.strip().strip('"') for c in handle.readline().split(",")]
    except OSError:
        return []
