"""Write datasets in each supported file format, for round-trip and corruption tests.

A dataset here is a list of students; a student is ``(user_id, rows)`` with rows of
``(problem_id, skill_ids tuple, response)`` in original ids, as a source would hold them.
"""

from __future__ import annotations

import json
from pathlib import Path

Student = tuple[int, list[tuple[int, tuple[int, ...], int]]]


def _join(values) -> str:
    return ",".join(str(v) for v in values)


def write_three_line(folder: Path, train: list[Student], test: list[Student], trailing_comma: bool = False) -> None:
    end = "," if trailing_comma else ""
    for name, students in (("data_train.csv", train), ("data_test.csv", test)):
        lines = []
        for _, rows in students:
            lines += [str(len(rows)), _join(s[0] for _, s, _ in rows) + end, _join(r for _, _, r in rows) + end]
        (folder / name).write_text("\n".join(lines) + "\n")


def write_dtransformer(folder: Path, train: list[Student], test: list[Student]) -> None:
    for name, students in (("train.txt", train), ("test.txt", test)):
        lines = []
        for _, rows in students:
            lines += [str(len(rows)), _join(p for p, _, _ in rows), _join(s[0] for _, s, _ in rows),
                      _join(r for _, _, r in rows)]
        (folder / name).write_text("\n".join(lines) + "\n")


def write_akt(folder: Path, parts: list[list[Student]], problems: bool) -> None:
    """Five files ``data_test1.csv`` .. ``data_test5.csv``, one per part."""
    for k, students in enumerate(parts, start=1):
        lines = []
        for index, (user, rows) in enumerate(students):
            lines.append(f"{index + 1},{user}")
            if problems:
                lines.append(_join(p for p, _, _ in rows))
            lines += [_join(s[0] for _, s, _ in rows), _join(r for _, _, r in rows)]
        (folder / f"data_test{k}.csv").write_text("\n".join(lines) + "\n")


def write_pykt(folder: Path, train: list[Student], test: list[Student], folds: list[int],
               chunk: int | None = None) -> None:
    """``train_valid.csv`` + ``test.csv``; with ``chunk``, pykt's ``*_sequences.csv`` (rows of ``chunk``, -1 padded)."""
    suffix = "" if chunk is None else "_sequences"
    for name, students, fold_of in (("train_valid", train, folds), ("test", test, [-1] * len(test))):
        lines = ["fold,uid,questions,concepts,responses"]
        for (user, rows), fold in zip(students, fold_of):
            pieces = [rows] if chunk is None else [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
            for piece in pieces:
                pad = 0 if chunk is None else chunk - len(piece)
                questions = _join([p for p, _, _ in piece] + [-1] * pad)
                concepts = _join(["_".join(map(str, s)) for _, s, _ in piece] + [-1] * pad)
                responses = _join([r for _, _, r in piece] + [-1] * pad)
                lines.append(f'{fold},{user},"{questions}","{concepts}","{responses}"')
        (folder / f"{name}{suffix}.csv").write_text("\n".join(lines) + "\n")


def write_keyid2idx(folder: Path, skills: dict[str, int], users: dict[str, int]) -> None:
    (folder / "keyid2idx.json").write_text(json.dumps({"concepts": skills, "uid": users, "max_concepts": 1}))


def write_assist2015_raw(path: Path, students: list[Student]) -> None:
    lines = ["user_id,log_id,sequence_id,correct"]
    log = 1000
    for user, rows in students:
        for _, skills, response in rows:
            log += 1
            lines.append(f"{user},{log},{skills[0]},{response}")
    path.write_text("\n".join(lines) + "\n")


def write_assist2009_raw(path: Path, students: list[Student]) -> None:
    """One row per skill of each answer, all rows of one skill together (as the real file is ordered)."""
    rows = []
    order = 5000
    for user, answers in students:
        for problem, skills, response in answers:
            order += 1
            rows += [(skill, order, user, problem, response) for skill in skills]
    rows.sort(key=lambda r: r[0])
    lines = ["order_id,user_id,problem_id,correct,skill_id,skill_name"]
    lines += [f"{o},{u},{p},{r},{s},Skill \xe9{s}" for s, o, u, p, r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
