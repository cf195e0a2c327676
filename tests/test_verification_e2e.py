"""Trajectories, verification outputs and evaluate, through the real config on tiny synthetic data."""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc

from gainakt.verification.checks import Thresholds, run_checks
from gainakt.run.config import compose_config
from gainakt.data.datamodule import Padding, WindowDataset
from gainakt.data.interactions import InteractionData
from gainakt.data.protocol import make_windows
from gainakt.evaluate import evaluate
from gainakt.model.gainakt3exp import GainAKT3Exp
from gainakt.run.summary import format_table
from gainakt.train import train
from gainakt.verification.trajectories import extract, read_csv
from tests.conftest import TINY, make_net, make_thresholds


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run shared by the tests of this module."""
    from tests.conftest import run_config

    run = tmp_path_factory.mktemp("verified") / "run"
    summary = train(run_config(run, ["trainer.max_epochs=2"]))
    assert summary["status"] == "completed"
    return run, summary


def test_run_folder_has_verification_outputs(trained_run):
    run, summary = trained_run
    report = json.loads((run / "verification.json").read_text())
    assert report["split"] == "test" and report["checks_total"] == 11
    assert [c["id"] for c in report["checks"]] == list(range(1, 12))
    for check in report["checks"]:
        assert {"id", "name", "value", "threshold", "passed", "reference"} <= check.keys()
    assert [c["id"] for c in report["recovery"]] == ["R1", "R2"]  # synthetic data has ground truth
    saved = json.loads((run / "summary.json").read_text())
    assert saved["checks_passed"] == report["checks_passed"] == sum(c["passed"] is True for c in report["checks"])
    assert saved["checks_total"] == 11 and summary["checks_total"] == 11
    assert f"{saved['checks_passed']}/11 checks passed" in format_table(saved)
    text = (run / "verification.md").read_text()
    assert "| 7 | encoder-2 AUC |" in text and "decision tree" in text
    params = json.loads((run / "parameters.json").read_text())
    assert len(params["beta"]) == 6 and 0.0 <= params["theta"] <= 1.0
    for name in ("mastery_curves", "gain_distribution", "gain_by_response", "training_curves", "learned_vs_true_rates"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000, name


def test_checks_agree_with_recomputation_from_trajectories_csv(trained_run):
    run, _ = trained_run
    report = json.loads((run / "verification.json").read_text())
    by_id = {c["id"]: c for c in report["checks"]}
    rows = read_csv(run / "trajectories.csv")
    assert set(rows["split"]) == {"val", "test"}
    test = rows[rows["split"] == "test"]
    assert len(test) == report["rows"]
    # recomputed independently of gainakt.verification.checks
    gain = test["gain"].to_numpy(np.float64)
    assert by_id[1]["value"] == pytest.approx(gain.std(), rel=1e-6)
    pearson = np.corrcoef(test["mastery_before"].to_numpy(np.float64), test["response"].to_numpy())[0, 1]
    assert by_id[4]["value"] == pytest.approx(pearson, rel=1e-5)
    auc = binary_auroc(torch.tensor(test["enc2_prob"].to_numpy()), torch.tensor(test["response"].to_numpy())).item()
    assert by_id[7]["value"] == pytest.approx(auc, abs=1e-6)
    match = np.mean((test["enc2_prob"] >= 0.5) == (test["response"] == 1))
    assert by_id[10]["value"] == pytest.approx(match)
    ratio = gain[test["response"] == 1].mean() / gain[test["response"] == 0].mean()
    assert by_id[6]["value"] == pytest.approx(ratio, rel=1e-6)
    # and every check, through the same functions, on the rows read back
    beta = np.array(json.loads((run / "parameters.json").read_text())["beta"])
    for result in run_checks(test, beta, make_thresholds()):
        expected = by_id[result.id]
        assert result.passed == expected["passed"], result.id
        if result.value is not None:
            assert result.value == pytest.approx(expected["value"], rel=1e-5, abs=1e-7), result.id


def test_trajectories_cover_every_scored_interaction(tiny_config):
    from hydra.utils import instantiate

    cfg = tiny_config()
    dm = instantiate(cfg.data)
    dm.setup()
    net = make_net(num_skills=dm.num_skills, d_model=16, n_heads=2, n_blocks=1, d_ff=32)
    rows = extract(net, dm, batch_size=7, progress=False)
    for split in ("val", "test"):
        windows = dm.datasets[split].windows
        part = rows[rows["split"] == split]
        assert len(part) == windows.num_interactions - len(windows)  # each window's first step is unscored
        students = set(dm.data.student_ids[windows.student])
        assert set(part["student"]) == students
        # step and response match the flat arrays
        index = {sid: i for i, sid in enumerate(dm.data.student_ids)}
        flat = dm.data.offsets[part["student"].map(index).to_numpy()] + part["step"].to_numpy()
        assert np.array_equal(part["response"].to_numpy(), dm.data.responses[flat])
        assert np.array_equal(part["skill"].astype(int).to_numpy(), dm.data.skills[flat, 0])
        np.testing.assert_allclose(part["true_mastery_before"], dm.data.truth["mastery_before"][flat], rtol=1e-6)
    # encoder 2 predicts each row from exactly the row's mastery_before (im_target=next, aggregate=min)
    theta = float(net.theta.detach().clamp(0, 1))
    temperature = float(net.temperature.detach())
    expected = 1.0 / (1.0 + np.exp(-(rows["mastery_before"].to_numpy(np.float64) - theta) / temperature))
    np.testing.assert_allclose(rows["enc2_prob"], expected, atol=1e-5)
    # batching does not change any value
    again = extract(net, dm, batch_size=64, progress=False)
    numeric = ["enc1_prob", "enc2_prob", "mastery_before", "mastery_after", "gain"]
    np.testing.assert_allclose(again[numeric].to_numpy(), rows[numeric].to_numpy(), atol=1e-5)
    assert again["student"].tolist() == rows["student"].tolist()


def test_multi_skill_rows_join_skills_and_aggregate_mastery():
    data = InteractionData(
        offsets=np.array([0, 4, 7]), skills=np.array([[0, -1], [0, 1], [1, -1], [0, 1], [1, -1], [1, -1], [0, 1]]),
        responses=np.array([1, 0, 1, 1, 0, 1, 1], dtype=np.int8), fold=np.array([-1, -1], dtype=np.int8),
        num_skills=2, student_ids=np.array(["x", "y"]),
    )  # fmt: skip
    windows = make_windows(data, np.array([0, 1]), window=200, min_length=3)
    dataset = WindowDataset(data, windows, np.full(2, -1), Padding(window=200, bucketing=True, multiple=1))
    holder = SimpleNamespace(data=data, datasets={"test": dataset}, eval_batch_size=8)
    for aggregate in ("min", "mean"):
        net = make_net(num_skills=2, d_model=8, n_heads=2, n_blocks=1, d_ff=16, aggregate=aggregate)
        rows = extract(net, holder, splits=("test",), progress=False)
        assert rows["skill"].tolist() == ["0|1", "1", "0|1", "1", "0|1"]
        batch = dataset.collate([0])
        out = net.eval()(batch["skills"], batch["responses"], batch["student"])
        trace = net.practised_mastery(out.gain, out.gains_all, batch["skills"], batch["student"])
        before = trace["mastery_before"][0, 1]  # student x, step 1: skills 0 and 1
        combine = before.min() if aggregate == "min" else before.mean()
        assert rows["mastery_before"].iloc[0] == pytest.approx(float(combine), abs=1e-6)
        assert rows["gain"].iloc[0] == pytest.approx(float(out.gain[0, 1].mean()), abs=1e-6)


def test_accumulate_all_reports_gain_on_other_skills(tiny_config):
    from hydra.utils import instantiate

    dm = instantiate(tiny_config().data)
    dm.setup()
    net = make_net(num_skills=dm.num_skills, d_model=16, n_heads=2, n_blocks=1, d_ff=32, accumulate="all")
    rows = extract(net, dm, splits=("test",), progress=False)
    report = run_checks(rows, net.beta.detach().numpy(), make_thresholds())
    assert (rows["gain_other"] > 0).all()
    assert report[1].value < 0.5 and report[1].passed is False  # 6 skills: most gain lands elsewhere


def _compose_evaluate(overrides):
    return compose_config("evaluate", overrides)


def test_evaluate_a_copied_checkpoint(trained_run, tmp_path, capsys):
    run, summary = trained_run
    copy = tmp_path / "elsewhere"
    (copy / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "best.ckpt", copy / "checkpoints" / "best.ckpt")
    # an option this version no longer knows (a run from an older version) is named and ignored
    saved = re.sub(r"(?m)^data:\n", "data:\n  obsolete_option: 1\n", (run / "config.yaml").read_text())
    assert "obsolete_option" in saved
    (copy / "config.yaml").write_text(saved)
    out = tmp_path / "evaluation"
    cfg = _compose_evaluate([f"ckpt_path={copy / 'checkpoints' / 'best.ckpt'}", f"run_dir={out}"])
    result = evaluate(cfg, [])
    assert result["status"] == "completed"
    assert "ignoring data.obsolete_option" in capsys.readouterr().err
    original = json.loads((run / "verification.json").read_text())
    evaluated = json.loads((out / "verification.json").read_text())
    assert evaluated["rows"] == original["rows"]
    for a, b in zip(original["checks"], evaluated["checks"]):
        assert a["passed"] == b["passed"] and (a["value"] == pytest.approx(b["value"], rel=1e-5) if a["value"] else True)
    assert result["checks_passed"] == original["checks_passed"]
    # AUC over the whole test split (training tested only 2 batches) equals check 7's value
    assert result["test/enc2_auc"] == pytest.approx(evaluated["checks"][6]["value"], abs=1e-5)
    for name in ("trajectories.csv", "parameters.json", "verification.md", "summary.json", "config.yaml"):
        assert (out / name).is_file(), name


def test_evaluate_without_run_config_names_the_mismatch(trained_run, tmp_path, capsys):
    run, _ = trained_run
    shutil.copy(run / "checkpoints" / "best.ckpt", tmp_path / "lonely.ckpt")
    out = tmp_path / "evaluation"
    # without the run's config.yaml the default synthetic data (20 skills) is used: a clear error
    result = evaluate(_compose_evaluate([f"ckpt_path={tmp_path / 'lonely.ckpt'}", f"run_dir={out}"]), [])
    assert result["status"] == "failed" and "6 skills" in result["error"] and "data.root" in result["error"]
    # the data options given on the command line fix it
    small = [o for o in TINY if o.startswith("data.synthetic.")]
    result = evaluate(_compose_evaluate([f"ckpt_path={tmp_path / 'lonely.ckpt'}", f"run_dir={out}", *small]), [])
    assert result["status"] == "completed" and result["checks_total"] == 11


def test_evaluate_missing_checkpoint(tmp_path, capsys):
    result = evaluate(_compose_evaluate([f"ckpt_path={tmp_path / 'none.ckpt'}", f"run_dir={tmp_path / 'e'}"]), [])
    assert result["status"] == "failed" and "ckpt_path" in capsys.readouterr().err
