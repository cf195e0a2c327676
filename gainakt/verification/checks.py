"""The verification checks of encoder 2 (SPEC "Verification checks"), as pure functions.

Every check reads the rows of a trajectories table (one row per scored interaction, see
``gainakt.verification.trajectories``) and, for check 9, the learned parameters; check 12 reads the
counterfactual statistics of ``gainakt.verification.counterfactual``. A check that cannot be
computed on the rows it gets (no incorrect answers, a constant input to a correlation, too few
skills) says so with a reason: it never crashes and never passes by default.

Where a trivial model can score the same statistic (the majority class for the match rate, the
per-skill correct-rate table of ``baselines`` for the AUC and the correlations), the check reports
that *baseline* and passes only when encoder 2 beats it as well as the threshold. The AUC and the
correlations carry a bootstrap interval that resamples students. The gain and monotonicity
statistics are those of ``gain_stats``, which the per-epoch monitors use too.

Row columns used here: ``response`` (0/1), ``enc1_prob`` and ``enc2_prob`` (both predicted before
the response was seen), ``mastery_before`` (mastery of the interaction's skills before it,
aggregated as encoder 2 does), ``mastery_after``, ``gain`` (gain applied at this step to the
interaction's skills, mean over its skills), ``gain_other`` (gain applied at this step to all
other skills; 0 unless ``accumulate=all``), ``skill_rate_prob`` (the baseline table's prediction),
``skill`` (skill ids joined by ``|``), ``student``, ``window`` and ``step``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from gainakt.verification import gain_stats
from gainakt.verification.baselines import majority_class
from gainakt.verification.bootstrap import StudentBootstrap
from gainakt.verification.gain_stats import NotComputable

PASSED, FAILED, NOT_COMPUTABLE = "passed", "failed", "not computable"
MAJORITY, SKILL_RATE = "majority class", "per-skill correct rate"


DEFINITIONS: dict[int | str, str] = {
    1: "population std of `gain` over the rows",
    2: "sum of gain on the question's skills / sum of all gain applied at these steps (`gain_other` is the rest)",
    3: "rows with mastery_after < mastery_before, plus consecutive rows of one student, window and skill set "
    "whose mastery_before falls below the previous mastery_after (tolerance `monotonicity_tolerance`)",
    4: "Pearson(mastery_before, response) over the rows; encoder 1: Pearson(enc1_prob, response); "
    "baseline: Pearson(skill_rate_prob, response)",
    5: "std / mean across skills (with >= `min_rows_per_skill` rows) of each skill's mean gain",
    6: "mean gain at correct answers / mean gain at incorrect answers (the gain at step t is computed after r_t)",
    7: "AUC of enc2_prob for the response; encoder 1: AUC of enc1_prob; baseline: AUC of skill_rate_prob",
    8: "IQR of `gain`; also needs the share of distinct gains (rounded) above `gain_distinct_share`",
    9: "std over skills of the learned beta",
    10: "share of rows where (enc2_prob >= 0.5) equals the response, i.e. mastered <=> correct; encoder 1: its "
    "accuracy; baseline: the accuracy of always answering the rows' majority class",
    11: "Pearson across students (>= `min_rows_per_student` rows) of mean mastery_before and share correct; "
    "encoder 1: mean enc1_prob instead of mastery; baseline: mean skill_rate_prob",
    12: "flip one past answer (`counterfactual_flips` of the answers of `counterfactual_windows` sampled test "
    "windows); share of the later steps sharing a skill with it whose prediction moved against the flip (down "
    "after wrong -> right, up after right -> wrong) by more than `counterfactual_tolerance`; encoder 1: the "
    "same for its prediction",
    "R1": "Spearman over skills of the learned rate (beta x the skill's mean gain) and the simulator's beta",
    "R2": "Pearson(mastery_before, the simulator's mastery before the answer) over the rows",
}
"""One line per check, for verification.md and the README; the functions' docstrings say why."""


@dataclass(frozen=True)
class Thresholds:
    """Settings of the checks (config group ``checks``): pass thresholds, the minimum counts some
    statistics need, the bootstrap, the counterfactual sample and the degenerate-parameter flags."""

    gain_std: float
    qmatrix_share: float
    monotonicity_violations: int
    monotonicity_tolerance: float
    mastery_response_pearson: float
    skill_gain_cv: float
    min_rows_per_skill: int
    correct_incorrect_ratio: float
    enc2_auc: float
    gain_iqr: float
    gain_distinct_share: float
    gain_distinct_decimals: int
    beta_std: float
    enc2_match_rate: float
    student_mastery_pearson: float
    min_rows_per_student: int
    counterfactual_violation_rate: float
    counterfactual_tolerance: float
    counterfactual_windows: int | None
    counterfactual_flips: int | None
    recovery_rate_spearman: float
    recovery_mastery_pearson: float
    bootstrap_samples: int
    bootstrap_level: float
    seed: int
    theta_bound_margin: float
    temperature_min: float
    temperature_max: float
    gain_saturation_margin: float
    gain_saturated_share: float


@dataclass
class CheckResult:
    """One check's outcome. ``passed`` is None (and ``reason`` set) when it could not be computed."""

    id: int | str
    name: str
    value: float | None
    threshold: float
    op: str  # how value is compared with threshold: ">", ">=", "<="
    passed: bool | None
    reference: float | None = None  # the same statistic for encoder 1 on the same rows
    reason: str | None = None  # why it could not be computed, or why it failed
    detail: dict[str, float | None] = field(default_factory=dict)
    baseline: float | None = None  # the same statistic for a trivial model; value must beat it
    baseline_name: str | None = None
    interval: list[float] | None = None  # bootstrap interval of value (students resampled)

    @property
    def status(self) -> str:
        return NOT_COMPUTABLE if self.passed is None else PASSED if self.passed else FAILED

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
}


def or_none(compute: Callable[[], Any] | None) -> Any:
    """``compute()``, or None when it is not given or the rows cannot give it."""
    if compute is None:
        return None
    try:
        return compute()
    except NotComputable:
        return None


def _result(
    id: int | str, name: str, threshold: float, op: str, compute: Callable[[], float],
    reference: Callable[[], float] | None = None, detail: Callable[[], dict[str, float]] | None = None,
    baseline: tuple[str, Callable[[], float]] | None = None, interval: Callable[[], list[float] | None] | None = None,
) -> CheckResult:  # fmt: skip
    """Run ``compute`` and the optional parts; a NotComputable becomes the reason.

    With a ``baseline`` (its name and statistic; higher is better), the check passes only when the
    value also beats it; a failing check's reason says which condition it missed.
    """
    try:
        value = float(compute())
    except NotComputable as exc:
        return CheckResult(id, name, None, threshold, op, None, reason=str(exc))
    ref = or_none(reference)
    base = or_none(baseline[1]) if baseline is not None else None
    missed = [] if _COMPARE[op](value, threshold) else [f"not {op} {threshold:g}"]
    if base is not None and not value > base:
        missed.append(f"does not beat the {baseline[0]} ({base:.4f})")
    return CheckResult(
        id, name, value, threshold, op, not missed, None if ref is None else float(ref), "; ".join(missed) or None,
        detail() if detail is not None else {}, None if base is None else float(base),
        baseline[0] if base is not None else None, or_none(interval),
    )  # fmt: skip


# -- statistics -------------------------------------------------------------------------------------
def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NotComputable for fewer than 2 pairs or a constant input."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        raise NotComputable(f"correlation needs at least 2 rows, got {len(x)}")
    dx, dy = x - x.mean(), y - y.mean()
    sx, sy = math.sqrt(float(dx @ dx)), math.sqrt(float(dy @ dy))
    if sx == 0.0 or sy == 0.0:
        which = "first" if sx == 0.0 else "second"
        raise NotComputable(f"correlation of a constant input ({which} variable has no variance)")
    return float(dx @ dy) / (sx * sy)


def rank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(x)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    return ((last - counts + 1 + last) / 2.0)[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(rank(x), rank(y))


def auc(prob: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half)."""
    label = np.asarray(label).astype(bool)
    positives, negatives = int(label.sum()), int((~label).sum())
    if positives == 0 or negatives == 0:
        raise NotComputable(f"AUC needs both classes; rows hold {positives} correct and {negatives} incorrect")
    ranks = rank(prob)
    return float((ranks[label].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def share_predicted_wrong(prob: np.ndarray) -> float:
    """Share of steps predicted wrong (p < 0.5): encoder 2's "not mastered" calls, and the same
    statistic for encoder 1 or a reference beside it. It depends on how far a model spreads its
    predictions as well as on its AUC, so it reads beside another model's on the same steps."""
    if len(prob) == 0:
        raise NotComputable("no rows")
    return float(np.mean(np.asarray(prob) < 0.5))


def platt_scaling(prob: np.ndarray, label: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """(a, b) of the recalibration sigmoid(a * logit(p) + b) that minimises the log loss on these
    rows (Platt scaling): a < 1 says the model spreads its predictions too far, b > 0 that it
    predicts too low. Newton's method on the two-parameter logistic regression (convex), each step
    halved until the loss falls, so extreme probabilities cannot make it overshoot."""
    prob, label = np.asarray(prob, dtype=np.float64), np.asarray(label, dtype=np.float64)
    if len(label) == 0 or label.min() == label.max():
        raise NotComputable("needs right and wrong answers")
    x = np.stack([_logit(prob), np.ones(len(prob))], 1)

    def loss(ab: np.ndarray) -> float:  # mean log loss, computed stably from the logits
        logit = x @ ab
        return float(np.mean(np.logaddexp(0.0, logit) - label * logit))

    ab, current = np.array([1.0, 0.0]), loss(np.array([1.0, 0.0]))
    for _ in range(iterations):
        p = _sigmoid(x @ ab)
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x / len(p)
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), x.T @ (p - label) / len(p))
        trial = loss(ab - step)
        while trial > current and np.abs(step).max() > 1e-12:
            step = step / 2.0
            trial = loss(ab - step)
        ab, previous, current = ab - step, current, trial
        if previous - current < 1e-13 and np.abs(step).max() < 1e-8:
            return float(ab[0]), float(ab[1])
    # e.g. rows a threshold separates perfectly: the slope grows without bound
    raise NotComputable(f"Platt scaling did not converge in {iterations} Newton steps")


def share_predicted_wrong_recalibrated(fit_prob: np.ndarray, fit_label: np.ndarray, prob: np.ndarray) -> float:
    """:func:`share_predicted_wrong` of ``prob`` after the :func:`platt_scaling` fitted on other rows
    (the validation split): the share a model would call wrong were it calibrated there. Two models
    that rank steps alike can differ in the raw share by their bias at 0.5 alone (pykt's DKT sits too
    low near 0.5 on every ASSISTments 2015 fold), so this reads a model's share beside another's on
    an equal footing. A statistic only: no prediction is changed."""
    a, b = platt_scaling(fit_prob, fit_label)
    return share_predicted_wrong(_sigmoid(a * _logit(np.asarray(prob, dtype=np.float64)) + b))


def _logit(prob: np.ndarray) -> np.ndarray:
    prob = np.clip(prob, 1e-7, 1.0 - 1e-7)
    return np.log(prob / (1.0 - prob))


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))


def accuracy(prob: np.ndarray, label: np.ndarray) -> float:
    """Share of rows where ``prob >= 0.5`` matches the 0/1 label."""
    if len(label) == 0:
        raise NotComputable("no rows")
    return float(np.mean((np.asarray(prob) >= 0.5) == np.asarray(label).astype(bool)))


def skill_lists(skill: pd.Series) -> pd.Series:
    """``"3|7"`` -> [3, 7] per row (as integers)."""
    return skill.astype(str).str.split("|").map(lambda ids: [int(i) for i in ids])


def per_skill_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (interaction, skill): a multi-skill interaction counts for each of its skills."""
    exploded = rows.assign(skill_id=skill_lists(rows["skill"])).explode("skill_id")
    return exploded.astype({"skill_id": np.int64})


def skill_matrix(skill: pd.Series) -> np.ndarray:
    """``"3|7"`` -> [N, K] skill ids padded with -1 (each distinct skill set is parsed once)."""
    codes, sets = pd.factorize(skill.astype(str))
    parsed = [[int(i) for i in text.split("|")] for text in sets]
    table = np.full((len(parsed), max((len(p) for p in parsed), default=1)), -1, dtype=np.int64)
    for row, ids in enumerate(parsed):  # one per distinct skill set, not per row
        table[row, : len(ids)] = ids
    return table[codes]


def row_gain_sums(rows: pd.DataFrame) -> gain_stats.GainSums:
    """The gain statistics of ``gain_stats`` (the monitors' too) over these rows."""
    skills = skill_matrix(rows["skill"])
    return gain_stats.gain_sums(
        torch.tensor(rows["gain"].to_numpy(np.float64)), torch.from_numpy(skills),
        torch.tensor(rows["response"].to_numpy(np.int64)), int(skills.max(initial=0)) + 1,
    )  # fmt: skip


def bootstrap(rows: pd.DataFrame, t: Thresholds) -> StudentBootstrap:
    """The student resampling of these rows that every interval of one report shares."""
    return StudentBootstrap(rows["student"].to_numpy(), t.bootstrap_samples, t.bootstrap_level, t.seed)


# -- the checks -------------------------------------------------------------------------------------
def gain_std(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """1. Population std of the gain applied to the practised skills, over all rows.

    Near-zero std means encoder 2 gives every interaction the same gain (the V1/V2 failure).
    """
    return _result(1, "gain std", t.gain_std, ">", lambda: gain_stats.gain_std(row_gain_sums(rows)))


def qmatrix_alignment(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """2. Share of all gain applied at the scored steps that lands on the question's own skills.

    sum(gain x number of the row's skills) / (that + sum(gain_other)). 1 by construction with
    ``accumulate=practiced``; the original's ``accumulate=all`` spreads gain over every skill.
    """

    def compute() -> float:
        own = float((rows["gain"] * skill_lists(rows["skill"]).map(len)).sum())
        total = own + float(rows["gain_other"].sum())
        if total <= 0.0:
            raise NotComputable("no gain was applied on these rows")
        return own / total

    return _result(2, "Q-matrix alignment", t.qmatrix_share, ">=", compute)


def monotonicity_violations(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """3. Number of mastery decreases (beyond ``monotonicity_tolerance``) along each student's steps.

    Counts (a) rows with mastery_after < mastery_before and (b) consecutive rows of the same
    window (hence student) and skill set where the later row's mastery_before is below the earlier
    row's mastery_after (``gain_stats.mastery_decreases``, which the per-epoch monitor uses too).
    """

    def compute() -> float:
        if len(rows) == 0:
            raise NotComputable("no rows")
        column = lambda name, dtype: torch.tensor(rows[name].to_numpy(dtype))  # noqa: E731
        return float(gain_stats.mastery_decreases(
            column("window", np.int64), torch.from_numpy(skill_matrix(rows["skill"])), column("step", np.int64),
            column("mastery_before", np.float64), column("mastery_after", np.float64), t.monotonicity_tolerance,
        ))  # fmt: skip

    return _result(3, "monotonicity violations", t.monotonicity_violations, "<=", compute)


def mastery_response_correlation(rows: pd.DataFrame, t: Thresholds, boot: StudentBootstrap | None = None) -> CheckResult:
    """4. Pearson(mastery_before, response) over all rows; reference: Pearson(enc1_prob, response).

    mastery_before is what encoder 2 knew before the answer, so this is its predictive reading.
    Baseline: the same with the per-skill correct-rate table's prediction.
    """
    response = rows["response"].to_numpy()
    mastery = rows["mastery_before"].to_numpy()
    return _result(
        4, "mastery-response correlation", t.mastery_response_pearson, ">",
        lambda: pearson(mastery, response), lambda: pearson(rows["enc1_prob"].to_numpy(), response),
        baseline=(SKILL_RATE, lambda: pearson(rows["skill_rate_prob"].to_numpy(), response)),
        interval=None if boot is None else lambda: boot.pearson(mastery, response),
    )  # fmt: skip


def skill_gain_cv(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """5. Coefficient of variation (std / mean) across skills of each skill's mean gain.

    Skills with fewer than ``min_rows_per_skill`` rows are left out; a multi-skill row counts for
    each of its skills with its (mean) gain. Skills that differ in difficulty should differ here.
    """
    return _result(5, "CV of mean gain across skills", t.skill_gain_cv, ">",
                   lambda: gain_stats.skill_gain_cv(row_gain_sums(rows), t.min_rows_per_skill))  # fmt: skip


def correct_incorrect_ratio(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """6. Mean gain at correct answers / mean gain at incorrect answers.

    The gain at step t is computed from the token that holds r_t, so it is the gain *after* that
    answer; students learn more from a success than from a failure in the simulator and in theory.
    """
    return _result(6, "gain ratio correct/incorrect", t.correct_incorrect_ratio, ">",
                   lambda: gain_stats.gain_ratio(row_gain_sums(rows)))  # fmt: skip


def encoder2_auc(rows: pd.DataFrame, t: Thresholds, boot: StudentBootstrap | None = None) -> CheckResult:
    """7. AUC of enc2_prob for the response; reference: encoder 1's AUC on the same rows.

    Baseline: the AUC of the per-skill correct-rate table, the floor for an interpretable model.
    """
    response = rows["response"].to_numpy()
    prob = rows["enc2_prob"].to_numpy()
    return _result(
        7, "encoder-2 AUC", t.enc2_auc, ">", lambda: auc(prob, response),
        lambda: auc(rows["enc1_prob"].to_numpy(), response),
        baseline=(SKILL_RATE, lambda: auc(rows["skill_rate_prob"].to_numpy(), response)),
        interval=None if boot is None else lambda: boot.auc(prob, response),
    )  # fmt: skip


def gains_not_flat(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """8. Interquartile range of the gains (value), and share of distinct gain values (detail).

    Passes when IQR > ``gain_iqr`` and the share of distinct values, rounded to
    ``gain_distinct_decimals`` decimals, exceeds ``gain_distinct_share``: a few outliers on an
    otherwise constant gain do not pass.
    """
    gain = rows["gain"].to_numpy(np.float64)

    def distinct_share() -> float:
        return len(np.unique(np.round(gain, t.gain_distinct_decimals))) / len(gain)

    def compute() -> float:
        if len(gain) < 2:
            raise NotComputable(f"needs at least 2 rows, got {len(gain)}")
        q25, q75 = np.percentile(gain, [25, 75])
        return float(q75 - q25)

    result = _result(8, "gains not flat (IQR)", t.gain_iqr, ">", compute, detail=lambda: {"distinct_share": distinct_share()})
    if result.passed and not result.detail["distinct_share"] > t.gain_distinct_share:
        result.passed = False
        result.reason = f"share of distinct gains not > {t.gain_distinct_share:g}"
    return result


def beta_spread(beta: np.ndarray, t: Thresholds) -> CheckResult:
    """9. Std over all skills of the learned learning rate beta (skills must learn at different rates)."""

    def compute() -> float:
        if len(beta) < 2:
            raise NotComputable(f"needs at least 2 skills, got {len(beta)}")
        return float(np.std(np.asarray(beta, dtype=np.float64)))

    return _result(9, "std of beta", t.beta_std, ">", compute)


def encoder2_match_rate(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """10. Share of rows where enc2_prob >= 0.5 matches the response; reference: encoder 1's.

    With ``im_target=next`` enc2_prob >= 0.5 exactly when the aggregated mastery_before reaches the
    threshold theta, so this is the binary "mastered <=> correct" match rate. Baseline: always
    answering the rows' majority class, whose accuracy is the share of that class: a model that
    calls every student mastered scores exactly the share of correct answers.
    """
    response = rows["response"].to_numpy()

    def majority() -> float:
        if len(response) == 0:
            raise NotComputable("no rows")
        return majority_class(response)[1]

    return _result(
        10, "encoder-2 binary match rate", t.enc2_match_rate, ">",
        lambda: accuracy(rows["enc2_prob"].to_numpy(), response),
        lambda: accuracy(rows["enc1_prob"].to_numpy(), response), baseline=(MAJORITY, majority),
    )  # fmt: skip


def student_mastery_correlation(rows: pd.DataFrame, t: Thresholds, boot: StudentBootstrap | None = None) -> CheckResult:
    """11. Across students: Pearson(mean mastery_before over the student's rows, share correct).

    Students with fewer than ``min_rows_per_student`` rows are left out. Check 4 pools rows; this
    asks whether students the model thinks stronger answer more often correctly. Reference: the
    same with the student's mean enc1_prob; baseline: with the mean of the per-skill table's
    prediction (students who practise easier skills answer more often correctly).
    """
    first = pd.Series(np.arange(len(rows)), index=rows.index)
    per_student = rows.assign(first=first).groupby("student").agg(
        mastery=("mastery_before", "mean"), enc1=("enc1_prob", "mean"), table=("skill_rate_prob", "mean"),
        correct=("response", "mean"), size=("response", "size"), first=("first", "first"),
    )  # fmt: skip
    kept = per_student[per_student["size"] >= t.min_rows_per_student]

    def over(column: str) -> float:
        if len(kept) < 3:
            raise NotComputable(f"needs at least 3 students with >= {t.min_rows_per_student} rows, got {len(kept)}")
        return pearson(kept[column].to_numpy(), kept["correct"].to_numpy())

    def interval() -> list[float] | None:
        assert boot is not None
        return boot.student_pearson(kept["first"].to_numpy(), kept["mastery"].to_numpy(), kept["correct"].to_numpy())

    return _result(11, "student mastery correlation", t.student_mastery_pearson, ">",
                   lambda: over("mastery"), lambda: over("enc1"), detail=lambda: {"students": float(len(kept))},
                   baseline=(SKILL_RATE, lambda: over("table")),
                   interval=None if boot is None or len(kept) < 3 else interval)  # fmt: skip


def counterfactual_responses(stats: Mapping[str, Mapping[str, float]] | None, t: Thresholds) -> CheckResult:
    """12. Share of (flipped answer, later step of a shared skill) pairs where encoder 2's prediction
    moved against the flip; reference: encoder 1's share on the same pairs.

    ``stats`` holds ``enc1`` and ``enc2``, each :func:`gainakt.verification.counterfactual.violations`
    (None when the check was not run). Right answers should never count against a student; nothing
    in the architecture makes this 0, so it is measured.
    """

    def compute() -> float:
        if stats is None:
            raise NotComputable("not run (checks.counterfactual_windows=0)")
        if not stats["enc2"]["pairs"]:
            raise NotComputable("no sampled test window has a later step of a flipped answer's skill")
        return stats["enc2"]["rate"]

    return _result(12, "counterfactual violations", t.counterfactual_violation_rate, "<=", compute,
                   lambda: stats["enc1"]["rate"], detail=lambda: {"pairs": stats["enc2"]["pairs"]})  # fmt: skip


def run_checks(
    rows: pd.DataFrame, beta: np.ndarray, thresholds: Thresholds,
    counterfactual: Mapping[str, Mapping[str, float]] | None = None,
) -> list[CheckResult]:  # fmt: skip
    """The checks, in order, on ``rows`` (one split's trajectories), the learned beta and the
    counterfactual statistics (check 12; not computable without them)."""
    boot = bootstrap(rows, thresholds)
    return [
        gain_std(rows, thresholds),
        qmatrix_alignment(rows, thresholds),
        monotonicity_violations(rows, thresholds),
        mastery_response_correlation(rows, thresholds, boot),
        skill_gain_cv(rows, thresholds),
        correct_incorrect_ratio(rows, thresholds),
        encoder2_auc(rows, thresholds, boot),
        gains_not_flat(rows, thresholds),
        beta_spread(beta, thresholds),
        encoder2_match_rate(rows, thresholds),
        student_mastery_correlation(rows, thresholds, boot),
        counterfactual_responses(counterfactual, thresholds),
    ]


# -- ground-truth recovery (synthetic data) ---------------------------------------------------------
def learned_rates(rows: pd.DataFrame, beta: np.ndarray, min_rows: int) -> pd.Series:
    """Per skill: beta_s x the skill's mean gain, the model's mastery-logit increase per attempt.

    The model can put a skill's speed into beta or into its gains; only their product compares with
    the simulator's beta_s (whose practice grows by a fixed amount per attempt). Skills with fewer
    than ``min_rows`` rows are left out. Index: skill id.
    """
    per_skill = per_skill_rows(rows).groupby("skill_id")["gain"].agg(["mean", "size"])
    per_skill = per_skill[per_skill["size"] >= min_rows]
    return per_skill["mean"] * np.asarray(beta, dtype=np.float64)[per_skill.index.to_numpy()]


def recovery_checks(
    rows: pd.DataFrame, beta: np.ndarray, truth: Mapping[str, np.ndarray], thresholds: Thresholds,
    boot: StudentBootstrap | None = None,
) -> list[CheckResult]:  # fmt: skip
    """Spearman(learned rate, true beta) over skills; Pearson(mastery_before, true mastery) over rows."""
    rates = learned_rates(rows, beta, thresholds.min_rows_per_skill)
    true_beta = np.asarray(truth["beta"], dtype=np.float64)
    rate = _result(
        "R1", "learned rate vs true beta (Spearman)", thresholds.recovery_rate_spearman, ">",
        lambda: spearman(rates.to_numpy(), true_beta[rates.index.to_numpy()]),
        detail=lambda: {"skills": float(len(rates)), "beta_only_spearman": or_none(
            lambda: spearman(np.asarray(beta)[rates.index.to_numpy()], true_beta[rates.index.to_numpy()]))},
    )  # fmt: skip
    mastery, true_mastery = rows["mastery_before"].to_numpy(), rows["true_mastery_before"].to_numpy()
    recovered = _result(
        "R2", "mastery vs true mastery (Pearson)", thresholds.recovery_mastery_pearson, ">",
        lambda: pearson(mastery, true_mastery),
        interval=None if boot is None else lambda: boot.pearson(mastery, true_mastery),
    )  # fmt: skip
    return [rate, recovered]


# -- degenerate learned parameters ------------------------------------------------------------------
def degenerate_parameters(params: Mapping[str, Any], rows: pd.DataFrame, t: Thresholds) -> list[dict[str, Any]]:
    """Learned parameters at a value that makes encoder 2's reading meaningless, as flags.

    Reads what ``parameters.json`` holds, so a response model with other parameters is covered
    where it has them: theta at a bound of [0, 1], the temperature T outside
    [``temperature_min``, ``temperature_max``], (nearly) all of these rows' gains within
    ``gain_saturation_margin`` of 0 or 1, and guess + slip >= 1 (the response curve falls with
    mastery) wherever both exist. Each flag: ``parameter``, ``value`` and a ``message``.
    """
    flags = []
    theta = params.get("theta")
    if theta is not None and min(theta, 1.0 - theta) <= t.theta_bound_margin:
        bound, reading = (("lower bound 0, which every mastery reaches", "every student as mastered on every skill")
                          if theta <= 0.5 else ("upper bound 1, which no mastery reaches",
                                                "no student as mastered on any skill"))  # fmt: skip
        flags.append({"parameter": "theta", "value": float(theta), "message": (
            f"theta = {theta:.4f} sits at its {bound}: encoder 2 reads {reading}, and the threshold no longer "
            "separates mastered from not yet mastered")})  # fmt: skip
    temperature = params.get("temperature")
    if temperature is not None and not t.temperature_min <= temperature <= t.temperature_max:
        low, high = 1.0 / (1.0 + math.exp(1.0 / temperature)), 1.0 / (1.0 + math.exp(-1.0 / temperature))
        why = ("encoder 2's probabilities are nearly 0 or 1" if temperature < t.temperature_min
               else f"encoder 2's probabilities stay within ({low:.2f}, {high:.2f})")  # fmt: skip
        flags.append({"parameter": "temperature", "value": float(temperature), "message": (
            f"T = {temperature:.4g} is outside [{t.temperature_min:g}, {t.temperature_max:g}]: {why}")})  # fmt: skip
    gain = rows["gain"].to_numpy(np.float64)
    if len(gain):
        low, high = float(np.mean(gain <= t.gain_saturation_margin)), float(np.mean(gain >= 1.0 - t.gain_saturation_margin))
        if low + high >= t.gain_saturated_share:
            flags.append({"parameter": "gains", "value": low + high, "message": (
                f"{100 * (low + high):.1f} % of the gains lie within {t.gain_saturation_margin:g} of 0 ({100 * low:.1f} %) "
                f"or 1 ({100 * high:.1f} %): the gains head is saturated and no longer tells interactions apart")})  # fmt: skip
    if params.get("guess") is not None and params.get("slip") is not None:
        total = np.asarray(params["guess"], np.float64) + np.asarray(params["slip"], np.float64)
        bad = total >= 1.0
        if bad.any():
            where = "" if total.ndim == 0 else f" for {int(bad.sum())} of {total.size} skills"
            flags.append({"parameter": "guess+slip", "value": float(total.max()), "message": (
                f"guess + slip >= 1{where} (largest {float(total.max()):.4f}): the predicted probability falls as "
                "mastery rises")})  # fmt: skip
    return flags
