"""Bootstrap intervals that resample students, for the AUC and correlation checks.

A student's answers are not independent of each other, so the resampling unit is the student: each
bootstrap sample draws as many students as there are, with replacement, and a row weighs as often
as its student was drawn. Every statistic is computed for all samples at once from weighted sums
(no loop over samples, students or rows; the AUC goes through the samples in memory-sized chunks).
"""

from __future__ import annotations

import numpy as np

CHUNK_CELLS = 4_000_000  # sample x row weights held at once by the AUC (32 MB of float64)


class StudentBootstrap:
    """Resampled student weights shared by every interval of one set of rows.

    Args:
        students: [N] the student of each row (any hashable ids).
        samples: number of bootstrap samples.
        level: coverage of the interval (0.95: the 2.5 and 97.5 percentiles).
        seed: seed of the resampling, so a report is reproducible.
    """

    def __init__(self, students: np.ndarray, samples: int, level: float, seed: int) -> None:
        _, self.codes = np.unique(np.asarray(students), return_inverse=True)
        self.num_students = int(self.codes.max()) + 1 if len(self.codes) else 0
        self.level = level
        rng = np.random.default_rng(seed)
        uniform = np.full(self.num_students, 1.0 / max(self.num_students, 1))
        self.counts = rng.multinomial(self.num_students, uniform, size=samples).astype(np.float64)  # [B, S]

    def interval(self, values: np.ndarray) -> list[float] | None:
        """The central ``level`` interval of the bootstrap values (None when most are undefined)."""
        finite = values[np.isfinite(values)]
        if len(finite) < max(2, len(values) // 2):
            return None
        tail = (1.0 - self.level) / 2.0 * 100.0
        low, high = np.percentile(finite, [tail, 100.0 - tail])
        return [float(low), float(high)]

    def pearson(self, x: np.ndarray, y: np.ndarray) -> list[float] | None:
        """Interval of Pearson(x, y) over the rows."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        columns = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
        per_student = np.stack([np.bincount(self.codes, c, self.num_students) for c in columns.T], axis=1)
        return self.interval(_pearson(self.counts @ per_student))

    def student_pearson(self, students: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[float] | None:
        """Interval of Pearson(x, y) across students: one point per student, ``students`` are row
        positions of one row of each (their codes pick the resampled weights)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        points = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
        return self.interval(_pearson(self.counts[:, self.codes[students]] @ points))

    def auc(self, prob: np.ndarray, label: np.ndarray) -> list[float] | None:
        """Interval of the AUC of ``prob`` for the 0/1 ``label`` (ties count half)."""
        order = np.argsort(np.asarray(prob), kind="stable")
        score, correct = np.asarray(prob)[order], np.asarray(label)[order].astype(np.float64)
        codes = self.codes[order]
        ties = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])  # first row of each group of equal scores
        values = []
        step = max(1, CHUNK_CELLS // max(len(score), 1))
        for begin in range(0, len(self.counts), step):  # chunks of samples, each vectorised over rows
            weight = self.counts[begin : begin + step][:, codes]
            positive = np.add.reduceat(weight * correct, ties, axis=1)
            negative = np.add.reduceat(weight * (1.0 - correct), ties, axis=1)
            below = np.cumsum(negative, axis=1) - negative
            pairs = positive.sum(1) * negative.sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                values.append((positive * (below + 0.5 * negative)).sum(1) / pairs)
        return self.interval(np.concatenate(values)) if values else None


def _pearson(sums: np.ndarray) -> np.ndarray:
    """Weighted Pearson per sample from [B, 6] sums of (1, x, y, x^2, y^2, xy); NaN where undefined."""
    n, sx, sy, sxx, syy, sxy = sums.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        var_x, var_y = sxx - sx * sx / n, syy - sy * sy / n
        spread = (var_x > 1e-12 * sxx) & (var_y > 1e-12 * syy)  # a constant input leaves only rounding
        return np.where(spread, cov / np.sqrt(var_x * var_y), np.nan)
