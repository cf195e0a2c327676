"""Sigmoid learning curve and encoder 2's response prediction, as pure functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def threshold_logit(m: torch.Tensor, theta: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """(m - theta) / T: p = 1/2 exactly at the threshold ("mastered" <=> m >= theta)."""
    return (m - theta) / temperature


def guess_slip_logit(
    m: torch.Tensor,
    theta: torch.Tensor,
    temperature: torch.Tensor | float,
    log_guess: torch.Tensor,
    log_slip: torch.Tensor,
) -> torch.Tensor:
    """Logit of p = g + (1 - g - s) * sigmoid((m - theta) / T), the BKT/4PL response model.

    A student below the threshold still answers correctly with probability about g (a guess) and
    one above it fails with probability about s (a slip), so a high base rate of correct answers
    is fitted by g instead of by pulling theta to 0. p is non-decreasing in m whenever g + s < 1.
    Takes log g and log s and works in log space, so neither p nor 1 - p is ever rounded to 0.
    """
    log_scale = torch.log1p(-(log_guess.exp() + log_slip.exp()))
    z = threshold_logit(m, theta, temperature)
    log_p = torch.logaddexp(log_guess, log_scale + F.logsigmoid(z))
    log_q = torch.logaddexp(log_slip, log_scale + F.logsigmoid(-z))
    return log_p - log_q


def laplace_logit(correct: torch.Tensor, answered: torch.Tensor) -> torch.Tensor:
    """Logit of the Laplace estimate (correct + 1) / (answered + 2): 0 before any evidence, and
    finite at a perfect or a zero record, so a first answer moves it without pinning it."""
    return torch.log(correct + 1.0) - torch.log(answered - correct + 1.0)


def running_ability(responses: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """A causal estimate of each student's ability after each step: [B, L] ``laplace_logit`` of
    the answers over steps 0..t of the window."""
    return laplace_logit((responses.float() * valid).cumsum(-1), valid.float().cumsum(-1))


def recent_ability(surprise: torch.Tensor, rate: float) -> torch.Tensor:
    """The student's recent answers beyond expectation after each step: [B, L] exponentially
    weighted sum of ``surprise`` ([B, L], answer minus its expected share, 0 on padding) over steps
    0..t, weight ``rate * (1 - rate) ** (t - tau)``. Recent steps count most, so a student who has
    begun to fail (or succeed) moves it within a few answers; before any answer it is 0. One
    [L, L] product, no loop over time, in float64: a float32 product's rounding depends on L, so
    the same window would score differently in batches padded to different lengths."""
    steps = torch.arange(surprise.shape[-1], device=surprise.device)
    lag = (steps[:, None] - steps[None, :]).double()
    weight = torch.where(lag >= 0, rate * (1.0 - rate) ** lag.clamp_min(0), 0.0)
    return (surprise.double() @ weight.T).to(surprise.dtype)


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
