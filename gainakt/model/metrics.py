"""Epoch metrics over the scored steps of padded batches, updated without host synchronisation.

torchmetrics' binary classification metrics select the scored steps by boolean indexing and check
their inputs' range, which reads values back from the device on every update: a stall per batch
on a GPU. These take the whole padded batch with its mask, keep tensors on the device, and select
the scored steps once, when the epoch's value is computed. Their values equal torchmetrics'
``BinaryAUROC`` and ``BinaryAccuracy`` on the scored steps (a test checks it).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.utilities import dim_zero_cat


class MaskedAUROC(Metric):
    """Area under the ROC curve of ``prob`` against ``target`` over the steps where ``mask`` holds."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("prob", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")
        self.add_state("mask", default=[], dist_reduce_fx="cat")

    def update(self, prob: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        self.prob.append(prob.detach().float().flatten())
        self.target.append(target.flatten())
        self.mask.append(mask.flatten())

    def compute(self) -> torch.Tensor:
        mask = dim_zero_cat(self.mask)
        return binary_auroc(dim_zero_cat(self.prob)[mask], dim_zero_cat(self.target)[mask].long())


class _Ratio(Metric):
    """A ratio of two sums kept on the device (float64), summed over processes."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("numerator", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("denominator", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def compute(self) -> torch.Tensor:
        return (self.numerator / self.denominator).float()


class MaskedAccuracy(_Ratio):
    """Share of the steps where ``mask`` holds at which ``prob > 0.5`` agrees with ``target``."""

    def update(self, prob: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        self.numerator += (((prob > 0.5) == (target > 0)) & mask).sum()
        self.denominator += mask.sum()


class WeightedMean(_Ratio):
    """Mean of per-batch values weighted by a count kept on the device (the scored steps of each batch)."""

    def update(self, value: torch.Tensor, weight: torch.Tensor) -> None:
        self.numerator += value.detach().double() * weight
        self.denominator += weight
