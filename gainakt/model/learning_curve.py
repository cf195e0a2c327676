"""Sigmoid learning curve and encoder 2's response prediction, as pure functions."""

from __future__ import annotations

import torch


def mastery(
    effective_practice: torch.Tensor,
    beta: torch.Tensor,
    gamma: torch.Tensor,
    saturation: torch.Tensor,
    offset: torch.Tensor | float,
) -> torch.Tensor:
    """m = M_sat * sigmoid(beta * gamma * EP - offset).

    Monotone non-decreasing in EP as long as beta * gamma >= 0 and M_sat >= 0, which the model
    guarantees by parameterising them through softplus and sigmoid. Arguments broadcast.
    """
    return saturation * torch.sigmoid(beta * gamma * effective_practice - offset)


def mastery_logit(
    skill_mastery: torch.Tensor, valid: torch.Tensor, theta: torch.Tensor, temperature: float, aggregate: str
) -> torch.Tensor:
    """Logit of a correct answer from the mastery of the question's skills.

    Args:
        skill_mastery: [..., K] mastery of each of the question's skills (slots beyond its skills
            are ignored through ``valid``).
        theta: mastery threshold, clamped to [0, 1].
        aggregate: ``min`` (every skill must be mastered) or ``mean``.
    """
    return (aggregate_skills(skill_mastery, valid, aggregate) - theta.clamp(0.0, 1.0)) / temperature


def aggregate_skills(values: torch.Tensor, valid: torch.Tensor, aggregate: str) -> torch.Tensor:
    """Combine [..., K] per-skill values of a question over its ``valid`` skills: ``min`` or ``mean``.

    Encoder 2's prediction and the trajectories' mastery columns both use it, so they agree.
    """
    if aggregate == "min":
        agg = values.masked_fill(~valid, float("inf")).amin(-1)
        return torch.where(valid.any(-1), agg, torch.zeros_like(agg))
    if aggregate == "mean":
        return (values * valid).sum(-1) / valid.sum(-1).clamp_min(1)
    raise ValueError(f"aggregate must be 'min' or 'mean', got {aggregate!r}")
