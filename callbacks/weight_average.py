"""Validate, select and test a moving average of the weights instead of the last step's.

The last step's weights carry that step's noise: on real data the validation AUC of neighbouring
epochs jumps by about 0.001. An exponential moving average over about the last epoch of optimiser
steps removes most of it at the cost of one copy of the parameters. Its span is set in epochs, so
one value means the same on a dataset of 20 steps per epoch and one of 200.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch


def step_decay(epochs: float, steps_per_epoch: float) -> float:
    """The per-step decay of an average spanning about ``epochs`` epochs: 1 - 1 / (epochs x steps)."""
    return max(0.0, 1.0 - 1.0 / (epochs * steps_per_epoch)) if epochs > 0 else 0.0


def average_step_weight(decay: float, updates: int) -> float:
    """The weight of the newest parameters in the ``updates``-th update of a normalised moving
    average: after n updates the average is sum_i decay^(n-i) w_i / sum_i decay^(n-i), so the first
    update copies the weights and early epochs are not pulled towards the initial ones."""
    return (1.0 - decay) / (1.0 - decay**updates)


class WeightAverage(L.Callback):
    """Keeps an exponential moving average of the chosen encoders' parameters, updated after each
    optimiser step, and swaps it in for validation: the validation metrics, the checkpoints written after it
    (``best.ckpt`` and ``last.ckpt``), the test and the verification all see the average. The
    training weights come back before the next training step; a checkpoint written in between
    keeps them in this callback's state, so ``resume=`` continues exactly.

    Args:
        epochs: the span of the average in epochs of optimiser steps (its per-step decay is
            :func:`step_decay`); 0 keeps the last step's weights.
        encoders: whose parameters are averaged (``enc1``, ``enc2``; the module's
            ``encoder_parameters``); the other encoder keeps the last step's weights.
    """

    def __init__(self, epochs: float, encoders: Sequence[str]) -> None:
        self.epochs = epochs
        self.encoders = tuple(encoders)
        self.decay = 0.0  # per optimiser step, set when training starts and the epoch's length is known
        self.updates = 0  # optimiser steps averaged: the trainer's global step at the last update
        self.swapped = False  # the module holds the average, this callback the training weights
        self._other: list[torch.Tensor] | None = None  # the copy the module does not hold
        self._params: list[torch.Tensor] = []  # the module's floating-point parameters, in a fixed order

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.decay = step_decay(self.epochs, trainer.num_training_batches / trainer.accumulate_grad_batches)
        # here: every strategy has restored a checkpoint by now
        chosen = {id(p) for enc in self.encoders for p in pl_module.encoder_parameters(enc)}
        self._params = [p for p in pl_module.parameters() if id(p) in chosen and p.dtype.is_floating_point]
        if self._other is None:
            self._other = [p.detach().clone() for p in self._params]
        else:  # restored from a checkpoint, on the CPU
            self._other = [o.to(p.device, p.dtype) for o, p in zip(self._other, self._params, strict=True)]

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.swapped:
            self._swap()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        if trainer.global_step == self.updates:  # no optimiser step (gradient accumulation)
            return
        self.updates = trainer.global_step
        assert self._other is not None
        with torch.no_grad():
            torch._foreach_lerp_(self._other, self._params, average_step_weight(self.decay, self.updates))

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self.updates and not self.swapped:
            self._swap()

    def _swap(self) -> None:
        assert self._other is not None
        with torch.no_grad():
            for p, o in zip(self._params, self._other, strict=True):
                held = p.clone()
                p.copy_(o)
                o.copy_(held)
        self.swapped = not self.swapped

    def state_dict(self) -> dict[str, Any]:
        other = None if self._other is None else [o.detach().cpu() for o in self._other]
        return {"updates": self.updates, "swapped": self.swapped, "other": other}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.updates, self.swapped, self._other = state_dict["updates"], state_dict["swapped"], state_dict["other"]
