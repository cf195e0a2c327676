"""Synthetic students with known ground truth: the embedded default dataset.

Each skill s has a learning rate beta_s and a difficulty offset_s, each student i a learning speed
gamma_i. Practice accumulates effective practice EP (more after a correct answer than after an
incorrect one), true mastery follows m = sigmoid(beta_s * gamma_i * EP - offset_s), and the answer
is correct with probability guess + (1 - guess - slip) * m. Practice is skill-builder style: a
student stays on a skill until three correct answers in a row or ``max_run`` attempts.

The generator steps through time for all students at once, so a dataset of ~100k interactions
takes well under a second. The true parameters are kept so a run can report recovery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gainakt.data.interactions import InteractionData
from gainakt.data.protocol import assign_folds


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the simulator; every field is a config key under ``data.synthetic``."""

    num_students: int
    num_skills: int
    min_length: int
    max_length: int
    beta_median: float
    beta_spread: float
    offset_low: float
    offset_high: float
    gamma_spread: float
    gain_correct: float
    gain_incorrect: float
    guess: float
    slip: float
    streak_to_master: int
    max_run: int
    seed: int


def simulate(cfg: SyntheticConfig, test_frac: float = 0.2, num_folds: int = 5) -> InteractionData:
    """Generate a dataset and its ground truth (``truth``: beta, offset, gamma, mastery_before)."""
    rng = np.random.default_rng(cfg.seed)
    S, C = cfg.num_students, cfg.num_skills
    beta = cfg.beta_median * np.exp(cfg.beta_spread * rng.standard_normal(C))
    offset = rng.uniform(cfg.offset_low, cfg.offset_high, C)
    gamma = np.exp(cfg.gamma_spread * rng.standard_normal(S))
    popularity = rng.dirichlet(np.full(C, 2.0))
    lengths = rng.integers(cfg.min_length, cfg.max_length + 1, S)
    T = int(lengths.max())

    effective = np.zeros((S, C))
    skill = rng.choice(C, S, p=popularity)
    run = np.zeros(S, dtype=np.int64)
    streak = np.zeros(S, dtype=np.int64)
    skills = np.zeros((S, T), dtype=np.int32)
    responses = np.zeros((S, T), dtype=np.int8)
    mastery = np.zeros((S, T))
    rows = np.arange(S)
    for t in range(T):
        m = _sigmoid(beta[skill] * gamma * effective[rows, skill] - offset[skill])
        correct = rng.random(S) < cfg.guess + (1.0 - cfg.guess - cfg.slip) * m
        skills[:, t], responses[:, t], mastery[:, t] = skill, correct, m
        effective[rows, skill] += np.where(correct, cfg.gain_correct, cfg.gain_incorrect)
        streak = np.where(correct, streak + 1, 0)
        run += 1
        move_on = (streak >= cfg.streak_to_master) | (run >= cfg.max_run)
        skill = np.where(move_on, rng.choice(C, S, p=popularity), skill)
        run = np.where(move_on, 0, run)
        streak = np.where(move_on, 0, streak)

    real = np.arange(T)[None, :] < lengths[:, None]
    return InteractionData(
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        skills=skills[real][:, None],
        responses=responses[real],
        fold=assign_folds(S, test_frac, num_folds, seed=cfg.seed),
        num_skills=C,
        student_ids=np.array([f"sim{i}" for i in range(S)]),
        truth={
            "beta": beta,
            "offset": offset,
            "gamma": gamma,
            "mastery_before": mastery[real],
        },
    )
