"""The one in-memory form every reader produces: flat arrays over all interactions, students by offset.

Flat arrays (rather than a list of per-student lists) let windows and batches be cut with numpy
indexing, and the whole dataset be cached as a single ``.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TEST_FOLD = -1
"""Value of ``fold`` that marks a held-out test student (pykt's convention)."""

UNASSIGNED = -2
"""Value of ``fold`` a reader gives a student its source does not place in a fold; the protocol
assigns one (see :func:`gainakt.data.protocol.complete_folds`)."""


@dataclass
class InteractionData:
    """Interaction sequences of many students.

    ``skills`` holds the skill set of each interaction as a row padded with -1, so a single-skill
    dataset has ``K == 1`` and a multi-skill interaction is scored once, never duplicated.
    """

    offsets: np.ndarray  # [S + 1] int64: student i owns rows offsets[i]:offsets[i+1]
    skills: np.ndarray  # [N, K] int32, -1 = no skill in that slot
    responses: np.ndarray  # [N] int8 in {0, 1}
    fold: np.ndarray  # [S] int8: -1 test, 0..F-1 cross-validation fold
    num_skills: int
    student_ids: np.ndarray  # [S] original student ids as strings
    problems: np.ndarray | None = None  # [N] int32 problem index, if the source has problems
    num_problems: int = 0
    truth: dict[str, np.ndarray] = field(default_factory=dict)  # simulator ground truth, if any
    skill_ids: np.ndarray | None = None  # [C] original id (or name) of each skill index, if known
    problem_ids: np.ndarray | None = None  # [P] original id of each problem index, if known
    rotating_test: bool = False  # folds are a K-way partition: fold k tests, fold k+1 validates (AKT)
    adjusted: dict[str, int] = field(default_factory=dict)  # rows a reader dropped or changed, by reason

    def __post_init__(self) -> None:
        if self.skills.ndim != 2:
            raise ValueError(f"skills must be [N, K], got shape {self.skills.shape}")
        n = len(self.responses)
        if self.skills.shape[0] != n or int(self.offsets[-1]) != n:
            raise ValueError("skills, responses and offsets disagree on the number of interactions")
        if len(self.fold) != self.num_students or len(self.student_ids) != self.num_students:
            raise ValueError("fold and student_ids need one entry per student")

    @property
    def num_students(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_interactions(self) -> int:
        return len(self.responses)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def save(self, path: Path) -> None:
        """Write to ``path`` (an ``.npz``) atomically: a reader never sees a half-written cache."""
        from gainakt.run.atomic import atomic_path

        arrays: dict[str, Any] = {
            "offsets": self.offsets,
            "skills": self.skills,
            "responses": self.responses,
            "fold": self.fold,
            "student_ids": self.student_ids.astype(str),
            "meta": np.array([self.num_skills, self.num_problems, int(self.rotating_test)], dtype=np.int64),
        }
        if self.problems is not None:
            arrays["problems"] = self.problems
        if self.skill_ids is not None:
            arrays["skill_ids"] = self.skill_ids.astype(str)
        if self.problem_ids is not None:
            arrays["problem_ids"] = self.problem_ids.astype(str)
        for key, count in self.adjusted.items():
            arrays[f"adjusted__{key}"] = np.array(count, dtype=np.int64)
        for key, value in self.truth.items():
            arrays[f"truth__{key}"] = value
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> InteractionData:
        with np.load(path, allow_pickle=False) as z:
            num_skills, num_problems, rotating_test = (int(v) for v in z["meta"])
            truth = {k.removeprefix("truth__"): z[k] for k in z.files if k.startswith("truth__")}
            adjusted = {k.removeprefix("adjusted__"): int(z[k]) for k in z.files if k.startswith("adjusted__")}
            return cls(
                offsets=z["offsets"],
                skills=z["skills"],
                responses=z["responses"],
                fold=z["fold"],
                num_skills=num_skills,
                student_ids=z["student_ids"],
                problems=z["problems"] if "problems" in z.files else None,
                num_problems=num_problems,
                truth=truth,
                skill_ids=z["skill_ids"] if "skill_ids" in z.files else None,
                problem_ids=z["problem_ids"] if "problem_ids" in z.files else None,
                rotating_test=bool(rotating_test),
                adjusted=adjusted,
            )

