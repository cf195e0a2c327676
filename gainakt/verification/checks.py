"""The eleven verification checks of encoder 2 (SPEC "Verification checks"), as pure functions.

Every check reads the rows of a trajectories table (one row per scored interaction, see
``gainakt.verification.trajectories``) and, for check 9, the learned parameters. A check that cannot be
computed on the rows it gets (no incorrect answers, a constant input to a correlation, too few
skills) says so with a reason: it never crashes and never passes by default.

Row columns used here: ``response`` (0/1), ``enc1_prob`` and ``enc2_prob`` (both predicted before
the response was seen), ``mastery_before`` (mastery of the interaction's skills before it,
aggregated as encoder 2 does), ``mastery_after``, ``gain`` (gain applied at this step to the
interaction's skills, mean over its skills), ``gain_other`` (gain applied at this step to all
other skills; 0 unless ``accumulate=all``), ``skill`` (skill ids joined by ``|``), ``student``,
``window`` and ``step``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PASSED, FAILED, NOT_COMPUTABLE = "passed", "failed", "not computable"


DEFINITIONS: dict[int | str, str] = {
    1: "population std of `gain` over the rows",
    2: "sum of gain on the question's skills / sum of all gain applied at these steps (`gain_other` is the rest)",
    3: "rows with mastery_after < mastery_before, plus consecutive rows of one student, window and skill set "
    "whose mastery_before falls below the previous mastery_after (tolerance `monotonicity_tolerance`)",
    4: "Pearson(mastery_before, response) over the rows; encoder 1: Pearson(enc1_prob, response)",
    5: "std / mean across skills (with >= `min_rows_per_skill` rows) of each skill's mean gain",
    6: "mean gain at correct answers / mean gain at incorrect answers (the gain at step t is computed after r_t)",
    7: "AUC of enc2_prob for the response; encoder 1: AUC of enc1_prob",
    8: "IQR of `gain`; also needs the share of distinct gains (rounded) above `gain_distinct_share`",
    9: "std over skills of the learned beta",
    10: "share of rows where (enc2_prob >= 0.5) equals the response, i.e. mastered <=> correct; encoder 1: its accuracy",
    11: "Pearson across students (>= `min_rows_per_student` rows) of mean mastery_before and share correct; "
    "encoder 1: mean enc1_prob instead of mastery",
    "R1": "Spearman over skills of the learned rate (beta x the skill's mean gain) and the simulator's beta",
    "R2": "Pearson(mastery_before, the simulator's mastery before the answer) over the rows",
}
"""One line per check, for verification.md and the README; the functions' docstrings say why."""


@dataclass(frozen=True)
class Thresholds:
    """Pass thresholds of the checks (config group ``checks``); defaults are the SPEC's."""

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
    recovery_rate_spearman: float
    recovery_mastery_pearson: float


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
    reason: str | None = None
    detail: dict[str, float | None] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return NOT_COMPUTABLE if self.passed is None else PASSED if self.passed else FAILED

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


class NotComputable(Exception):
    """Raised inside a statistic when the rows cannot give it; the message is the reason."""


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
}


def _result(
    id: int | str, name: str, threshold: float, op: str, compute: Callable[[], float],
    reference: Callable[[], float] | None = None, detail: Callable[[], dict[str, float]] | None = None,
) -> CheckResult:  # fmt: skip
    """Run ``compute`` (and the optional reference and detail); a NotComputable becomes the reason."""
    try:
        value = float(compute())
    except NotComputable as exc:
        return CheckResult(id, name, None, threshold, op, None, reason=str(exc))
    ref = None
    if reference is not None:
        try:
            ref = float(reference())
        except NotComputable:
            ref = None
    return CheckResult(id, name, value, threshold, op, _COMPARE[op](value, threshold), ref, None,
                       detail() if detail is not None else {})  # fmt: skip


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


# -- the eleven checks ------------------------------------------------------------------------------
def gain_std(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """1. Population std of the gain applied to the practised skill, over all rows.

    Near-zero std means encoder 2 gives every interaction the same gain (the V1/V2 failure).
    """

    def compute() -> float:
        if len(rows) < 2:
            raise NotComputable(f"std needs at least 2 rows, got {len(rows)}")
        return float(np.std(rows["gain"].to_numpy(np.float64)))

    return _result(1, "gain std", t.gain_std, ">", compute)


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

    Counts (a) rows with mastery_after < mastery_before and (b) consecutive rows of the same student,
    window and skill set where the later row's mastery_before is below the earlier row's
    mastery_after. Windows are separate model inputs, so mastery may restart at a window boundary.
    """

    def compute() -> float:
        if len(rows) == 0:
            raise NotComputable("no rows")
        tol = t.monotonicity_tolerance
        within = int((rows["mastery_after"] < rows["mastery_before"] - tol).sum())
        ordered = rows.sort_values(["student", "window", "skill", "step"], kind="stable")
        same = ordered[["student", "window", "skill"]].eq(ordered[["student", "window", "skill"]].shift()).all(axis=1)
        previous_after = ordered["mastery_after"].shift()
        across = int((same & (ordered["mastery_before"] < previous_after - tol)).sum())
        return within + across

    return _result(3, "monotonicity violations", t.monotonicity_violations, "<=", compute)


def mastery_response_correlation(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """4. Pearson(mastery_before, response) over all rows; reference: Pearson(enc1_prob, response).

    mastery_before is what encoder 2 knew before the answer, so this is its predictive reading.
    """
    response = rows["response"].to_numpy()
    return _result(
        4, "mastery-response correlation", t.mastery_response_pearson, ">",
        lambda: pearson(rows["mastery_before"].to_numpy(), response),
        lambda: pearson(rows["enc1_prob"].to_numpy(), response),
    )  # fmt: skip


def skill_gain_cv(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """5. Coefficient of variation (std / mean) across skills of each skill's mean gain.

    Skills with fewer than ``min_rows_per_skill`` rows are left out; a multi-skill row counts for
    each of its skills with its (mean) gain. Skills that differ in difficulty should differ here.
    """

    def compute() -> float:
        per_skill = per_skill_rows(rows).groupby("skill_id")["gain"].agg(["mean", "size"])
        means = per_skill.loc[per_skill["size"] >= t.min_rows_per_skill, "mean"].to_numpy(np.float64)
        if len(means) < 2:
            raise NotComputable(f"needs at least 2 skills with >= {t.min_rows_per_skill} rows, got {len(means)}")
        if means.mean() <= 0.0:
            raise NotComputable("mean gain is 0")
        return float(means.std() / means.mean())

    return _result(5, "CV of mean gain across skills", t.skill_gain_cv, ">", compute)


def correct_incorrect_ratio(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """6. Mean gain at correct answers / mean gain at incorrect answers.

    The gain at step t is computed from the token that holds r_t, so it is the gain *after* that
    answer; students learn more from a success than from a failure in the simulator and in theory.
    """

    def compute() -> float:
        response = rows["response"].to_numpy()
        gain = rows["gain"].to_numpy(np.float64)
        correct, incorrect = gain[response == 1], gain[response == 0]
        if len(incorrect) == 0 or len(correct) == 0:
            missing = "incorrect" if len(incorrect) == 0 else "correct"
            raise NotComputable(f"no {missing} answers in these rows")
        if incorrect.mean() == 0.0:
            raise NotComputable("mean gain after incorrect answers is 0")
        return float(correct.mean() / incorrect.mean())

    return _result(6, "gain ratio correct/incorrect", t.correct_incorrect_ratio, ">", compute)


def encoder2_auc(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """7. AUC of enc2_prob for the response; reference: encoder 1's AUC on the same rows."""
    response = rows["response"].to_numpy()
    return _result(
        7, "encoder-2 AUC", t.enc2_auc, ">",
        lambda: auc(rows["enc2_prob"].to_numpy(), response), lambda: auc(rows["enc1_prob"].to_numpy(), response),
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
    if result.passed:
        result.passed = result.detail["distinct_share"] > t.gain_distinct_share
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
    threshold theta, so this is the binary "mastered <=> correct" match rate.
    """
    response = rows["response"].to_numpy()
    return _result(
        10, "encoder-2 binary match rate", t.enc2_match_rate, ">",
        lambda: accuracy(rows["enc2_prob"].to_numpy(), response),
        lambda: accuracy(rows["enc1_prob"].to_numpy(), response),
    )  # fmt: skip


def student_mastery_correlation(rows: pd.DataFrame, t: Thresholds) -> CheckResult:
    """11. Across students: Pearson(mean mastery_before over the student's rows, share correct).

    Students with fewer than ``min_rows_per_student`` rows are left out. Check 4 pools rows; this
    asks whether students the model thinks stronger answer more often correctly. Reference: the
    same with the student's mean enc1_prob.
    """
    per_student = rows.groupby("student").agg(
        mastery=("mastery_before", "mean"), enc1=("enc1_prob", "mean"), correct=("response", "mean"),
        size=("response", "size"),
    )  # fmt: skip
    kept = per_student[per_student["size"] >= t.min_rows_per_student]

    def over(column: str) -> float:
        if len(kept) < 3:
            raise NotComputable(f"needs at least 3 students with >= {t.min_rows_per_student} rows, got {len(kept)}")
        return pearson(kept[column].to_numpy(), kept["correct"].to_numpy())

    return _result(11, "student mastery correlation", t.student_mastery_pearson, ">",
                   lambda: over("mastery"), lambda: over("enc1"), detail=lambda: {"students": float(len(kept))})  # fmt: skip


def run_checks(rows: pd.DataFrame, beta: np.ndarray, thresholds: Thresholds) -> list[CheckResult]:
    """The eleven checks, in order, on ``rows`` (one split's trajectories) and the learned beta."""
    return [
        gain_std(rows, thresholds),
        qmatrix_alignment(rows, thresholds),
        monotonicity_violations(rows, thresholds),
        mastery_response_correlation(rows, thresholds),
        skill_gain_cv(rows, thresholds),
        correct_incorrect_ratio(rows, thresholds),
        encoder2_auc(rows, thresholds),
        gains_not_flat(rows, thresholds),
        beta_spread(beta, thresholds),
        encoder2_match_rate(rows, thresholds),
        student_mastery_correlation(rows, thresholds),
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
    rows: pd.DataFrame, beta: np.ndarray, truth: Mapping[str, np.ndarray], thresholds: Thresholds
) -> list[CheckResult]:
    """Spearman(learned rate, true beta) over skills; Pearson(mastery_before, true mastery) over rows."""
    rates = learned_rates(rows, beta, thresholds.min_rows_per_skill)
    true_beta = np.asarray(truth["beta"], dtype=np.float64)
    rate = _result(
        "R1", "learned rate vs true beta (Spearman)", thresholds.recovery_rate_spearman, ">",
        lambda: spearman(rates.to_numpy(), true_beta[rates.index.to_numpy()]),
        detail=lambda: {"skills": float(len(rates)), "beta_only_spearman": _or_none(
            lambda: spearman(np.asarray(beta)[rates.index.to_numpy()], true_beta[rates.index.to_numpy()]))},
    )  # fmt: skip
    mastery = _result(
        "R2", "mastery vs true mastery (Pearson)", thresholds.recovery_mastery_pearson, ">",
        lambda: pearson(rows["mastery_before"].to_numpy(), rows["true_mastery_before"].to_numpy()),
    )  # fmt: skip
    return [rate, mastery]


def _or_none(compute: Callable[[], float]) -> float | None:
    try:
        return compute()
    except NotComputable:
        return None
