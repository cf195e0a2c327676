"""The trivial baselines encoder 2 must beat: the majority class and a per-skill correct-rate table.

The table is fitted on the training split's scored rows (each window's steps but its first) and
predicts, for a question, the training correct rate of its skills, combined over a multi-skill
question as encoder 2 combines mastery (``model.aggregate``). It knows which skill is asked but
nothing about the student, so an interpretable model that does not beat it has learned nothing a
difficulty table does not already say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gainakt.data.interactions import InteractionData
from gainakt.data.protocol import Windows
from gainakt.model.learning_curve import aggregate_skills


@dataclass(frozen=True)
class SkillRateTable:
    """Correct rate per skill on the training rows; a skill never seen there gets the overall rate."""

    rates: np.ndarray  # [C]
    skill_rows: np.ndarray  # [C] training rows per skill (a multi-skill row counts for each of its skills)
    overall: float
    num_rows: int  # training rows it was fitted on

    def predict(self, skills: np.ndarray, aggregate: str) -> np.ndarray:
        """[N] probability of a correct answer for [N, K] skill ids (-1 = empty slot)."""
        valid = skills >= 0
        per_skill = self.rates[np.where(valid, skills, 0)]
        combined = aggregate_skills(torch.from_numpy(per_skill), torch.from_numpy(valid), aggregate)
        return combined.numpy()


def fit_skill_rates(skills: np.ndarray, responses: np.ndarray, num_skills: int) -> SkillRateTable:
    """The table from [N, K] skill ids and [N] 0/1 responses of the training rows."""
    valid = skills >= 0
    ids = skills[valid]
    answered = np.broadcast_to(responses[:, None], skills.shape)[valid].astype(np.float64)
    rows = np.bincount(ids, minlength=num_skills)
    correct = np.bincount(ids, weights=answered, minlength=num_skills)
    overall = float(responses.mean()) if len(responses) else 0.5
    rates = np.where(rows > 0, correct / np.maximum(rows, 1), overall)
    return SkillRateTable(rates=rates, skill_rows=rows, overall=overall, num_rows=len(responses))


def fit_on_windows(data: InteractionData, windows: Windows) -> SkillRateTable:
    """The table from the scored rows of one split's windows (the training split's, in use)."""
    rows = windows.scored()
    return fit_skill_rates(data.skills[rows], data.responses[rows], data.num_skills)


def majority_class(response: np.ndarray) -> tuple[int, float]:
    """The more frequent answer of ``response`` and the accuracy of always predicting it."""
    share = float(np.mean(response)) if len(response) else 0.5
    return (1, share) if share >= 0.5 else (0, 1.0 - share)
