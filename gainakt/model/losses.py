"""Training losses on logits, masked to real (scored) steps."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_bce(logit: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the steps where ``mask`` holds."""
    return F.binary_cross_entropy_with_logits(logit[mask], target[mask].to(logit.dtype))


def gain_variance_loss(gains_all: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-(mean over real steps of the variance of the gains across skills): rewards differentiated gains."""
    return -gains_all.var(dim=-1)[mask].mean()


def weighted_total(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Sum of the terms with a non-zero weight (a zero-weighted term adds no gradient path at all)."""
    active = [weights[name] * value for name, value in terms.items() if weights.get(name, 0.0) != 0.0]
    if not active:
        raise ValueError(f"every loss weight is zero: {weights}")
    return torch.stack(active).sum()
