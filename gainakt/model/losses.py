"""Training losses on logits, masked to real (scored) steps."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` holds.

    A masked sum over a masked count rather than ``values[mask].mean()``: boolean indexing has a
    data-dependent shape, which makes a GPU wait for the host at every step. (No position: 0.)
    """
    return (values * mask).sum() / mask.sum().clamp_min(1)


def masked_bce(logit: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the steps where ``mask`` holds."""
    bce = F.binary_cross_entropy_with_logits(logit, target.to(logit.dtype), reduction="none")
    return masked_mean(bce, mask)


def teacher_target(answers: torch.Tensor, teacher_logit: torch.Tensor, share: float) -> torch.Tensor:
    """(1 - share) * answers + share * sigmoid(teacher_logit), the teacher detached.

    Encoder 2's training target with encoder 1 as its teacher: encoder 1's prediction of the same
    answer (from the same steps 0..t, so no answer leaks) tells encoder 2 how likely the observed
    answer was, which a 0/1 label cannot. No gradient reaches the teacher.
    """
    if share == 0.0:
        return answers
    teacher = torch.sigmoid(teacher_logit.detach().float())
    return (1.0 - share) * answers.to(teacher.dtype) + share * teacher


def readout_waviness(state: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Per step, the mean over every skill of the squared change of its read-out logit: [B, T, d]
    states and [C, d] output vectors -> [B, T-1].

    DKT+'s waviness (Yeung and Yeung, 2018) on logits: a student's predicted chance on every skill,
    not only the next question's, should change smoothly from one answer to the next. The logit
    difference is linear in the state's change, so the mean over skills is a quadratic form in it
    with the [d, d] Gram matrix of the output vectors: no [B, T, C] tensor is built.
    """
    gram = vectors.t() @ vectors / vectors.shape[0]
    change = state[:, 1:] - state[:, :-1]
    return ((change @ gram) * change).sum(-1)


def gain_variance_loss(gains_all: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-(mean over real steps of the variance of the gains across skills): rewards differentiated gains."""
    return -masked_mean(gains_all.var(dim=-1), mask)


def weighted_total(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Sum of the terms with a non-zero weight (a zero-weighted term adds no gradient path at all)."""
    active = [weights[name] * value for name, value in terms.items() if weights.get(name, 0.0) != 0.0]
    if not active:
        raise ValueError(f"every loss weight is zero: {weights}")
    return torch.stack(active).sum()
