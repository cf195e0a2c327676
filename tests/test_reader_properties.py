"""Property-based tests of the readers: valid random datasets round-trip, corrupted ones fail loudly.

Each format gets random students written by ``tests.writers`` and read back; the interactions must
come back identical in original ids. A single corruption (a response that is not 0/1, a list one
item short, a skill outside the declared range, a token that is not a number) must raise a
:class:`DataError` naming the file and the exact line, never yield a dataset.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gainakt.data.formats import akt, assist2009_raw, assist2015_raw, dtransformer, pykt, three_line
from gainakt.data.interactions import InteractionData
from gainakt.errors import DataError
from tests.writers import (
    Student,
    write_akt,
    write_assist2009_raw,
    write_assist2015_raw,
    write_dtransformer,
    write_pykt,
    write_three_line,
)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_SKILL = 12


def students(max_skills: int = 1, min_size: int = 1) -> st.SearchStrategy[list[Student]]:
    row = st.tuples(
        st.integers(0, 30),
        st.sets(st.integers(1, MAX_SKILL), min_size=1, max_size=max_skills).map(lambda s: tuple(sorted(s))),
        st.integers(0, 1),
    )
    student = st.tuples(st.integers(0, 10**6), st.lists(row, min_size=1, max_size=12))
    return st.lists(student, min_size=min_size, max_size=8, unique_by=lambda s: s[0])


def as_read(data: InteractionData, problems: bool = True) -> list[list[tuple]]:
    """Per student, rows of (problem, skill set, response) in original ids, as the reader returns them."""
    out = []
    for i in range(data.num_students):
        rows = range(data.offsets[i], data.offsets[i + 1])
        out.append([
            (
                int(data.problem_ids[data.problems[r]]) if problems and data.problems is not None else None,
                tuple(int(data.skill_ids[s]) for s in data.skills[r] if s >= 0),
                int(data.responses[r]),
            )
            for r in rows
        ])
    return out


def as_written(studs: list[Student], problems: bool = True) -> list[list[tuple]]:
    return [[(p if problems else None, s, r) for p, s, r in rows] for _, rows in studs]


def in_tmp(write: Callable[[Path], None], read: Callable[[Path], InteractionData]) -> InteractionData:
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))
        return read(Path(tmp))


@SETTINGS
@given(students(), students())
def test_three_line_round_trip(train: list[Student], test: list[Student]) -> None:
    data = in_tmp(lambda d: write_three_line(d, train, test, trailing_comma=True), lambda d: three_line.read(d, {}))
    assert as_read(data) == as_written(train + test, problems=False)


@SETTINGS
@given(students(), students())
def test_dtransformer_round_trip(train: list[Student], test: list[Student]) -> None:
    data = in_tmp(lambda d: write_dtransformer(d, train, test), lambda d: dtransformer.read(d, {}))
    assert as_read(data) == as_written(train + test)


@SETTINGS
@given(st.lists(students(), min_size=5, max_size=5), st.booleans())
def test_akt_round_trip(parts: list[list[Student]], problems: bool) -> None:
    data = in_tmp(lambda d: write_akt(d, parts, problems), lambda d: akt.read(d, {}))
    assert as_read(data) == as_written([s for part in parts for s in part], problems)
    assert data.student_ids.tolist() == [str(u) for part in parts for u, _ in part]


@pytest.mark.parametrize("problems", [True, False])
def test_akt_file_that_fits_both_layouts_takes_the_other_files_layout(problems: bool) -> None:
    """Three students of two answers, with problems: 12 lines of two values each, which split as
    3 or 4 lines per record alike; the other four files decide (hypothesis found this)."""
    one = [[(0, [(0, (1,), 0)])] for _ in range(4)]
    both = [(0, [(0, (1,), 0), (0, (1,), 0)]), (1, [(0, (1,), 0), (0, (1,), 0)]), (2, [(0, (1,), 0), (0, (1,), 0)])]
    parts = [*one, both]
    data = in_tmp(lambda d: write_akt(d, parts, problems), lambda d: akt.read(d, {}))
    assert as_read(data) == as_written([s for part in parts for s in part], problems)


@SETTINGS
@given(students(max_skills=3), students(max_skills=3), st.sampled_from([None, 5]))
def test_pykt_round_trip(train: list[Student], test: list[Student], chunk: int | None) -> None:
    folds = [i % 5 for i in range(len(train))]
    data = in_tmp(lambda d: write_pykt(d, train, test, folds, chunk), lambda d: pykt.read(d, {}))
    assert as_read(data) == as_written(train + test)
    assert data.fold.tolist() == folds + [-1] * len(test)


@SETTINGS
@given(students())
def test_raw_2015_round_trip(studs: list[Student]) -> None:
    data = in_tmp(lambda d: write_assist2015_raw(d / "raw.csv", studs), lambda d: assist2015_raw.read(d, {}))
    expected = dict(zip((str(u) for u, _ in studs), as_written(studs, problems=False)))
    assert dict(zip(data.student_ids.tolist(), as_read(data, problems=False))) == expected


@SETTINGS
@given(students(max_skills=3))
def test_raw_2009_round_trip(studs: list[Student]) -> None:
    data = in_tmp(lambda d: write_assist2009_raw(d / "skills.csv", studs), lambda d: assist2009_raw.read(d, {}))
    expected = dict(zip((str(u) for u, _ in studs), as_written(studs)))
    assert dict(zip(data.student_ids.tolist(), as_read(data))) == expected


CORRUPTIONS = ("response", "short", "range", "token")


def corrupt_line(line: str, how: str) -> str:
    tokens = line.split(",")
    if how == "short":
        return ",".join(tokens[:-1]) if len(tokens) > 1 else "0,1"
    if how == "token":
        return ",".join(tokens[:-1] + ["x"])
    if how == "range":
        return ",".join(tokens[:-1] + [str(MAX_SKILL + 1)])
    return ",".join(tokens[:-1] + ["2"])


@SETTINGS
@given(students(), st.data(), st.sampled_from(CORRUPTIONS), st.sampled_from(["three_line", "dtransformer", "akt"]))
def test_corrupted_line_formats_name_the_file_and_line(
    studs: list[Student], draw: st.DataObject, how: str, format: str
) -> None:
    record = draw.draw(st.integers(0, len(studs) - 1))
    size = {"three_line": 3, "dtransformer": 4, "akt": 4}[format]
    # line within the record: the response line, or the skill line for skill corruptions
    offset = size - 1 if how == "response" else size - 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if format == "three_line":
            write_three_line(folder, studs, studs)
            path, read = folder / "data_train.csv", three_line.read
        elif format == "dtransformer":
            write_dtransformer(folder, studs, studs)
            path, read = folder / "train.txt", dtransformer.read
        else:
            write_akt(folder, [studs] * 5, problems=True)
            path, read = folder / "data_test1.csv", akt.read
        lines = path.read_text().splitlines()
        number = record * size + offset
        lines[number] = corrupt_line(lines[number], how)
        path.write_text("\n".join(lines) + "\n")
        try:
            read(folder, {"skill_range": [1, MAX_SKILL]})
        except DataError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"{how} corruption on line {number + 1} of {path.name} was read without error")
    assert path.name in message
    assert re.search(rf"line {number + 1}\b", message), message


@SETTINGS
@given(students(), st.data(), st.sampled_from(["response", "range", "token"]))
def test_corrupted_raw_2015_names_the_line(studs: list[Student], draw: st.DataObject, how: str) -> None:
    total = sum(len(rows) for _, rows in studs)
    row = draw.draw(st.integers(1, total))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw.csv"
        write_assist2015_raw(path, studs)
        lines = path.read_text().splitlines()
        fields = lines[row].split(",")
        if how == "response":
            fields[3] = "2"
        elif how == "range":
            fields[2] = str(MAX_SKILL + 1)
        else:
            fields[0] = "u1"
        lines[row] = ",".join(fields)
        path.write_text("\n".join(lines) + "\n")
        try:
            assist2015_raw.read(path, {"skill_range": [1, MAX_SKILL]})
        except DataError as exc:
            assert "raw.csv" in str(exc) and f"line {row + 1}:" in str(exc), str(exc)
        else:
            raise AssertionError(f"{how} corruption on line {row + 1} was read without error")


def test_round_trip_renumbers_consistently_across_files() -> None:
    """Skill ids shared by the train and test files map to the same index."""
    train = [(1, [(0, (5,), 1), (0, (9,), 0)])]
    test = [(2, [(0, (9,), 1), (0, (5,), 1)])]
    data = in_tmp(lambda d: write_three_line(d, train, test), lambda d: three_line.read(d, {}))
    assert np.array_equal(data.skills[:, 0], [0, 1, 1, 0])
