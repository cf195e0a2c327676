"""Statistics of the gains and of the mastery curves, defined once for the per-epoch monitors and the
final checks.

Both read the same *rows*: one per scored interaction (every step of a window but its first), with
the gain g_t applied at that step to the interaction's skills (the mean over them for a multi-skill
question, as ``trajectories.csv``'s ``gain``) and the aggregated mastery before and after it. The
monitors get the rows of each validation batch from :func:`gainakt.verification.trajectories.dense_rows`
(the validation step's forward pass: every position, padding weighted 0, so that no selection
makes a GPU wait for the host); the checks get the test rows of ``trajectories.csv``, which
:func:`~gainakt.verification.trajectories.scored_rows` selects from the same dense rows.

Gain statistics are built from additive sufficient statistics (counts and sums), so a monitor adds
them up batch by batch, on the device, and summarises once per epoch without keeping every gain.
"""

from __future__ import annotations

import math

import torch

GainSums = dict[str, torch.Tensor]


class NotComputable(Exception):
    """Raised inside a statistic when the rows cannot give it; the message is the reason."""


def gain_sums(
    gain: torch.Tensor,
    skills: torch.Tensor,
    responses: torch.Tensor,
    num_skills: int,
    weight: torch.Tensor | None = None,
) -> GainSums:
    """Sufficient statistics of the gains of some rows.

    Weighted sums and index-adds over every row given, never a selection: a selection's size is
    data-dependent, so on a GPU every batch would wait for the host. The monitors pass every
    position of a padded batch with ``weight`` 0 on padding (:func:`~gainakt.verification.trajectories.dense_rows`),
    which gives the statistics of the scored rows alone.

    Args:
        gain: [N] gain of each row (the mean over its skills).
        skills: [N, K] the row's skill ids, -1 for empty slots; a multi-skill row counts, with its
            gain, for each of its skills.
        responses: [N] the row's answer r_t (the gain at step t is computed after it).
        weight: [N] 1 for a row that counts, 0 for one that does not (padding); None: every row counts.
    Returns float64 tensors on the gains' device: ``n``, ``sum``, ``sum_sq`` (scalars), ``skill_n``,
    ``skill_sum`` ([C]), ``response_n``, ``response_sum`` ([2], index = response).
    """
    w = torch.ones_like(gain, dtype=torch.float64) if weight is None else weight.double()
    counted = w > 0
    g = torch.where(counted, gain.double(), 0.0)  # what a padding row holds is never read
    slot = ((skills >= 0) & counted.unsqueeze(-1)).double() * w.unsqueeze(-1)  # [N, K]
    s = skills.clamp_min(0).long().flatten()
    r = torch.where(counted, responses.long(), 0)
    per_skill = torch.zeros(num_skills, dtype=torch.float64, device=gain.device)
    per_response = torch.zeros(2, dtype=torch.float64, device=gain.device)
    return {
        "n": w.sum(),
        "sum": (g * w).sum(),
        "sum_sq": (g * g * w).sum(),
        "skill_n": per_skill.index_add(0, s, slot.flatten()),
        "skill_sum": per_skill.index_add(0, s, (g.unsqueeze(-1) * slot).flatten()),
        "response_n": per_response.index_add(0, r, w),
        "response_sum": per_response.index_add(0, r, g * w),
    }


def add_gain_sums(a: GainSums | None, b: GainSums) -> GainSums:
    """Combine the statistics of two sets of rows (``a`` may be None for the first)."""
    return dict(b) if a is None else {k: a[k] + b[k] for k in b}


def gain_std(sums: GainSums) -> float:
    """Population std of the rows' gains (check 1). Near 0: every interaction gains the same."""
    n = float(sums["n"])
    if n < 2:
        raise NotComputable(f"std needs at least 2 rows, got {int(n)}")
    mean = float(sums["sum"]) / n
    return math.sqrt(max(float(sums["sum_sq"]) / n - mean * mean, 0.0))


def gain_mean(sums: GainSums) -> float:
    n = float(sums["n"])
    if n == 0:
        raise NotComputable("no rows")
    return float(sums["sum"]) / n


def skill_gain_cv(sums: GainSums, min_rows_per_skill: int) -> float:
    """Std / mean across skills (with >= ``min_rows_per_skill`` rows) of each skill's mean gain (check 5).

    Skills that differ in difficulty should be learned at different speeds, so differ here.
    """
    kept = sums["skill_n"] >= min_rows_per_skill
    means = sums["skill_sum"][kept] / sums["skill_n"][kept]
    if means.numel() < 2:
        raise NotComputable(f"needs at least 2 skills with >= {min_rows_per_skill} rows, got {means.numel()}")
    centre = float(means.mean())
    if centre <= 0.0:
        raise NotComputable("mean gain is 0")
    return float(means.std(correction=0)) / centre


def mean_gain_after(sums: GainSums, response: int) -> float:
    """Mean gain of the rows answered ``response`` (1 correct, 0 incorrect)."""
    n = float(sums["response_n"][response])
    if n == 0:
        raise NotComputable(f"no {'correct' if response else 'incorrect'} answers in these rows")
    return float(sums["response_sum"][response]) / n


def gain_ratio(sums: GainSums) -> float:
    """Mean gain after a correct answer / after an incorrect one (check 6)."""
    correct, incorrect = mean_gain_after(sums, 1), mean_gain_after(sums, 0)
    if incorrect == 0.0:
        raise NotComputable("mean gain after incorrect answers is 0")
    return correct / incorrect


def summarise_gains(sums: GainSums, min_rows_per_skill: int) -> dict[str, float]:
    """Every gain statistic, NaN where the rows cannot give it (for a per-epoch log line)."""
    statistics = {
        "std": lambda: gain_std(sums),
        "mean": lambda: gain_mean(sums),
        "cv_skills": lambda: skill_gain_cv(sums, min_rows_per_skill),
        "ratio_correct_incorrect": lambda: gain_ratio(sums),
        "mean_after_correct": lambda: mean_gain_after(sums, 1),
        "mean_after_incorrect": lambda: mean_gain_after(sums, 0),
    }
    out = {}
    for name, compute in statistics.items():
        try:
            out[name] = compute()
        except NotComputable:
            out[name] = math.nan
    return out


def mastery_decreases(
    window: torch.Tensor,
    skills: torch.Tensor,
    step: torch.Tensor,
    before: torch.Tensor,
    after: torch.Tensor,
    tolerance: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Number of mastery decreases by more than ``tolerance`` along the rows (check 3), as a 0-d tensor.

    Counts (a) rows whose mastery after the answer is below the mastery before it and (b)
    consecutive rows (by ``step``) of one student window and skill set — windows are separate
    model inputs, so mastery may restart at a window boundary — whose mastery before the answer is
    below the previous row's mastery after it.

    The rows are ordered by (counted, window, skill set, step) with successive stable sorts, and
    each compared with the previous one: no ``unique`` or selection, so nothing waits for the host.

    Args:
        window: [N] the row's window; skills: [N, K] its skill ids (-1 for empty slots);
            step: [N] its position; before, after: [N] its mastery before and after the answer.
        weight: [N] 1 for a row that counts, 0 for one that does not (padding, which sorts apart
            from every counted row and is never compared); None: every row counts.
    """
    counted = torch.ones_like(step, dtype=torch.bool) if weight is None else weight > 0
    order = torch.argsort(step, stable=True)
    for key in (*skills.unbind(-1)[::-1], window, ~counted):  # least significant first
        order = order[torch.argsort(key[order], stable=True)]
    w, s, c = window[order], skills[order], counted[order]
    b, a = before[order], after[order]
    same = (w[1:] == w[:-1]) & (s[1:] == s[:-1]).all(-1) & c[1:] & c[:-1]
    within = ((after < before - tolerance) & counted).sum()
    across = (same & (b[1:] < a[:-1] - tolerance)).sum()
    return within + across
