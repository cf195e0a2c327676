"""Each verification check on hand-made rows whose answer is known, passing, failing and not computable."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc

from gainakt.verification import checks
from gainakt.verification.checks import NOT_COMPUTABLE
from gainakt.verification.writers import decision, render_markdown, verification_report
from tests.conftest import make_thresholds

T = make_thresholds()


def rows(**columns) -> pd.DataFrame:
    """A trajectories table with neutral defaults for every column not given."""
    n = len(next(iter(columns.values())))
    base = {
        "split": ["test"] * n,
        "student": ["a"] * n,
        "window": [0] * n,
        "step": list(range(1, n + 1)),
        "skill": ["0"] * n,
        "response": [i % 2 for i in range(n)],
        "enc1_prob": np.linspace(0.1, 0.9, n),
        "enc2_prob": np.linspace(0.1, 0.9, n),
        "mastery_before": np.linspace(0.1, 0.5, n),
        "mastery_after": np.linspace(0.1, 0.5, n) + 0.01,
        "gain": np.full(n, 0.5),
        "gain_other": np.zeros(n),
        "skill_rate_prob": np.full(n, 0.5),  # a table that cannot tell rows apart: no baseline to beat
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_gain_std():
    r = checks.gain_std(rows(gain=[0.1, 0.3, 0.1, 0.3]), T)
    assert r.value == pytest.approx(0.1) and r.passed is True and r.status == "passed"
    flat = checks.gain_std(rows(gain=[0.58, 0.58, 0.58]), T)
    assert flat.value == 0.0 and flat.passed is False and flat.status == "failed"
    one = checks.gain_std(rows(gain=[0.5]), T)
    assert one.passed is None and one.status == NOT_COMPUTABLE and "2 rows" in one.reason


def test_qmatrix_alignment():
    assert checks.qmatrix_alignment(rows(gain=[0.5, 0.2]), T).value == 1.0
    spread = checks.qmatrix_alignment(rows(gain=[1.0, 1.0], gain_other=[1.0, 1.0]), T)
    assert spread.value == pytest.approx(0.5) and spread.passed is False
    multi = checks.qmatrix_alignment(rows(skill=["1|2"], gain=[0.5], gain_other=[0.1]), T)
    assert multi.value == pytest.approx(1.0 / 1.1)  # 0.5 on each of 2 skills vs 0.1 elsewhere
    none = checks.qmatrix_alignment(rows(gain=[0.0, 0.0]), T)
    assert none.status == NOT_COMPUTABLE and "no gain" in none.reason


def test_monotonicity_counts_decreases_within_and_across_rows():
    rising = rows(step=[1, 2, 3], mastery_before=[0.1, 0.2, 0.3], mastery_after=[0.2, 0.3, 0.4])
    assert checks.monotonicity_violations(rising, T).value == 0
    assert checks.monotonicity_violations(rising, T).passed is True
    within = rows(step=[1, 2], mastery_before=[0.3, 0.4], mastery_after=[0.4, 0.35])
    # row 2 falls within itself, and nothing links row 1's after (0.4) to row 2's before (0.4)
    assert checks.monotonicity_violations(within, T).value == 1
    across = rows(step=[1, 2], mastery_before=[0.3, 0.35], mastery_after=[0.4, 0.45])
    result = checks.monotonicity_violations(across, T)
    assert result.value == 1 and result.passed is False
    # a later attempt in a *new* window, or on another skill, may start lower
    new_window = rows(step=[1, 201], window=[0, 1], mastery_before=[0.3, 0.1], mastery_after=[0.4, 0.2])
    assert checks.monotonicity_violations(new_window, T).value == 0
    other_skill = rows(step=[1, 2], skill=["0", "1"], mastery_before=[0.3, 0.1], mastery_after=[0.4, 0.2])
    assert checks.monotonicity_violations(other_skill, T).value == 0
    # order of the rows does not matter; rounding noise below the tolerance is no violation
    shuffled = rows(step=[2, 1], mastery_before=[0.35, 0.3], mastery_after=[0.45, 0.4])
    assert checks.monotonicity_violations(shuffled, T).value == 1
    noise = rows(step=[1, 2], mastery_before=[0.3, 0.4 - 1e-8], mastery_after=[0.4, 0.5])
    assert checks.monotonicity_violations(noise, T).value == 0


def test_mastery_response_correlation_with_encoder1_reference():
    r = checks.mastery_response_correlation(
        rows(response=[0, 1, 0, 1], mastery_before=[0.1, 0.9, 0.1, 0.9], enc1_prob=[0.9, 0.1, 0.9, 0.1]), T
    )
    assert r.value == pytest.approx(1.0) and r.passed is True and r.reference == pytest.approx(-1.0)
    weak = checks.mastery_response_correlation(rows(response=[0, 1, 0, 1], mastery_before=[0.2, 0.3, 0.3, 0.2]), T)
    assert weak.value == pytest.approx(0.0) and weak.passed is False
    constant = checks.mastery_response_correlation(rows(mastery_before=[0.5, 0.5, 0.5]), T)
    assert constant.status == NOT_COMPUTABLE and "constant" in constant.reason


def test_skill_gain_cv():
    two = rows(skill=["0"] * 5 + ["1"] * 5 + ["2"], gain=[0.2] * 5 + [0.6] * 5 + [5.0])
    r = checks.skill_gain_cv(two, T)  # skill 2 has one row: left out
    assert r.value == pytest.approx(0.5) and r.passed is True  # std 0.2 / mean 0.4
    same = checks.skill_gain_cv(rows(skill=["0"] * 5 + ["1"] * 5, gain=[0.4] * 10), T)
    assert same.value == pytest.approx(0.0) and same.passed is False
    multi = rows(skill=["0|1"] * 5, gain=[0.4] * 5)  # both skills get the row's gain
    assert checks.skill_gain_cv(multi, T).value == pytest.approx(0.0)
    single = checks.skill_gain_cv(rows(skill=["0"] * 9, gain=[0.4] * 9), T)
    assert single.status == NOT_COMPUTABLE and "2 skills" in single.reason


def test_correct_incorrect_ratio():
    r = checks.correct_incorrect_ratio(rows(response=[1, 1, 0, 0], gain=[0.6, 0.6, 0.3, 0.3]), T)
    assert r.value == pytest.approx(2.0) and r.passed is True
    even = checks.correct_incorrect_ratio(rows(response=[1, 0], gain=[0.5, 0.5]), T)
    assert even.value == pytest.approx(1.0) and even.passed is False
    all_correct = checks.correct_incorrect_ratio(rows(response=[1, 1, 1], gain=[0.5, 0.4, 0.3]), T)
    assert all_correct.status == NOT_COMPUTABLE and "no incorrect answers" in all_correct.reason


def test_encoder2_auc():
    perfect = checks.encoder2_auc(rows(response=[0, 0, 1, 1], enc2_prob=[0.1, 0.2, 0.3, 0.4], enc1_prob=[0.4, 0.3, 0.2, 0.1]), T)
    assert perfect.value == 1.0 and perfect.passed is True and perfect.reference == 0.0
    ties = checks.encoder2_auc(rows(response=[0, 1, 0, 1], enc2_prob=[0.5] * 4), T)
    assert ties.value == 0.5 and ties.passed is False
    one_class = checks.encoder2_auc(rows(response=[1, 1, 1]), T)
    assert one_class.status == NOT_COMPUTABLE and "both classes" in one_class.reason


def test_auc_agrees_with_torchmetrics():
    rng = np.random.default_rng(0)
    prob = np.round(rng.random(500), 2)  # with ties
    label = rng.random(500) < prob
    expected = binary_auroc(torch.tensor(prob), torch.tensor(label.astype(int))).item()
    assert checks.auc(prob, label) == pytest.approx(expected, abs=1e-6)


def test_gains_not_flat_needs_spread_and_distinct_values():
    spread = checks.gains_not_flat(rows(gain=np.linspace(0.0, 1.0, 101)), T)
    assert spread.value == pytest.approx(0.5) and spread.passed is True
    assert spread.detail["distinct_share"] == pytest.approx(1.0)
    outlier = checks.gains_not_flat(rows(gain=[0.58] * 99 + [0.9]), T)
    assert outlier.value == pytest.approx(0.0) and outlier.passed is False
    two_values = checks.gains_not_flat(rows(gain=[0.2, 0.4] * 500), T)
    assert two_values.value == pytest.approx(0.2) and two_values.passed is False  # 2 distinct of 1000
    assert checks.gains_not_flat(rows(gain=[0.5]), T).status == NOT_COMPUTABLE


def test_beta_spread():
    assert checks.beta_spread(np.array([1.0, 2.0, 3.0]), T).value == pytest.approx(np.sqrt(2 / 3))
    assert checks.beta_spread(np.array([1.0, 2.0, 3.0]), T).passed is True
    assert checks.beta_spread(np.array([2.0, 2.01]), T).passed is False
    assert checks.beta_spread(np.array([2.0]), T).status == NOT_COMPUTABLE


def test_encoder2_match_rate():
    r = checks.encoder2_match_rate(rows(response=[1, 1, 0, 0], enc2_prob=[0.9, 0.6, 0.1, 0.6], enc1_prob=[0.9] * 4), T)
    assert r.value == pytest.approx(0.75) and r.passed is True and r.reference == pytest.approx(0.5)
    assert r.baseline == pytest.approx(0.5) and r.baseline_name == "majority class"
    assert checks.encoder2_match_rate(rows(response=[1, 0], enc2_prob=[0.2, 0.8]), T).passed is False
    assert checks.encoder2_match_rate(rows(response=[]), T).status == NOT_COMPUTABLE


def test_match_rate_of_a_model_that_calls_everyone_mastered_is_the_base_rate_and_fails():
    """The ASSISTments 2015 case: 73 % correct answers, encoder 2 says "correct" everywhere (theta at 0)."""
    response = np.array([1] * 73 + [0] * 27)
    r = checks.encoder2_match_rate(rows(response=response, enc2_prob=np.full(100, 0.9)), T)
    assert r.value == pytest.approx(0.73) and r.value > T.enc2_match_rate  # the threshold alone would pass it
    assert r.baseline == pytest.approx(0.73) and r.passed is False
    assert r.reason == "does not beat the majority class (0.7300)"
    one_better = checks.encoder2_match_rate(rows(response=response, enc2_prob=np.r_[np.full(99, 0.9), 0.1]), T)
    assert one_better.value == pytest.approx(0.74) and one_better.passed is True
    mostly_wrong = checks.encoder2_match_rate(rows(response=1 - response, enc2_prob=np.full(100, 0.9)), T)
    assert mostly_wrong.baseline == pytest.approx(0.73) and mostly_wrong.passed is False  # always incorrect
    assert mostly_wrong.reason.startswith("not > 0.6; does not beat")


def test_student_mastery_correlation():
    students = np.repeat(["a", "b", "c", "d"], 5)
    mastery = np.repeat([0.2, 0.4, 0.6, 0.8], 5)
    response = np.concatenate([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    table = rows(student=students, mastery_before=mastery, response=response, enc1_prob=np.full(20, 0.5))
    r = checks.student_mastery_correlation(table, T)
    assert r.value == pytest.approx(1.0) and r.passed is True
    assert r.reference is None  # encoder 1 constant: no reference, not a failure
    assert r.detail["students"] == 4
    reversed_ = checks.student_mastery_correlation(table.assign(mastery_before=mastery[::-1]), T)
    assert reversed_.value == pytest.approx(-1.0) and reversed_.passed is False
    few = checks.student_mastery_correlation(table.iloc[:12], T)  # c has 2 rows: only a and b remain
    assert few.status == NOT_COMPUTABLE and "3 students" in few.reason


def test_run_checks_gives_twelve_in_order():
    results = checks.run_checks(rows(gain=np.linspace(0.1, 0.9, 20)), np.array([1.0, 2.0]), T)
    assert [r.id for r in results] == list(range(1, 13))
    entry = results[0].to_dict()
    assert {"id", "name", "value", "threshold", "passed", "reference", "status", "reason", "baseline",
            "baseline_name", "interval"} <= entry.keys()  # fmt: skip
    assert results[11].status == NOT_COMPUTABLE and "counterfactual_windows" in results[11].reason


def test_thresholds_decide_pass_or_fail():
    table = rows(gain=[0.1, 0.3, 0.1, 0.3])  # std 0.1
    assert checks.gain_std(table, make_thresholds(gain_std=0.2)).passed is False
    assert checks.gain_std(table, make_thresholds(gain_std=0.05)).passed is True


def test_recovery_against_truth():
    true_beta = np.array([0.5, 1.0, 2.0])
    table = rows(
        skill=["0"] * 5 + ["1"] * 5 + ["2"] * 5, gain=[0.5] * 15, mastery_before=np.linspace(0.1, 0.8, 15),
        true_mastery_before=np.linspace(0.2, 0.9, 15),
    )  # fmt: skip
    rate, mastery = checks.recovery_checks(table, 2 * true_beta, {"beta": true_beta}, T)
    assert rate.value == pytest.approx(1.0) and rate.passed is True
    assert mastery.value == pytest.approx(1.0) and mastery.passed is True
    wrong, _ = checks.recovery_checks(table, true_beta[::-1].copy(), {"beta": true_beta}, T)
    assert wrong.value == pytest.approx(-1.0) and wrong.passed is False


@pytest.mark.parametrize(
    ("std", "override"),
    [(0.2, None), (0.07, "model.gains_init=small"), (0.03, "model.gains_head=mlp"), (0.01, "model.attention_bias=skill_aware")],
)
def test_decision_tree(std, override):
    assert decision(std, 0.5, {})["override"] == override


def test_decision_tree_notes():
    assert "not yet a success" in decision(0.2, 0.1, {})["advice"]
    assert "mastery_weight" not in decision(0.2, 0.1, {"response": "threshold"})["advice"]
    assert "model.mastery_weight=0.1 asks mastery" in decision(0.2, 0.1, {"response": "guess_slip"})["advice"]
    assert "a larger model.mastery_weight (this run: 0.1)" in decision(0.2, 0.1, {"response": "guess_slip",
                                                                                   "mastery_weight": 0.1})["advice"]
    assert "mastery_weight" not in decision(0.2, 0.5, {"response": "guess_slip"})["advice"]  # a success
    assert "already uses" in decision(0.07, 0.1, {"gains_init": "small"})["advice"]
    assert decision(None, None, {})["override"] is None


def test_report_and_markdown():
    table = pd.concat([rows(gain=np.linspace(0.1, 0.9, 20)), rows(gain=[0.5] * 3).assign(split="val")])
    report = verification_report(table, {"beta": [1.0, 2.0]}, T, None, {})
    assert report["rows"] == 20 and report["checks_total"] == 12 and report["recovery"] == []
    assert report["checks_passed"] == sum(c["passed"] is True for c in report["checks"])
    text = render_markdown(report)
    assert "| 1 | gain std |" in text and "decision tree" in text
    assert f"{report['checks_passed']} of 12 checks passed" in text


# -- baselines --------------------------------------------------------------------------------------
def test_skill_rate_table_on_hand_made_rows():
    from gainakt.verification.baselines import fit_skill_rates, majority_class

    skills = np.array([[0, -1], [0, -1], [0, -1], [0, -1], [1, -1], [1, -1], [0, 1]])
    responses = np.array([1, 1, 1, 0, 0, 1, 0])
    table = fit_skill_rates(skills, responses, num_skills=3)
    # skill 0: rows 0-3 and the 2-skill row 6 -> 3 of 5; skill 1: rows 4-6 -> 1 of 3; skill 2 unseen -> 4 of 7
    assert table.rates == pytest.approx([3 / 5, 1 / 3, 4 / 7]) and table.skill_rows.tolist() == [5, 3, 0]
    assert table.num_rows == 7
    asked = np.array([[0, -1], [2, -1], [0, 1]])
    assert table.predict(asked, "min") == pytest.approx([3 / 5, 4 / 7, 1 / 3])  # as encoder 2 combines mastery
    assert table.predict(asked, "mean") == pytest.approx([3 / 5, 4 / 7, (3 / 5 + 1 / 3) / 2])
    assert majority_class(np.array([1, 1, 0])) == (1, pytest.approx(2 / 3))
    assert majority_class(np.array([0, 0, 1, 1, 0])) == (0, pytest.approx(0.6))


def test_skill_rate_table_is_fitted_on_the_scored_training_rows():
    from gainakt.data.protocol import Windows
    from gainakt.verification.baselines import fit_on_windows

    windows = Windows(student=np.array([0, 1]), start=np.array([0, 10]), length=np.array([3, 4]))
    assert windows.scored().tolist() == [1, 2, 11, 12, 13]  # every step of a window but its first
    data = SimpleNamespace(skills=np.zeros((20, 1), dtype=np.int64), responses=np.zeros(20, dtype=np.int8), num_skills=1)
    data.responses[[0, 10, 11, 12]] = 1  # rows 0 and 10 open a window: not scored, not fitted
    assert fit_on_windows(data, windows).rates == pytest.approx([2 / 5])


def test_auc_and_correlations_must_beat_the_skill_rate_table():
    response = np.array([0, 1] * 10)
    good_table = np.where(response == 1, 0.8, 0.2) + np.linspace(0.0, 0.01, 20)  # separates the classes
    weak = np.where(response == 1, 0.7, 0.4)
    weak[:2] = [0.7, 0.4]  # one negative and one positive swapped: AUC 0.9, above the threshold
    table = rows(response=response, enc2_prob=weak, mastery_before=weak, skill_rate_prob=good_table)
    auc_check = checks.encoder2_auc(table, T)
    assert auc_check.value == pytest.approx(0.9) and auc_check.value > T.enc2_auc
    assert auc_check.baseline == pytest.approx(1.0) and auc_check.passed is False
    assert auc_check.reason == "does not beat the per-skill correct rate (1.0000)"
    corr = checks.mastery_response_correlation(table, T)
    assert corr.value > T.mastery_response_pearson and corr.baseline > corr.value and corr.passed is False
    beaten = checks.encoder2_auc(table.assign(skill_rate_prob=0.5 + 0.0 * weak), T)
    assert beaten.baseline == pytest.approx(0.5) and beaten.passed is True
    flat = checks.mastery_response_correlation(table.assign(skill_rate_prob=0.5), T)
    assert flat.baseline is None and flat.passed is True  # a constant table has no correlation to beat


def test_student_correlation_must_beat_the_skill_rate_table():
    students = np.repeat(["a", "b", "c", "d"], 5)
    response = np.concatenate([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    mastery = np.repeat([0.2, 0.5, 0.4, 0.8], 5)  # a, c, b, d: one pair in the wrong order
    table = rows(student=students, response=response, mastery_before=mastery, enc1_prob=np.full(20, 0.5),
                 skill_rate_prob=np.repeat([0.1, 0.2, 0.3, 0.4], 5))  # fmt: skip
    result = checks.student_mastery_correlation(table, T)
    assert result.value > T.student_mastery_pearson and result.baseline == pytest.approx(1.0)
    assert result.passed is False and "per-skill correct rate" in result.reason


# -- degenerate parameters --------------------------------------------------------------------------
def test_degenerate_parameters_are_flagged_from_what_parameters_json_holds():
    fine = checks.degenerate_parameters({"theta": 0.4, "temperature": 0.3}, rows(gain=np.linspace(0.1, 0.9, 20)), T)
    assert fine == []
    saturated = rows(gain=np.r_[np.full(199, 0.9995), 0.5])
    flags = checks.degenerate_parameters({"theta": 0.0, "temperature": 12.0}, saturated, T)
    assert [f["parameter"] for f in flags] == ["theta", "temperature", "gains"]
    assert "lower bound 0" in flags[0]["message"] and "(0.48, 0.52)" in flags[1]["message"]
    assert "99.5 %" in flags[2]["message"]
    assert checks.degenerate_parameters({"theta": 0.995}, saturated.iloc[:0], T)[0]["message"].count("upper bound 1")
    assert checks.degenerate_parameters({"temperature": 0.01}, saturated.iloc[:0], T)[0]["parameter"] == "temperature"
    # guess + slip only where the response model has them (scalars or one per skill)
    assert checks.degenerate_parameters({"guess": 0.3, "slip": 0.2}, saturated.iloc[:0], T) == []
    per_skill = checks.degenerate_parameters({"guess": [0.3, 0.6, 0.1], "slip": [0.2, 0.5, 0.95]}, saturated.iloc[:0], T)
    assert [f["parameter"] for f in per_skill] == ["guess+slip"]
    assert "for 2 of 3 skills" in per_skill[0]["message"] and per_skill[0]["value"] == pytest.approx(1.1)


def test_report_carries_baselines_flags_and_summary_entries():
    from gainakt.verification.writers import summary_entries

    table = rows(response=[1, 1, 1, 0] * 5, enc2_prob=np.full(20, 0.9), skill_rate_prob=np.linspace(0.2, 0.8, 20),
                 true_prob=np.linspace(0.1, 0.9, 20))  # fmt: skip
    report = verification_report(table, {"beta": [1.0, 2.0], "theta": 0.0}, T, None, {"aggregate": "min"})
    assert report["baselines"]["majority_acc"] == pytest.approx(0.75) and report["baselines"]["majority_class"] == 1
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id[10]["passed"] is False and "majority class" in by_id[10]["reason"]
    assert [f["parameter"] for f in report["degenerate"]] == ["theta"]
    entries = summary_entries(report)
    assert entries["test/majority_acc"] == pytest.approx(0.75) and entries["degenerate_parameters"] == ["theta"]
    assert entries["test/skill_rate_auc"] == pytest.approx(checks.auc(table["skill_rate_prob"], table["response"]))
    assert entries["test/oracle_auc"] == pytest.approx(checks.auc(table["true_prob"], table["response"]))
    text = render_markdown(report)
    assert "does not beat the majority class (0.7500)" in text and "always answering correct" in text
    assert "Degenerate learned parameters" in text and "theta = 0.0000" in text


def test_platt_scaling_recovers_a_known_miscalibration_and_the_recalibrated_share_follows():
    """Answers drawn from sigmoid(z); a model reporting sigmoid((z - 0.3) / 0.8) spreads too far and
    predicts too low, so Platt scaling finds a = 0.8, b = 0.3 and the recalibrated share predicted
    wrong is the calibrated model's, not the biased one's."""
    rng = np.random.default_rng(0)
    z = rng.normal(1.0, 1.0, 200_000)
    label = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(float)
    biased = 1 / (1 + np.exp(-(z - 0.3) / 0.8))
    a, b = checks.platt_scaling(biased, label)
    assert a == pytest.approx(0.8, abs=0.02) and b == pytest.approx(0.3, abs=0.02)
    calibrated = 1 / (1 + np.exp(-z))
    assert checks.platt_scaling(calibrated, label) == pytest.approx((1.0, 0.0), abs=0.02)
    fit, held_out = slice(0, 100_000), slice(100_000, None)
    share = checks.share_predicted_wrong_recalibrated(biased[fit], label[fit], biased[held_out])
    assert share == pytest.approx(checks.share_predicted_wrong(calibrated[held_out]), abs=0.005)
    assert checks.share_predicted_wrong(biased[held_out]) > share + 0.05  # the bias alone moves the raw share
    with pytest.raises(checks.NotComputable):
        checks.platt_scaling(np.array([0.2, 0.7]), np.array([1.0, 1.0]))
    with pytest.raises(checks.NotComputable):  # separable: the slope grows without bound
        checks.platt_scaling(np.array([0.2, 0.3, 0.6, 0.7]), np.array([0.0, 0.0, 1.0, 1.0]))
