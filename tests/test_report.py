"""``gainakt.report``: one table per sweep, failed and missing jobs named, the rest still reported."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gainakt.report import main, write_report

from .conftest import TINY, run_cli

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _fake_job(folder: Path, overrides: list[str], summary: dict | None) -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))


def test_mean_and_std_over_seeds_per_configuration(tmp_path):
    values = {("a", 1): 0.60, ("a", 2): 0.70, ("a", 3): 0.80, ("b", 1): 0.50, ("b", 2): 0.55}
    for number, ((schedule, seed), auc) in enumerate(values.items()):
        _fake_job(tmp_path / str(number), [f"schedule={schedule}", f"seed={seed}", "trainer.max_epochs=3"],
                  {"status": "completed", "seed": seed, "test/enc2_auc": auc, "val/gain_std": auc / 10})  # fmt: skip
    report = write_report(tmp_path)
    table = pd.read_csv(tmp_path / "report.csv")
    assert report.params == ["schedule"] and report.repeats == ["seed"]
    assert list(table["schedule"]) == ["a", "b"] and list(table["n_runs"]) == [3, 2]
    assert table["test/enc2_auc_mean"].tolist() == pytest.approx([0.70, 0.525])
    assert table["test/enc2_auc_std"].tolist() == pytest.approx([0.1, pd.Series([0.5, 0.55]).std()])
    md = (tmp_path / "report.md").read_text()
    assert "0.7000 ± 0.1000" in md and "multirun.yaml" in md  # says missing jobs cannot be detected
    assert (tmp_path / "plot_schedule.png").read_bytes().startswith(PNG)


def test_folds_are_repeats_like_seeds(tmp_path):
    """A 5-fold sweep (-m data.fold=0,...,4) of two configurations gives one row per configuration."""
    for number, (response, fold) in enumerate((r, f) for r in ("guess_slip", "threshold") for f in range(5)):
        auc = 0.70 + 0.01 * fold + (0.0 if response == "guess_slip" else -0.05)
        _fake_job(tmp_path / str(number), [f"model.response={response}", f"data.fold={fold}", "data=assist2015"],
                  {"status": "completed", "seed": 42, "test/enc2_auc": auc, "theta": 0.4})  # fmt: skip
    report = write_report(tmp_path)
    table = pd.read_csv(tmp_path / "report.csv")
    assert report.params == ["model.response"] and report.repeats == ["data.fold"]
    assert table["model.response"].tolist() == ["guess_slip", "threshold"]
    assert table["n_runs"].tolist() == [5, 5] and table["folds"].tolist() == ["0 1 2 3 4"] * 2
    folds = pd.Series([0.70 + 0.01 * f for f in range(5)])
    assert table["test/enc2_auc_mean"].tolist() == pytest.approx([folds.mean(), folds.mean() - 0.05])
    assert table["test/enc2_auc_std"].tolist() == pytest.approx([folds.std()] * 2)
    md = (tmp_path / "report.md").read_text()
    assert "mean ± std over folds (data.fold)" in md and f"{folds.mean():.4f} ± {folds.std():.4f}" in md


def test_a_sweep_of_folds_alone_says_so(tmp_path):
    """The default model on 5 folds and nothing else: one row, and the report names the folds as what varied."""
    for fold in range(5):
        _fake_job(tmp_path / str(fold), [f"data.fold={fold}", "data=assist2015"],
                  {"status": "completed", "seed": 42, "test/enc1_auc": 0.71 + 0.001 * fold,
                   "share_predicted_wrong": 0.08 + 0.01 * fold, "share_predicted_wrong_enc1": 0.1})  # fmt: skip
    report = write_report(tmp_path)
    assert report.params == [] and report.repeats == ["data.fold"]
    md = (tmp_path / "report.md").read_text()
    assert "Swept: nothing but the folds (data.fold);" in md
    # the issue's "not mastered" share is a column of its own, beside encoder 1's
    header = next(line for line in md.splitlines() if line.startswith("| runs"))
    assert "| share_predicted_wrong | share_predicted_wrong_enc1 |" in header
    shares = pd.Series([0.08 + 0.01 * f for f in range(5)])
    assert f"{shares.mean():.4f} ± {shares.std():.4f}" in md


def test_not_a_sweep_folder_is_one_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no run found" in capsys.readouterr().err


def test_a_folder_of_single_runs_and_a_single_run_are_reported_too(tmp_path):
    """``outputs/runs/<date>/<time>_<id>``: the runs below the folder are the jobs, grouped by their
    command-line overrides; one run folder alone is a report of one run that says nothing was swept."""
    runs = tmp_path / "runs"
    for day, stamp, fold, auc in (("d1", "t1", 0, 0.70), ("d1", "t2", 1, 0.72), ("d2", "t3", 0, 0.60)):
        extra = ["model.related_skills=32"] if day == "d2" else []
        _fake_job(runs / day / stamp, [f"data.fold={fold}", *extra],
                  {"status": "completed", "seed": 42, "test/enc2_auc": auc})  # fmt: skip
        (runs / day / stamp / "checkpoints").mkdir()  # a run's own subfolders are not runs
    report = write_report(runs)
    assert sorted(job.name for job in report.jobs) == ["d1/t1", "d1/t2", "d2/t3"]
    assert report.params == ["model.related_skills"] and report.repeats == ["data.fold"]
    table = pd.read_csv(runs / "report.csv")
    assert dict(zip(table["model.related_skills"].astype(str), table["n_runs"])) == {"32": 1, "-": 2}  # "-": not given
    single = write_report(runs / "d1" / "t1", tmp_path / "one")
    assert [job.name for job in single.jobs] == ["t1"] and single.params == [] and single.repeats == []
    assert "Swept: nothing; rows are configurations, values are one run per configuration" in (tmp_path / "one" / "report.md").read_text()


def test_multirun_then_report(tmp_path):
    """The README's commands: a real 2 x 2 sweep on tiny synthetic data, then the report."""
    sweep = tmp_path / "sweep"
    args = ["-m", "schedule=inverse_warmup", "schedule.phase1_frac=0.34,0.5", "seed=1,2", "trainer.max_epochs=2",
            f"hydra.sweep.dir={sweep}", *TINY]  # fmt: skip
    run = run_cli("gainakt.train", args, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1", "2", "3"]  # one folder per job, each its own run folder
    run_dirs = [json.loads((sweep / j / "summary.json").read_text())["run_dir"] for j in jobs]
    assert run_dirs == [str(sweep / j) for j in jobs]

    assert main([str(sweep)]) == 0
    table = pd.read_csv(sweep / "report.csv")
    assert table["schedule.phase1_frac"].tolist() == [0.34, 0.5]
    assert table["n_runs"].tolist() == [2, 2] and table["seeds"].tolist() == ["1 2", "1 2"]
    assert table["val/gain_std_mean"].notna().all() and table["test/enc2_auc_std"].notna().all()
    assert (sweep / "plot_schedule.phase1_frac.png").read_bytes().startswith(PNG)

    # Break the sweep: job 1 never started, job 2 still running, job 3 failed.
    import shutil

    shutil.rmtree(sweep / "1")
    (sweep / "2" / "summary.json").unlink()
    summary3 = json.loads((sweep / "3" / "summary.json").read_text())
    (sweep / "3" / "summary.json").write_text(json.dumps({**summary3, "status": "failed", "error": "boom at epoch 1"}))
    report = write_report(sweep)
    table = pd.read_csv(sweep / "report.csv")
    assert table["n_runs"].tolist() == [1, 0] and table["n_failed"].tolist() == [1, 2]
    problems = {job.name: job.problem for job in report.jobs if not job.ok}
    assert set(problems) == {"1", "2", "3"}
    assert "missing" in problems["1"] and "no summary.json" in problems["2"] and "boom at epoch 1" in problems["3"]
    md = (sweep / "report.md").read_text()
    assert "4 jobs: 1 completed, 3 failed or missing" in md and "boom at epoch 1" in md
