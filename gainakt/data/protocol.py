"""The pykt evaluation protocol: student-level splits and windows of fixed maximum length.

20 % of students are held out as test (fold -1), the rest split into folds; fold k is validation
and the others train. A source's own split wins: readers mark the students their source places
(test file, pykt folds) and :func:`complete_folds` draws only what the source leaves open. A source
that ships a K-way partition without a test split (AKT's five files) rotates: fold k is test and
fold k+1 (mod K) validation, as in AKT's own protocol. Sequences are cut into non-overlapping
windows of ``window`` interactions and windows shorter than ``min_length`` are dropped, so numbers compare with pykt's published ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gainakt.data.interactions import TEST_FOLD, UNASSIGNED, InteractionData
from gainakt.errors import ConfigError

SPLITS = ("train", "val", "test")


def assign_folds(num_students: int, test_frac: float = 0.2, num_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Give each student a fold: a shuffled ``test_frac`` become test (-1), the rest 0..num_folds-1."""
    order = np.random.default_rng(seed).permutation(num_students)
    num_test = int(round(test_frac * num_students))
    fold = np.empty(num_students, dtype=np.int8)
    fold[order[:num_test]] = TEST_FOLD
    fold[order[num_test:]] = np.arange(num_students - num_test) % num_folds
    return fold


def complete_folds(fold: np.ndarray, seed: int, test_frac: float = 0.2, num_folds: int = 5) -> np.ndarray:
    """Fill in the ``UNASSIGNED`` students of a reader's ``fold`` by student, with a fixed seed.

    With no test students at all (a source without a split) the protocol draws test and folds; with
    a test split (a train/test pair) it only draws folds over the remaining students.
    """
    fold = np.asarray(fold, dtype=np.int8).copy()
    open_ = np.flatnonzero(fold == UNASSIGNED)
    if len(open_) == 0:
        return fold
    has_test = bool((fold == TEST_FOLD).any())
    fold[open_] = assign_folds(len(open_), 0.0 if has_test else test_frac, num_folds, seed)
    return fold


@dataclass(frozen=True)
class Windows:
    """Windows of one split: student index, first row and length of each window."""

    student: np.ndarray  # [W] int64
    start: np.ndarray  # [W] int64, absolute row in the flat interaction arrays
    length: np.ndarray  # [W] int64

    def __len__(self) -> int:
        return len(self.start)

    @property
    def num_interactions(self) -> int:
        return int(self.length.sum())

    def scored(self) -> np.ndarray:
        """Flat row of every scored interaction: each window's steps but its first (what the
        models predict and the metrics and checks are computed on), window by window."""
        count = self.length - 1
        first = np.repeat(self.start + 1 - (np.cumsum(count) - count), count)
        return first + np.arange(int(count.sum()))


def split_students(data: InteractionData, fold: int) -> dict[str, np.ndarray]:
    """Student indices per split for validation fold ``fold`` (by student, never by row)."""
    folds = sorted(int(f) for f in np.unique(data.fold) if f != TEST_FOLD)
    if fold not in folds:
        raise ConfigError(f"data.fold={fold} but this dataset has validation folds {folds}")
    if data.rotating_test:
        val = folds[(folds.index(fold) + 1) % len(folds)]
        return {
            "train": np.flatnonzero((data.fold != fold) & (data.fold != val)),
            "val": np.flatnonzero(data.fold == val),
            "test": np.flatnonzero(data.fold == fold),
        }
    return {
        "train": np.flatnonzero((data.fold != TEST_FOLD) & (data.fold != fold)),
        "val": np.flatnonzero(data.fold == fold),
        "test": np.flatnonzero(data.fold == TEST_FOLD),
    }


def make_windows(data: InteractionData, students: np.ndarray, window: int, min_length: int) -> Windows:
    """Cut each student's sequence into consecutive windows of at most ``window`` rows."""
    lengths = data.lengths[students]
    per_student = -(-lengths // window)  # ceil division
    student = np.repeat(students, per_student)
    first = np.cumsum(per_student) - per_student
    chunk = np.arange(int(per_student.sum())) - np.repeat(first, per_student)
    start = data.offsets[student] + chunk * window
    length = np.minimum(window, data.offsets[student + 1] - start)
    keep = length >= min_length
    return Windows(student=student[keep].astype(np.int64), start=start[keep], length=length[keep])
