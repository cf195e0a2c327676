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

import lightning as L

from gainakt.callbacks.verification import Verification
from gainakt.verification import checks
from gainakt.verification.checks import run_checks, share_predicted_wrong_recalibrated
from gainakt.run.config import compose_config
from gainakt.data.datamodule import Padding, WindowDataset
from gainakt.data.interactions import InteractionData
from gainakt.data.protocol import make_windows
from gainakt.evaluate import evaluate
from gainakt.run.summary import format_table
from gainakt.train import train
from gainakt.verification.trajectories import read_csv
from tests.conftest import TINY, make_module, make_thresholds


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
    assert report["split"] == "test" and report["checks_total"] == 12
    assert [c["id"] for c in report["checks"]] == list(range(1, 13))
    for check in report["checks"]:
        assert {"id", "name", "value", "threshold", "passed", "reference", "baseline", "interval"} <= check.keys()
    by_id = {c["id"]: c for c in report["checks"]}
    assert {i for i, c in by_id.items() if c["baseline"] is not None} == {4, 7, 10, 11}
    assert all(by_id[i]["interval"][0] <= by_id[i]["value"] <= by_id[i]["interval"][1] for i in (4, 7, 11))
    assert by_id[12]["detail"]["pairs"] > 0 and by_id[12]["reference"] is not None  # both encoders, flipped
    assert [c["id"] for c in report["recovery"]] == ["R1", "R2"]  # synthetic data has ground truth
    saved = json.loads((run / "summary.json").read_text())
    assert saved["checks_passed"] == report["checks_passed"] == sum(c["passed"] is True for c in report["checks"])
    assert saved["checks_total"] == 12 and summary["checks_total"] == 12
    assert f"{saved['checks_passed']}/12 checks passed" in format_table(saved)
    # the baselines sit next to the encoders' test metrics
    assert saved["test/majority_acc"] == pytest.approx(by_id[10]["baseline"])
    assert saved["test/skill_rate_auc"] == pytest.approx(by_id[7]["baseline"])
    assert 0.5 < saved["test/oracle_auc"] <= 1.0 and isinstance(saved["degenerate_parameters"], list)
    text = (run / "verification.md").read_text()
    assert "| 7 | encoder-2 AUC |" in text and "decision tree" in text and "## Baselines" in text
    params = json.loads((run / "parameters.json").read_text())
    assert len(params["beta"]) == 6 and 0.0 < params["theta"] < 1.0
    assert len(params["guess"]) == len(params["slip"]) == 6
    model = params["response_model"]
    rows = read_csv(run / "trajectories.csv")
    test = rows[rows["split"] == "test"]
    assert model["share_below_theta"]["test"] == pytest.approx((test["mastery_before"] < params["theta"]).mean())
    assert model["share_predicted_wrong"]["test"] == pytest.approx((test["enc2_prob"] < 0.5).mean())
    assert model["share_predicted_wrong_enc1"]["test"] == pytest.approx((test["enc1_prob"] < 0.5).mean())
    assert saved["share_predicted_wrong_enc1"] == model["share_predicted_wrong_enc1"]["test"]
    val = rows[rows["split"] == "val"]
    for enc, key in (("enc2", "share_predicted_wrong_recalibrated"), ("enc1", "share_predicted_wrong_recalibrated_enc1")):
        expected = share_predicted_wrong_recalibrated(val[f"{enc}_prob"].to_numpy(), val["response"].to_numpy(),
                                                      test[f"{enc}_prob"].to_numpy())  # fmt: skip
        assert saved[key] == model["share_predicted_wrong_recalibrated"][enc] == pytest.approx(expected)
    assert "Recalibrated on the validation split" in text
    assert saved["share_below_theta"] == model["share_below_theta"]["test"] and saved["theta"] == params["theta"]
    assert "## Response model of encoder 2" in text and "steps with mastery < theta" in text
    assert "encoder 1: steps with p < 0.5" in text
    for name, phrase in (("ability_weight", "all answers so far"), ("skill_ability_weight", "the answers to the question's skills")):
        assert (params[name] is not None) == (f"Running ability over {phrase}" in text), name
    # the demo's ability_in=guess_slip: every record term carries a guess and a slip weight
    assert set(params["ability_weight"]) == set(params["recent_ability_weight"]) == {"guess", "slip"}
    assert (params["skill_recency_weight"] is not None) == ("Last answer to each of the question's skills" in text)
    assert (params["related_weight"] is not None) == ("Record on related skills" in text)
    assert (params["recent_ability_weight"] is not None) == ("Recent answers beyond each skill's expected share" in text)
    assert (params["skill_forgetting_weight"] is not None) == ("Practice gap of each of the question's skills" in text)
    assert params["expected"] is None or (len(params["expected"]) == 6 and all(0 < e < 1 for e in params["expected"]))
    for name in ("mastery_curves", "gain_distribution", "gain_by_response", "training_curves", "learned_vs_true_rates"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000, name


def test_monitors_give_the_checks_numbers_on_the_validation_rows(trained_run):
    """The per-epoch monitors (dense rows, padding weighted 0, no host sync) and checks 1, 3, 5 and
    6 on the validation rows of trajectories.csv (the predict loop's selected rows), for the epoch
    best.ckpt holds: the same numbers, up to the float32 the logger keeps."""
    run, summary = trained_run
    rows = read_csv(run / "trajectories.csv")
    val, t = rows[rows["split"] == "val"], make_thresholds()
    pairs = {"val/gain_std": checks.gain_std, "val/monotonicity_violations": checks.monotonicity_violations,
             "val/gain_cv_skills": checks.skill_gain_cv, "val/gain_ratio_correct_incorrect": checks.correct_incorrect_ratio}  # fmt: skip
    for key, check in pairs.items():
        assert summary[key] == pytest.approx(check(val, t).value, rel=1e-5), key


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
    # the baselines: a constant majority class, and the training split's per-skill correct rates
    majority = max(test["response"].mean(), 1 - test["response"].mean())
    assert by_id[10]["baseline"] == pytest.approx(majority)
    table, response = test["skill_rate_prob"].to_numpy(), test["response"].to_numpy()
    assert by_id[7]["baseline"] == pytest.approx(checks.auc(table, response))
    assert by_id[4]["baseline"] == pytest.approx(checks.pearson(table, response), rel=1e-5)
    from hydra.utils import instantiate

    dm = instantiate(compose_config("config", TINY).data)
    dm.setup()
    train_rows = dm.datasets["train"].windows.scored()
    skill = dm.data.skills[train_rows, 0]
    rates = np.bincount(skill, dm.data.responses[train_rows], dm.num_skills) / np.bincount(skill, minlength=dm.num_skills)
    np.testing.assert_allclose(test["skill_rate_prob"], rates[test["skill"].astype(int)], rtol=1e-6)
    # and every check, through the same functions, on the rows read back
    beta = np.array(json.loads((run / "parameters.json").read_text())["beta"])
    for result in run_checks(test, beta, make_thresholds(), report["counterfactual"]):
        expected = by_id[result.id]
        assert result.passed == expected["passed"], result.id
        if result.value is not None:
            assert result.value == pytest.approx(expected["value"], rel=1e-5, abs=1e-7), result.id


def _predict_rows(module, datamodule, out_dir, **settings):
    """Verify ``module`` through a CPU Trainer's predict loop; the trajectories it wrote."""
    verification = Verification(out_dir, make_thresholds(**settings), metrics_csv=None, plots=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[verification])  # fmt: skip
    verification.run(trainer, module, datamodule)
    return read_csv(out_dir / "trajectories.csv")


def test_trajectories_cover_every_scored_interaction(tiny_config, tmp_path):
    from hydra.utils import instantiate

    cfg = tiny_config()
    dm = instantiate(cfg.data, eval_batch_size=7)
    dm.setup()
    # without the running abilities, p depends on the row's mastery and skill alone
    module = make_module(dm.num_skills, dm.num_train_students, d_model=16, n_heads=2, n_blocks=1, d_ff=32,
                         response_ability=False, skill_ability=False, skill_recency=False, related_skills=0,
                         recent_ability=0.0, skill_forgetting=False)
    net = module.net
    rows = _predict_rows(module, dm, tmp_path / "a")
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
        np.testing.assert_allclose(part["true_prob"], dm.data.truth["prob"][flat], rtol=1e-6)
    # encoder 2 predicts each row from exactly the row's mastery_before (im_target=next, aggregate=min),
    # through the default guess/slip response model of the row's skill
    assert net.response == "guess_slip"
    theta = float(net.mastery_threshold.detach())
    temperature = float(net.temperature.detach())
    skill = rows["skill"].astype(int).to_numpy()
    guess, slip = net.guess.detach().numpy()[skill], net.slip.detach().numpy()[skill]
    curve = 1.0 / (1.0 + np.exp(-(rows["mastery_before"].to_numpy(np.float64) - theta) / temperature))
    np.testing.assert_allclose(rows["enc2_prob"], guess + (1 - guess - slip) * curve, atol=1e-5)
    # batching does not change any value
    dm.eval_batch_size = 64
    again = _predict_rows(module, dm, tmp_path / "b")
    numeric = ["enc1_prob", "enc2_prob", "mastery_before", "mastery_after", "gain", "skill_rate_prob"]
    np.testing.assert_allclose(again[numeric].to_numpy(), rows[numeric].to_numpy(), atol=1e-5)
    assert again["student"].tolist() == rows["student"].tolist()


def test_multi_skill_rows_join_skills_and_aggregate_mastery(tmp_path):
    data = InteractionData(
        offsets=np.array([0, 4, 7]), skills=np.array([[0, -1], [0, 1], [1, -1], [0, 1], [1, -1], [1, -1], [0, 1]]),
        responses=np.array([1, 0, 1, 1, 0, 1, 1], dtype=np.int8), fold=np.array([-1, -1], dtype=np.int8),
        num_skills=2, student_ids=np.array(["x", "y"]),
    )  # fmt: skip
    windows = make_windows(data, np.array([0, 1]), window=200, min_length=3)
    dataset = WindowDataset(data, windows, np.full(2, -1), Padding(window=200, bucketing=True, multiple=1))
    holder = SimpleNamespace(data=data, datasets={"train": dataset, "val": dataset, "test": dataset}, eval_batch_size=8)
    for aggregate in ("min", "mean"):
        module = make_module(2, d_model=8, n_heads=2, n_blocks=1, d_ff=16, aggregate=aggregate)
        rows = _predict_rows(module, holder, tmp_path / aggregate)
        rows = rows[rows["split"] == "test"]
        assert rows["skill"].tolist() == ["0|1", "1", "0|1", "1", "0|1"]
        batch = dataset.collate([0])
        net = module.net
        out = net.eval()(batch["skills"], batch["responses"], batch["student"])
        trace = net.practised_mastery(out.gain, out.gains_all, batch["skills"], batch["student"])
        before = trace["mastery_before"][0, 1]  # student x, step 1: skills 0 and 1
        combine = before.min() if aggregate == "min" else before.mean()
        assert rows["mastery_before"].iloc[0] == pytest.approx(float(combine), abs=1e-6)
        assert rows["gain"].iloc[0] == pytest.approx(float(out.gain[0, 1].mean().detach()), abs=1e-6)
        # the baseline combines the skills' training correct rates the same way (scored rows: skill 0 2 of 3, skill 1 4 of 5)
        rates = np.array([2 / 3, 4 / 5])
        expected = rates.min() if aggregate == "min" else rates.mean()
        assert rows["skill_rate_prob"].iloc[0] == pytest.approx(expected)


def test_accumulate_all_reports_gain_on_other_skills(tiny_config, tmp_path):
    from hydra.utils import instantiate

    dm = instantiate(tiny_config().data)
    dm.setup()
    module = make_module(dm.num_skills, d_model=16, n_heads=2, n_blocks=1, d_ff=32, accumulate="all")
    rows = _predict_rows(module, dm, tmp_path, counterfactual_windows=0)
    rows = rows[rows["split"] == "test"]
    report = run_checks(rows, module.net.beta.detach().numpy(), make_thresholds())
    assert (rows["gain_other"] > 0).all()
    assert report[1].value < 0.5 and report[1].passed is False  # 6 skills: most gain lands elsewhere
    assert report[11].status == "not computable"  # counterfactual_windows=0 switches check 12 off


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
    assert result["status"] == "completed" and result["checks_total"] == 12


def test_evaluate_missing_checkpoint(tmp_path, capsys):
    result = evaluate(_compose_evaluate([f"ckpt_path={tmp_path / 'none.ckpt'}", f"run_dir={tmp_path / 'e'}"]), [])
    assert result["status"] == "failed" and "ckpt_path" in capsys.readouterr().err


def test_verification_uses_the_precision_of_test(tiny_config, tmp_path):
    """Under bf16 autocast, the checks' rows are the rows test_step scored: check 7 equals the test AUC,
    while an fp32 forward pass (what verification did outside Lightning) gives other probabilities."""
    from hydra.utils import instantiate

    dm = instantiate(tiny_config().data)
    dm.setup()
    torch.manual_seed(0)
    module = make_module(dm.num_skills, dm.num_train_students, d_model=16, n_heads=2, n_blocks=1, d_ff=32)
    verification = Verification(tmp_path, make_thresholds(counterfactual_windows=0), metrics_csv=None, plots=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, precision="bf16-mixed", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[verification])  # fmt: skip
    tested = trainer.test(module, datamodule=dm, verbose=False)[0]
    verification.run(trainer, module, dm)
    report = json.loads((tmp_path / "verification.json").read_text())
    assert report["checks"][6]["value"] == pytest.approx(tested["test/enc2_auc"], abs=1e-6)
    assert report["checks"][6]["reference"] == pytest.approx(tested["test/enc1_auc"], abs=1e-6)
    rows = read_csv(tmp_path / "trajectories.csv")
    test = rows[rows["split"] == "test"]
    batch = dm.datasets["test"].collate(list(range(len(dm.datasets["test"]))))
    with torch.no_grad():
        out = module.net.eval()(batch["skills"], batch["responses"], batch["student"])
    for name in ("enc1", "enc2"):  # bf16 moves p by 1e-4 to 1e-3 here; two fp32 passes agree to ~1e-7
        fp32 = torch.sigmoid(getattr(out, f"{name}_logit"))[batch["mask"][:, 1:]].numpy()  # windows in index order
        assert len(fp32) == len(test)
        assert np.abs(np.sort(fp32) - np.sort(test[f"{name}_prob"].to_numpy())).max() > 1e-5, name


def test_verification_that_misses_windows_says_so(tiny_config, tmp_path):
    """Checks on part of the rows would be wrong without telling anyone: a partial predict pass stops."""
    from hydra.utils import instantiate

    from gainakt.errors import ConfigError

    dm = instantiate(tiny_config().data, eval_batch_size=4)
    dm.setup()
    module = make_module(dm.num_skills, dm.num_train_students, d_model=16, n_heads=2, n_blocks=1, d_ff=32)
    verification = Verification(tmp_path, make_thresholds(), metrics_csv=None, plots=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[verification], limit_predict_batches=1)  # fmt: skip
    with pytest.raises(ConfigError, match="limit_predict_batches"):
        verification.run(trainer, module, dm)
    assert not (tmp_path / "verification.json").exists()


@pytest.mark.parametrize(("related", "ability"), [(None, {"guess": 1.0, "slip": 2.0}),
                                                  ({"guess": 0.25, "slip": 0.5}, {"logit": 1.5})])
def test_the_response_model_section_names_each_record_term_it_has(related, ability):
    """parameters.json's record weights reach verification.md's response-model section, the
    record on related skills only when the option is on, each term by what it moves."""
    from pandas import DataFrame

    from gainakt.verification.writers import _response_lines, response_model

    rows = DataFrame({"split": ["test"] * 4, "mastery_before": [0.1, 0.5, 0.6, 0.9], "enc2_prob": [0.3, 0.6, 0.7, 0.9],
                      "enc1_prob": [0.2, 0.4, 0.7, 0.9]})
    params = {"theta": 0.55, "temperature": 0.1, "options": {"response": "guess_slip"}, "guess": [0.2], "slip": [0.1],
              "ability_weight": ability, "related_weight": related}  # fmt: skip
    model = response_model(rows, params)
    text = "\n".join(_response_lines(model))
    assert ("related_weight" in model) == (related is not None)
    assert ("Record on related skills" in text) == (related is not None)
    if related is not None:
        assert "raises the guess logit by 0.2500 and lowers the slip logit by 0.5000" in text.split("Record on related")[1]
    moves = ("raises the logit of p by 1.5000" if "logit" in ability
             else "raises the guess logit by 1.0000 and lowers the slip logit by 2.0000")
    assert f"Running ability over all answers so far: {moves}" in text
    assert model["share_below_theta"]["test"] == 0.5 and model["share_predicted_wrong"]["test"] == 0.25
    assert model["share_predicted_wrong_enc1"]["test"] == 0.5
    assert "share_predicted_wrong_recalibrated" not in model and "Recalibrated" not in text  # no validation rows to fit on


def test_evaluate_a_checkpoint_saved_before_an_architecture_option_existed(tmp_path):
    """A checkpoint whose hyper-parameters lack an option added later (here recent_ability and
    related_skills, as every checkpoint before them) loads with the option off and evaluates."""
    from gainakt.model.module import GainAKTModule
    from tests.conftest import run_config

    run = tmp_path / "run"
    assert train(run_config(run, ["trainer.max_epochs=1", "model.recent_ability=0", "model.related_skills=0"]))["status"] == "completed"
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    for key in ("recent_ability", "related_skills"):
        del checkpoint["hyper_parameters"][key]
    old = run / "checkpoints" / "older.ckpt"
    torch.save(checkpoint, old)
    with pytest.raises(TypeError, match="recent_ability"):
        GainAKTModule.load_from_checkpoint(old)  # what evaluate did before
    loaded = GainAKTModule.from_checkpoint(old)
    assert loaded.net.recent_ability == 0.0 and loaded.net.related_to is None
    assert all(torch.equal(v, checkpoint["state_dict"][k]) for k, v in loaded.state_dict().items())
    result = evaluate(_compose_evaluate([f"ckpt_path={old}", f"run_dir={tmp_path / 'evaluation'}", "plots=false"]), [])
    assert result["status"] == "completed" and result["checks_total"] == 12
