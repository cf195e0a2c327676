"""Format detection, the cache (content and option keys, concurrent builders) and the split protocol."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from gainakt.data.interactions import TEST_FOLD, UNASSIGNED
from gainakt.data.loading import detect_format, load_dataset
from gainakt.data.protocol import complete_folds, split_students
from gainakt.errors import ConfigError, DataError
from tests.conftest import FIXTURES
from tests.writers import write_akt, write_dtransformer, write_pykt, write_three_line

TRAIN = [(i, [(i % 3, (1 + i % 4,), i % 2), (2, (2,), 1), (1, (3,), 0)]) for i in range(20)]
TEST = [(100 + i, [(1, (1,), 1)] * 4) for i in range(5)]


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    made = {name: tmp_path / name for name in ("pykt", "three_line", "akt", "dtransformer")}
    for path in made.values():
        path.mkdir()
    write_pykt(made["pykt"], TRAIN, TEST, [i % 5 for i in range(len(TRAIN))])
    write_three_line(made["three_line"], TRAIN, TEST, trailing_comma=True)
    write_akt(made["akt"], [TRAIN[k::5] for k in range(5)], problems=True)
    write_dtransformer(made["dtransformer"], TRAIN, TEST)
    made["assist2015_raw"] = FIXTURES / "assist2015_raw"
    made["assist2009_raw"] = FIXTURES / "assist2009_raw" / "skill_builder_data.csv"
    return made


def test_auto_detects_every_format(folders: dict[str, Path]) -> None:
    for name, path in folders.items():
        assert detect_format(path) == name


def test_auto_detected_data_equals_explicit_format(folders: dict[str, Path], tmp_path: Path) -> None:
    for name, path in folders.items():
        auto = load_dataset("auto", str(path), {}, None)
        explicit = load_dataset(name, str(path), {}, None)
        assert np.array_equal(auto.skills, explicit.skills) and np.array_equal(auto.fold, explicit.fold)


def test_auto_lists_what_it_found_and_what_it_knows(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError) as info:
        detect_format(tmp_path)
    message = str(info.value)
    assert "found: notes.txt, sub/" in message
    for known in ("pykt", "three_line", "akt", "dtransformer", "assist2015_raw", "assist2009_raw"):
        assert f"{known}:" in message


def test_explicit_format_overrides_and_reports_a_mismatch(folders: dict[str, Path]) -> None:
    with pytest.raises(DataError, match=r"data_train.csv, line 5: .* is not an interaction count; expected the 4-line"):
        load_dataset("dtransformer", str(folders["three_line"]), {}, None)  # a 3-line folder read as 4-line
    with pytest.raises(ConfigError, match="data.format='nope'"):
        load_dataset("nope", str(folders["three_line"]), {}, None)


def test_split_is_by_student_and_honours_the_test_file(folders: dict[str, Path]) -> None:
    data = load_dataset("three_line", str(folders["three_line"]), {}, None)
    assert (data.fold[-len(TEST) :] == TEST_FOLD).all() and (data.fold[: len(TRAIN)] >= 0).all()
    assert np.bincount(data.fold[: len(TRAIN)]).tolist() == [4] * 5
    seen = []
    for fold in range(5):
        split = split_students(data, fold)
        assert split["test"].tolist() == list(range(len(TRAIN), len(TRAIN) + len(TEST)))
        assert not set(split["train"]) & set(split["val"])
        seen += split["val"].tolist()
    assert sorted(seen) == list(range(len(TRAIN)))


def test_complete_folds_draws_test_only_without_a_source_split() -> None:
    none = complete_folds(np.full(100, UNASSIGNED), seed=0)
    assert (none == TEST_FOLD).sum() == 20 and np.bincount(none[none >= 0]).tolist() == [16] * 5
    pair = complete_folds(np.array([UNASSIGNED] * 10 + [TEST_FOLD] * 3), seed=0)
    assert (pair[:10] >= 0).all() and (pair[10:] == TEST_FOLD).all()
    assert np.array_equal(complete_folds(np.full(50, UNASSIGNED), seed=3), complete_folds(np.full(50, UNASSIGNED), 3))
    assert not np.array_equal(complete_folds(np.full(50, UNASSIGNED), 3), complete_folds(np.full(50, UNASSIGNED), 4))


def test_cache_rebuilds_when_a_file_or_an_option_changes(folders: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = str(folders["three_line"])
    first = load_dataset("three_line", root, {"split_seed": 0}, cache)
    assert len(list(cache.glob("*.npz"))) == 1
    again = load_dataset("three_line", root, {"split_seed": 0}, cache)
    assert np.array_equal(first.fold, again.fold) and len(list(cache.glob("*.npz"))) == 1
    other_seed = load_dataset("three_line", root, {"split_seed": 1}, cache)
    assert len(list(cache.glob("*.npz"))) == 2 and not np.array_equal(first.fold, other_seed.fold)
    train = folders["three_line"] / "data_train.csv"
    train.write_text(train.read_text().replace("1,0", "0,0", 1))
    changed = load_dataset("three_line", root, {"split_seed": 0}, cache)
    assert len(list(cache.glob("*.npz"))) == 3 and changed.responses.sum() != first.responses.sum()


def test_reader_options_key_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = str(FIXTURES / "assist2015_raw")
    dropped = load_dataset("assist2015_raw", root, {"partial_credit": "drop"}, cache)
    binarised = load_dataset("assist2015_raw", root, {"partial_credit": "binarise"}, cache)
    assert (dropped.num_interactions, binarised.num_interactions) == (26, 30)
    assert load_dataset("assist2015_raw", root, {"partial_credit": "binarise"}, cache).num_interactions == 30


def test_two_processes_building_one_cache_do_not_corrupt_it(folders: dict[str, Path], tmp_path: Path) -> None:
    """Both processes build each round's (empty) cache at the same moment and then read it back."""
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from gainakt.data.interactions import InteractionData
        from gainakt.data.loading import load_dataset
        start = float(sys.argv[1])
        for round in range(6):
            while time.time() < start + round:
                pass
            folder = Path({str(cache)!r}) / str(round)
            built = load_dataset("pykt", {str(folders["pykt"])!r}, {{}}, folder)
            (entry,) = folder.glob("*.npz")
            cached = InteractionData.load(entry)
            assert (cached.skills == built.skills).all() and (cached.fold == built.fold).all()
        print("ok")
        """
    )
    start = str(time.time() + 2.0)
    repo = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, start], cwd=repo, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", err
    for round in range(6):
        assert len(list((cache / str(round)).glob("*.npz"))) == 1
        assert not list((cache / str(round)).glob(".*.tmp")), "a temporary file was left behind"
