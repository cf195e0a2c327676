"""Reader for pykt-toolkit processed data: ``train_valid.csv`` (with ``fold``) and ``test.csv``.

One row per student, full sequence in log order; ``concepts`` and ``responses`` are comma lists and
a multi-skill interaction joins its skills with ``_`` (pykt's convention). Test rows get fold -1.
"""

from __future__ import annotations

import csv
from pathlib import Path

from gainakt.data.interactions import TEST_FOLD, InteractionData, from_sequences
from gainakt.errors import DataError

FILES = ("train_valid.csv", "test.csv")
OBTAIN = (
    "ASSISTments 2015 in pykt format is produced by pykt-toolkit's data preprocessing "
    "(https://github.com/pykt-team/pykt-toolkit, data/assist2015/); see README.md, 'Real datasets'."
)
REQUIRED_COLUMNS = ("fold", "uid", "concepts", "responses")


def required_files(root: str | Path | None) -> list[Path]:
    """The files this reader needs, failing with a message that says where to get them."""
    if root in (None, ""):
        raise DataError(
            "data.root is not set: expected a folder holding "
            f"{' and '.join(FILES)}. {OBTAIN} Pass it as data.root=/path/to/folder."
        )
    folder = Path(root).expanduser()
    paths = [folder / name for name in FILES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"expected file {missing[0]} (data.root={root}) but it does not exist. "
            f"A pykt dataset folder holds {' and '.join(FILES)}. {OBTAIN}"
        )
    return paths


def read_pykt(root: str | Path | None) -> InteractionData:
    """Read both files of a pykt folder into one dataset, keeping pykt's folds and test split."""
    skill_seqs: list[list[list[int]]] = []
    response_seqs: list[list[int]] = []
    folds: list[int] = []
    uids: list[str] = []
    for path in required_files(root):
        for line, row in _rows(path):
            fold = _int(row["fold"], path, line, "fold")
            if path.name == "test.csv":
                fold = TEST_FOLD
            elif fold < 0:
                raise DataError(f"{path}, line {line}: fold {fold} in train_valid.csv; expected 0 or more")
            skills = [_skill_set(tok, path, line) for tok in _split(row["concepts"])]
            responses = [_response(tok, path, line) for tok in _split(row["responses"])]
            if len(skills) != len(responses):
                raise DataError(
                    f"{path}, line {line}: {len(skills)} concepts but {len(responses)} responses; "
                    "expected one response per concept"
                )
            keep = [i for i, s in enumerate(skills) if s != [-1]]  # pykt pads windows with -1
            if any(responses[i] == -1 for i in keep):
                raise DataError(f"{path}, line {line}: response -1 for a real concept; expected 0 or 1")
            skill_seqs.append([skills[i] for i in keep])
            response_seqs.append([responses[i] for i in keep])
            folds.append(fold)
            uids.append(row["uid"])
    if not uids:
        raise DataError(f"{root}: no students found in {' or '.join(FILES)}")
    num_skills = 1 + max(s for seq in skill_seqs for ss in seq for s in ss)
    return from_sequences(skill_seqs, response_seqs, folds, num_skills, uids)


def _rows(path: Path):
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise DataError(
                    f"{path}, line 1: header {','.join(columns) or '(empty file)'} lacks column(s) "
                    f"{', '.join(missing)}; expected a pykt CSV with columns {','.join(REQUIRED_COLUMNS)}"
                )
            for row in reader:
                yield reader.line_num, row
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected a pykt CSV") from None


def _split(field: str | None) -> list[str]:
    return [tok for tok in (field or "").split(",") if tok.strip() != ""]


def _int(token: str | None, path: Path, line: int, what: str) -> int:
    try:
        return int(str(token).strip())
    except ValueError:
        raise DataError(f"{path}, line {line}: {what} {token!r} is not an integer") from None


def _skill_set(token: str, path: Path, line: int) -> list[int]:
    skills = [_int(part, path, line, "concept") for part in token.split("_")]
    if skills == [-1]:
        return skills
    if any(s < 0 for s in skills):
        raise DataError(f"{path}, line {line}: concept {token!r} is negative; expected skill ids from 0")
    return skills


def _response(token: str, path: Path, line: int) -> int:
    value = token.strip()
    if value == "-1":
        return -1
    if value not in ("0", "1"):
        raise DataError(f"{path}, line {line}: response {token!r}; expected 0 or 1")
    return int(value)
