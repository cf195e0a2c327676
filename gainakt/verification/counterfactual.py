"""Counterfactual responses (after CMKT and RCKT): does a right answer ever count against a student?

For a sample of test windows, each step t that has a later step u of a shared skill in the window
(or a sample of those steps) is answered the other way in a copy of the window (wrong -> right, or right -> wrong), and the copy is
cut after its last such u (the models are causal, so later steps cannot matter). Each (t, u) is a
*pair*; it is a *violation* when the prediction for u moves against the flip by more than a
tolerance: down after wrong -> right, up after right -> wrong. Nothing in GainAKT's architecture
forces this rate to 0 — the flipped answer changes every later gain through attention — so it is a
real check of "a right answer never counts against you".

The copies are plain windows: they go through the same predict loop (and so the same device and
precision) as the trajectories. Everything here is vectorised over windows, steps and copies; the
only loops run over the K x K skill slots of a multi-skill question.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gainakt.data.datamodule import Batch


@dataclass(frozen=True)
class FlippedCopies:
    """Copies of some windows with one answer flipped each; arrays over copies F and steps L."""

    source: np.ndarray  # [F] index of the copied window among the windows given
    position: np.ndarray  # [F] the flipped step t
    flipped_to: np.ndarray  # [F] the new answer: 1 (wrong -> right) or 0 (right -> wrong)
    skills: np.ndarray  # [F, L, K] skill ids, -1 beyond the copy's length
    responses: np.ndarray  # [F, L] answers, flipped at ``position``
    length: np.ndarray  # [F] steps kept (the last later step of a shared skill, plus one)
    later: np.ndarray  # [F, L] the steps u > t that share a skill with t: the pairs
    student: np.ndarray  # [F] the copied window's student slot (gamma)

    def __len__(self) -> int:
        return len(self.source)

    def collate(self, indices: list[int]) -> Batch:
        """A batch of copies, padded to its longest; ``window`` is the copy's index."""
        idx = np.asarray(indices, dtype=np.int64)
        steps = int(self.length[idx].max())
        return {
            "skills": torch.from_numpy(self.skills[idx, :steps].astype(np.int64)),
            "responses": torch.from_numpy(self.responses[idx, :steps].astype(np.int64)),
            "mask": torch.from_numpy(np.arange(steps)[None, :] < self.length[idx, None]),
            "student": torch.from_numpy(self.student[idx]),
            "window": torch.from_numpy(idx),
        }


def sample_windows(num_windows: int, size: int | None, seed: int) -> np.ndarray:
    """``size`` window indices drawn without replacement (all of them when ``size`` is None), sorted."""
    if size is None or size >= num_windows:
        return np.arange(num_windows)
    return np.sort(np.random.default_rng(seed).choice(num_windows, size, replace=False))


def flipped_copies(batch: Batch, max_flips: int | None = None, seed: int = 0) -> FlippedCopies:
    """The one-answer flips of the windows of ``batch`` (``skills`` [B, L, K], ``responses``,
    ``mask``, ``student``) that have a later step of a shared skill: all of them, or ``max_flips``
    drawn without replacement (seeded), which bounds the cost."""
    skills = batch["skills"].numpy()
    responses = batch["responses"].numpy()
    real = batch["mask"].numpy()
    steps = skills.shape[1]
    valid = skills >= 0
    shared = np.zeros((skills.shape[0], steps, steps), dtype=bool)  # [B, t, u]
    for a in range(skills.shape[2]):
        for b in range(skills.shape[2]):
            shared |= (skills[:, :, None, a] == skills[:, None, :, b]) & valid[:, :, None, a]
    later = shared & np.triu(np.ones((steps, steps), dtype=bool), 1) & real[:, None, :] & real[:, :, None]
    source, position = np.nonzero(later.any(-1))
    if max_flips is not None and len(source) > max_flips:
        chosen = np.sort(np.random.default_rng(seed).choice(len(source), max_flips, replace=False))
        source, position = source[chosen], position[chosen]
    pairs = later[source, position]  # [F, L]
    length = steps - np.argmax(pairs[:, ::-1], axis=1)
    keep = int(length.max()) if len(length) else 1
    inside = np.arange(keep)[None, :] < length[:, None]
    copy_responses = responses[source, :keep].copy()
    flipped_to = 1 - copy_responses[np.arange(len(source)), position]
    copy_responses[np.arange(len(source)), position] = flipped_to
    return FlippedCopies(
        source=source, position=position, flipped_to=flipped_to,
        skills=np.where(inside[..., None], skills[source, :keep], -1).astype(np.int32),
        responses=(copy_responses * inside).astype(np.int8), length=length, later=pairs[:, :keep] & inside,
        student=batch["student"].numpy()[source],
    )  # fmt: skip


def grid(rows: dict[str, np.ndarray], column: str, windows: np.ndarray, steps: int) -> np.ndarray:
    """[len(windows), steps] values of ``column`` at each (window, position) of predict rows
    (:func:`gainakt.verification.trajectories.scored_rows`); NaN where no row. ``windows`` is sorted."""
    out = np.full((len(windows), steps), np.nan)
    if not rows or not len(windows):
        return out
    where = np.minimum(np.searchsorted(windows, rows["window"]), len(windows) - 1)
    hit = (windows[where] == rows["window"]) & (rows["position"] < steps)
    out[where[hit], rows["position"][hit]] = rows[column][hit]
    return out


def violations(copies: FlippedCopies, original: np.ndarray, flipped: np.ndarray, tolerance: float) -> dict[str, float]:
    """How often the prediction for a later step of the flipped skill moved against the flip.

    Args:
        original: [B, L] probability of a correct answer at each step of the copied windows
            (predicted before the step; step 0 is never used).
        flipped: [F, L'] the same for each copy (L' <= L).
        tolerance: a move smaller than this is rounding, not a violation.
    Returns ``rate`` (violations / pairs), ``pairs``, ``flips``, ``windows`` (holding a flip) and
    the rate of each direction (``rate_wrong_to_right``, ``rate_right_to_wrong``).
    """
    steps = copies.later.shape[1]
    shift = flipped[:, :steps] - original[copies.source, :steps]
    up = copies.flipped_to[:, None] == 1
    against = np.where(up, shift < -tolerance, shift > tolerance) & copies.later
    pairs = copies.later.sum(1)
    out = {"pairs": float(pairs.sum()), "flips": float(len(copies)), "windows": float(len(np.unique(copies.source)))}
    for name, chosen in (("rate", np.ones(len(copies), bool)), ("rate_wrong_to_right", up[:, 0]),
                         ("rate_right_to_wrong", ~up[:, 0])):  # fmt: skip
        total = pairs[chosen].sum()
        out[name] = float(against[chosen].sum() / total) if total else float("nan")
    return out
