"""Statistics of the real per-step gains g_t[q_t] and of mastery curves, as pure tensor functions.

Gain statistics are built from additive sufficient statistics (counts and sums), so a monitor can
add them up batch by batch and summarise once per epoch without keeping every gain.
"""

from __future__ import annotations

import math

import torch

GainSums = dict[str, torch.Tensor]


def gain_sums(gain: torch.Tensor, skills: torch.Tensor, responses: torch.Tensor, num_skills: int) -> GainSums:
    """Sufficient statistics of the gains of one batch.

    Masked sums and scatter-adds over the whole padded batch, never a selection of the real steps:
    a selection's size is data-dependent, so on a GPU every batch would wait for the host.

    Args:
        gain: [B, L, K] gain applied at step t to each skill of q_t.
        skills: [B, L, K] skill ids, -1 for empty slots and padding (those gains are left out).
        responses: [B, L] r_t, the answer of the step the gain belongs to.
    Returns float64 tensors on the gains' device: ``n``, ``sum``, ``sum_sq`` (scalars), ``skill_n``,
    ``skill_sum`` ([C]), ``response_n``, ``response_sum`` ([2], index = response).
    """
    w = (skills >= 0).double().flatten()
    g = gain.double().flatten() * w
    s = skills.clamp_min(0).flatten()
    r = responses.unsqueeze(-1).expand_as(skills).flatten().long()
    per_skill = torch.zeros(num_skills, dtype=torch.float64, device=gain.device)
    per_response = torch.zeros(2, dtype=torch.float64, device=gain.device)
    return {
        "n": w.sum(),
        "sum": g.sum(),
        "sum_sq": (g * g).sum(),
        "skill_n": per_skill.index_add(0, s, w),
        "skill_sum": per_skill.index_add(0, s, g),
        "response_n": per_response.index_add(0, r, w),
        "response_sum": per_response.index_add(0, r, g),
    }


def add_gain_sums(a: GainSums | None, b: GainSums) -> GainSums:
    """Combine the statistics of two batches (``a`` may be None for the first)."""
    return dict(b) if a is None else {k: a[k] + b[k] for k in b}


def summarise_gains(sums: GainSums) -> dict[str, float]:
    """``std``, ``mean`` over all gains; ``cv_skills``; ``mean_after_correct`` / ``mean_after_incorrect``.

    ``std`` is the population standard deviation of all per-step gains. ``cv_skills`` is the
    population coefficient of variation, across the skills that occur, of each skill's mean gain
    (how differently skills are learned). Undefined values (no gains, no incorrect answers) are NaN.
    """
    n = float(sums["n"])
    mean = float(sums["sum"]) / n if n else math.nan
    var = max(float(sums["sum_sq"]) / n - mean * mean, 0.0) if n else math.nan
    seen = sums["skill_n"] > 0
    skill_mean = sums["skill_sum"][seen] / sums["skill_n"][seen]
    if skill_mean.numel():
        centre = float(skill_mean.mean())
        spread = float(skill_mean.std(correction=0))
        cv = spread / centre if centre > 0 else math.nan
    else:
        cv = math.nan
    rn, rs = sums["response_n"], sums["response_sum"]
    return {
        "std": math.sqrt(var),
        "mean": mean,
        "cv_skills": cv,
        "mean_after_correct": float(rs[1] / rn[1]) if rn[1] > 0 else math.nan,
        "mean_after_incorrect": float(rs[0] / rn[0]) if rn[0] > 0 else math.nan,
    }


def count_mastery_decreases(mastery: torch.Tensor, mask: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """Number of (student window, step, skill) where mastery falls by more than ``tolerance``
    (a tensor on mastery's device: a monitor adds them up and reads the total once).

    Args:
        mastery: [B, L, C] mastery of every skill after each step.
        mask: [B, L] real steps; a pair (t, t+1) counts only when both are real.
    """
    both = (mask[:, 1:] & mask[:, :-1]).unsqueeze(-1)
    drops = (mastery[:, 1:] < mastery[:, :-1] - tolerance) & both
    return drops.sum()
