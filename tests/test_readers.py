"""Each reader on small hand-checked inputs: raw CSV fixtures and files written in each format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gainakt.data.formats import akt, assist2009_raw, assist2015_raw, dtransformer, pykt, three_line
from gainakt.data.interactions import TEST_FOLD, UNASSIGNED, InteractionData
from gainakt.data.loading import load_dataset
from gainakt.data.protocol import split_students
from gainakt.data.qmatrix import merge_skill_rows, q_matrix
from gainakt.errors import ConfigError, DataError
from gainakt.train import train
from tests.conftest import FIXTURES
from tests.writers import write_akt, write_dtransformer, write_keyid2idx, write_pykt, write_three_line

RAW2015 = FIXTURES / "assist2015_raw"
RAW2009 = FIXTURES / "assist2009_raw"


def sequence(data: InteractionData, student_id: str) -> tuple[list[list[str]], list[int]]:
    """A student's skill sets (original ids) and responses."""
    i = int(np.flatnonzero(data.student_ids == student_id)[0])
    rows = slice(data.offsets[i], data.offsets[i + 1])
    sets = [[str(data.skill_ids[s]) for s in row if s >= 0] for row in data.skills[rows]]
    return sets, data.responses[rows].tolist()


def test_raw_2015_drops_partial_credit_and_orders_by_log_id() -> None:
    data = assist2015_raw.read(RAW2015, {})
    assert data.num_interactions == 26 and data.adjusted == {"partial_credit_dropped": 4}
    assert sorted(data.student_ids.tolist()) == ["100", "50121", "50964", "72374"]
    skills, responses = sequence(data, "50121")
    assert responses == [0, 1, 1, 1, 1, 0, 1]  # the log_id 167478060 row comes third although it is late in the file
    assert [s[0] for s in skills] == ["7014"] * 4 + ["37570", "5965", "5965"]
    assert data.num_skills == 3 and set(data.skill_ids) == {"5965", "7014", "37570"}
    assert (data.fold == UNASSIGNED).all()


def test_raw_2015_binarise_keeps_partial_credit_as_incorrect() -> None:
    data = assist2015_raw.read(RAW2015, {"partial_credit": "binarise"})
    assert data.num_interactions == 30 and data.adjusted == {"partial_credit_binarised": 4}
    assert sequence(data, "50121")[1] == [0, 1, 0, 1, 1, 1, 0, 1]


def test_raw_2015_rejects_unknown_partial_credit_option() -> None:
    with pytest.raises(ConfigError, match="data.reader.partial_credit='round'"):
        assist2015_raw.read(RAW2015, {"partial_credit": "round"})


def test_raw_2009_folds_rows_of_one_answer_into_a_skill_set() -> None:
    data = assist2009_raw.read(RAW2009, {})
    # 30 rows, 25 answers; 4 answers have only empty skill ids and are dropped (user 91000 with them)
    assert data.num_interactions == 21
    assert data.adjusted == {"no_skill_dropped": 4, "skill_rows_folded": 5}
    assert data.student_ids.tolist() == ["64525", "70363", "78276"]
    skills, responses = sequence(data, "64525")
    assert skills == [["10", "13"], ["10", "47"], ["10"], ["13"], ["13"], ["13"]]
    assert responses == [1, 1, 0, 1, 0, 1]
    skills, responses = sequence(data, "78276")
    assert skills == [["37"], ["37", "47"], ["37"], ["37"], ["47"], ["47"], ["37"]]
    assert responses == [1, 0, 1, 1, 0, 1, 0]
    assert data.skills.shape[1] == 2  # one row per answer, never one per skill
    q = q_matrix(data)
    problem = int(np.flatnonzero(data.problem_ids == "51424")[0])
    assert sorted(data.skill_ids[q[problem]].tolist()) == ["10", "13"]


def test_raw_2009_disagreeing_rows_of_one_answer_are_an_error(tmp_path: Path) -> None:
    text = (RAW2009 / "skill_builder_data.csv").read_bytes().decode("latin-1").splitlines()
    header = text[0].split(",")
    row = text[7].split(",")  # order 35450204 again (skill 13): flip its correctness
    row[header.index("correct")] = "1"
    text[7] = ",".join(row)
    bad = tmp_path / "skill_builder_data.csv"
    bad.write_bytes("\n".join(text).encode("latin-1"))
    with pytest.raises(DataError, match=r"skill_builder_data.csv, line 8: order_id 35450204 has correct 1 but line 4"):
        assist2009_raw.read(bad, {})


def test_three_line_tolerates_trailing_commas_and_keeps_the_test_file(tmp_path: Path) -> None:
    train = [(0, [(0, (3,), 1), (0, (1,), 0)]), (0, [(0, (7,), 1)])]
    test = [(0, [(0, (1,), 1), (0, (3,), 1), (0, (3,), 0)])]
    write_three_line(tmp_path, train, test, trailing_comma=True)
    data = three_line.read(tmp_path, {})
    assert data.num_students == 3 and data.num_interactions == 6
    assert data.skill_ids.tolist() == ["1", "3", "7"]  # 1-based ids renumbered 0..C-1, originals kept
    assert data.skills[:, 0].tolist() == [1, 0, 2, 0, 1, 1]
    assert data.fold.tolist() == [UNASSIGNED, UNASSIGNED, TEST_FOLD]


def test_three_line_declared_range(tmp_path: Path) -> None:
    write_three_line(tmp_path, [(0, [(0, (1,), 1), (0, (111,), 0)])], [(0, [(0, (2,), 1)])])
    expected = r"data_train.csv, line 2: skill id 111; expected ids in the declared range 1..110"
    with pytest.raises(DataError, match=expected):
        three_line.read(tmp_path, {"skill_range": [1, 110]})


def test_akt_with_problem_lines_rotates_test_and_validation(tmp_path: Path) -> None:
    answer = [[(50 + i, (1 + i % 3,), i % 2), (50 + i, (2,), i % 2)] for i in range(2)]  # one answer, two skills
    parts = [[(100 * k + i, answer[i]) for i in range(2)] for k in range(5)]
    write_akt(tmp_path, parts, problems=True)
    data = akt.read(tmp_path, {})
    assert data.num_students == 10 and data.num_problems == 2 and data.rotating_test
    assert data.student_ids[:2].tolist() == ["0", "1"] and data.fold.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    for fold in range(5):
        split = split_students(data, fold)
        assert data.fold[split["test"]].tolist() == [fold, fold]
        assert data.fold[split["val"]].tolist() == [(fold + 1) % 5] * 2
        assert len(split["train"]) == 6
    merged = merge_skill_rows(data)  # each answer is listed once per skill: two rows become one
    assert merged.num_interactions == 15 and merged.adjusted["skill_rows_merged"] == 5


def test_akt_without_problem_lines(tmp_path: Path) -> None:
    parts = [[(k, [(0, (k + 1,), 1)] * (k + 1))] for k in range(5)]
    write_akt(tmp_path, parts, problems=False)
    data = akt.read(tmp_path, {})
    assert data.problems is None and data.lengths.tolist() == [1, 2, 3, 4, 5]


def test_dtransformer_reads_problems(tmp_path: Path) -> None:
    write_dtransformer(tmp_path, [(0, [(535, (46,), 1), (805, (46,), 0)])], [(0, [(805, (3,), 1)])])
    data = dtransformer.read(tmp_path, {})
    assert data.problem_ids.tolist() == ["535", "805"] and data.problems.tolist() == [0, 1, 1]
    assert data.skill_ids.tolist() == ["3", "46"] and data.fold.tolist() == [UNASSIGNED, TEST_FOLD]


def test_pykt_sequences_files_are_joined_back_per_student(tmp_path: Path) -> None:
    train = [(7, [(i, (i % 4,) if i % 5 else (1, 3), i % 2) for i in range(11)]), (8, [(1, (2,), 1)] * 3)]
    test = [(9, [(2, (0,), 0)] * 4)]
    full, cut = tmp_path / "full", tmp_path / "cut"
    full.mkdir(), cut.mkdir()
    write_pykt(full, train, test, folds=[0, 1])
    write_pykt(cut, train, test, folds=[0, 1], chunk=4)
    assert pykt.files(cut)[0].name == "train_valid_sequences.csv"
    a, b = pykt.read(full, {}), pykt.read(cut, {})
    for field in ("offsets", "skills", "responses", "fold", "student_ids", "problems"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.lengths.tolist() == [11, 3, 4] and a.skills.shape[1] == 2
    assert sequence(a, "7")[0][0] == ["1", "3"]  # a "1_3" concept is one interaction with two skills


def test_pykt_original_ids_from_keyid2idx(tmp_path: Path) -> None:
    write_pykt(tmp_path, [(0, [(1, (0,), 1), (1, (1,), 0)])], [(1, [(1, (1,), 1)])], folds=[0])
    write_keyid2idx(tmp_path, {"7014": 0, "5965": 1}, {"50121": 0, "72374": 1})
    data = pykt.read(tmp_path, {})
    assert data.student_ids.tolist() == ["50121", "72374"] and data.skill_ids.tolist() == ["7014", "5965"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"data_train.csv: the file is empty"),
        (b"2\n1,2\n0,1\n\xff\xfe\n", r"data_train.csv, line 4: not utf-8 text"),
        (b"2\n1,2\n0,2\n", r"data_train.csv, line 3: response 2; expected 0 or 1"),
        (b"2\n1,2\n0\n", r"data_train.csv, line 3: 1 responses but the count line says 2"),
        (b"2\n1,x\n0,1\n", r"data_train.csv, line 2: skill 'x' is not an integer"),
        (b"1,50121\n1,2\n0,1\n", r"data_train.csv, line 1: '1,50121' is not an interaction count"),
        (b"2\n1,2\n0,1\n3\n1,1,1\n", r"data_train.csv, line 4: the last record has 2 of its 3 lines"),
    ],
)
def test_three_line_bad_input_names_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "data_train.csv").write_bytes(content)
    with pytest.raises(DataError, match=message):
        three_line.read(tmp_path, {})


def test_raw_csv_bad_input_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "raw.csv"
    path.write_text("user_id,log_id,sequence_id,correct\n1,10,5,1\n1,11,5,yes\n")
    with pytest.raises(DataError, match=r"raw.csv, line 3: correct 'yes' is not a number"):
        assist2015_raw.read(path, {})
    path.write_text("user_id,log_id,sequence_id,correct\n1,10,5,1\n1,11,5,1.5\n")
    with pytest.raises(DataError, match=r"raw.csv, line 3: correct '1.5'; expected 0, 1 or partial credit"):
        assist2015_raw.read(path, {})
    path.write_text("user_id,sequence_id,correct\n1,5,1\n")
    with pytest.raises(DataError, match=r"raw.csv, line 1: header lacks column\(s\) log_id"):
        assist2015_raw.read(path, {})


def test_format_errors_reach_load_dataset_as_one_message(tmp_path: Path) -> None:
    (tmp_path / "data_train.csv").write_text("2\n1,2\n0,1\n")
    (tmp_path / "data_test.csv").write_text("1\n1\n7\n")
    with pytest.raises(DataError, match=r"data_test.csv, line 3: response 7"):
        load_dataset("three_line", str(tmp_path), {}, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_skills_from_problems_gives_each_answer_its_q_matrix_row(tmp_path: Path) -> None:
    plain = load_dataset("assist2009_raw", str(RAW2009), {}, None)
    full = load_dataset("assist2009_raw", str(RAW2009), {"skills_from_problems": True}, None)
    assert sequence(plain, "70363")[0][4] == ["37"]  # problem 61090 answered with skill 37 only here...
    assert sequence(full, "70363")[0][4] == ["37", "47"]  # ...but with {37, 47} by user 78276
    assert np.array_equal(q_matrix(plain), q_matrix(full)) and full.num_interactions == plain.num_interactions


def test_multi_skill_raw_data_trains_through_the_config(tiny_config) -> None:
    summary = train(tiny_config("data=custom", f"data.root={RAW2009}", "data.min_length=2"))
    assert summary["status"] == "completed", summary
