"""Bootstrap intervals that resample students: exact weighting, and coverage on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gainakt.verification.bootstrap import StudentBootstrap
from gainakt.verification.checks import auc, pearson


def _rows(rng: np.random.Generator, students: int = 12, per_student: int = 6):
    student = np.repeat(np.arange(students), per_student)
    label = rng.random(len(student)) < 0.5
    score = np.round(label + rng.standard_normal(len(student)), 1)  # rounded: with ties
    return student, label.astype(int), score


def test_a_resample_weighs_each_row_as_often_as_its_student_was_drawn():
    rng = np.random.default_rng(0)
    student, label, score = _rows(rng)
    boot = StudentBootstrap(student, samples=2, level=0.95, seed=0)
    drawn = boot.counts[0].astype(int)
    repeated = np.repeat(np.arange(len(student)), drawn[boot.codes])  # the resample, written out row by row
    boot.counts = np.stack([boot.counts[0], boot.counts[0]])  # both samples equal: the interval is the value
    low, high = boot.auc(score, label)
    assert low == pytest.approx(auc(score[repeated], label[repeated])) and high == pytest.approx(low)
    low, high = boot.pearson(score, label)
    assert low == pytest.approx(pearson(score[repeated], label[repeated]))
    first = np.unique(student, return_index=True)[1]
    means = np.bincount(student, score) / np.bincount(student)
    low, _ = boot.student_pearson(first, means, np.bincount(student, label) / np.bincount(student))
    kept = np.repeat(np.arange(len(first)), drawn)
    assert low == pytest.approx(pearson(means[kept], (np.bincount(student, label) / np.bincount(student))[kept]))


def test_undefined_resamples_are_left_out_and_too_many_give_no_interval():
    student = np.array([0, 0, 1, 1])
    boot = StudentBootstrap(student, samples=200, level=0.95, seed=1)
    low, high = boot.auc(np.array([0.2, 0.8, 0.3, 0.9]), np.array([0, 1, 0, 1]))
    assert low == high == 1.0  # every resample with both classes ranks them perfectly
    assert StudentBootstrap(np.zeros(3), 50, 0.95, 0).pearson(np.array([1.0, 2, 3]), np.array([1.0, 1, 1])) is None


def test_intervals_cover_the_true_value_on_simulated_students():
    """Students share a random effect, so rows are not independent; the intervals must still cover
    the population value in about 95 % of simulated data sets."""
    rng = np.random.default_rng(7)
    rho, shift, replications = 0.5, 1.0, 120
    true_auc = 0.5 * (1.0 + math.erf(shift / 2.0))  # Phi(shift / sqrt 2): a score difference is N(shift, 2)
    covered = {"pearson": 0, "auc": 0}
    for _ in range(replications):
        students, per_student = 60, 15
        student = np.repeat(np.arange(students), per_student)
        cov = 0.5 * np.array([[1.0, rho], [rho, 1.0]])  # between and within students: total correlation rho
        xy = rng.multivariate_normal([0, 0], cov, students)[student] + rng.multivariate_normal([0, 0], cov, len(student))
        label = rng.random(len(student)) < 0.5
        score = shift * label + np.sqrt(0.5) * (rng.standard_normal(students)[student] + rng.standard_normal(len(student)))
        boot = StudentBootstrap(student, samples=300, level=0.95, seed=int(rng.integers(1 << 30)))
        low, high = boot.pearson(xy[:, 0], xy[:, 1])
        covered["pearson"] += low <= rho <= high
        low, high = boot.auc(score, label)
        covered["auc"] += low <= true_auc <= high
    assert covered["pearson"] / replications >= 0.88, covered
    assert covered["auc"] / replications >= 0.88, covered
