"""The statistics command, through the same Hydra config as training."""

from __future__ import annotations

import pytest

from gainakt.data.stats import main
from tests.conftest import FIXTURES


def test_stats_of_a_raw_file(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    root = FIXTURES / "assist2009_raw"
    code = main(["data=custom", f"data.root={root}", f"data.cache_dir={tmp_path}", "data.min_length=1"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"dataset            {root} (format assist2009_raw)" in out
    for line in (
        "students           3\n",
        "interactions       21\n",
        "skills             4\n",
        "problems           13\n",
        "multi-skill        4 interactions, 3 problems",  # 61090 has {37} once and {37, 47} once
        "reader adjusted    no skill dropped: 4",
        "reader adjusted    skill rows folded: 5",
    ):
        assert line in out, line
    assert "correct rate       0.6190" in out  # 13 of 21
    assert "sequence length    mean 7.0; q0 6, q25 6.5, q50 7, q75 7.5, q90 7.8, q100 8" in out
    assert "split (data.fold=0)" in out and out.count(" / ") >= 6


def test_stats_split_sizes_follow_the_fold(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    root = FIXTURES / "assist2015_raw"
    assert main(["data=assist2015", f"data.root={root}", "data.fold=1", f"data.cache_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    # 4 students: the protocol holds out round(0.2 * 4) = 1 as test, folds over the other 3
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("  ")}
    assert sum(int(v) for v in rows.values()) == 4 and rows["test"] == "1"
    assert "reader adjusted    partial credit dropped: 4" in out


def test_stats_reports_bad_input_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["data=custom", f"data.root={tmp_path / 'missing'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.root=") and "does not exist" in err and err.count("\n") == 1
