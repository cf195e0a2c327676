"""Synthetic students with known ground truth: the embedded default dataset.

Two generative processes (``data.synthetic.process``) share the practice policy and the per-skill
truth (a learning rate beta_s and a difficulty offset_s). Practice accumulates effective practice
EP_s (``gain_correct`` after a correct answer, ``gain_incorrect`` after an incorrect one), and is
skill-builder style: a student stays on a skill until ``streak_to_master`` correct answers in a row
or ``max_run`` attempts.

- ``mastery_curve`` (the default, the shape GainAKT's encoder 2 was built after): each student has
  a learning speed gamma_i, true mastery is m = sigmoid(beta_s * gamma_i * EP_s - offset_s) and the
  answer is correct with probability guess + (1 - guess - slip) * m.
- ``afm`` (additive factors / PFA style, a process the model was not shaped after): each student
  has an ability a_i that shifts the logit, not the speed, and there is no guess or slip: the answer
  is correct with probability m = sigmoid(a_i - offset_s + beta_s * EP_s), which is also the
  "mastery" recovery is measured against.

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


PROCESSES = ("mastery_curve", "afm")


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the simulator; every field is a config key under ``data.synthetic``."""

    process: str
    num_students: int
    num_skills: int
    min_length: int
    max_length: int
    beta_median: float
    beta_spread: float
    offset_low: float
    offset_high: float
    gamma_spread: float
    ability_spread: float
    gain_correct: float
    gain_incorrect: float
    guess: float
    slip: float
    streak_to_master: int
    max_run: int
    seed: int


def simulate(cfg: SyntheticConfig, test_frac: float = 0.2, num_folds: int = 5) -> InteractionData:
    """Generate a dataset and its ground truth.

    ``truth`` holds beta and offset per skill, the student parameter (``gamma`` or ``ability``),
    and per interaction ``mastery_before`` (the process's mastery before the answer) and ``prob``
    (its probability of a correct answer: what an oracle would predict).
    """
    if cfg.process not in PROCESSES:
        raise ValueError(f"process={cfg.process!r}; expected one of {', '.join(PROCESSES)}")
    rng = np.random.default_rng(cfg.seed)
    S, C = cfg.num_students, cfg.num_skills
    beta = cfg.beta_median * np.exp(cfg.beta_spread * rng.standard_normal(C))
    offset = rng.uniform(cfg.offset_low, cfg.offset_high, C)
    if cfg.process == "mastery_curve":
        student = {"gamma": np.exp(cfg.gamma_spread * rng.standard_normal(S))}
        gamma, shift, guess, slip = student["gamma"], np.zeros(S), cfg.guess, cfg.slip
    else:
        student = {"ability": cfg.ability_spread * rng.standard_normal(S)}
        gamma, shift, guess, slip = np.ones(S), student["ability"], 0.0, 0.0
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
    prob = np.zeros((S, T))
    rows = np.arange(S)
    for t in range(T):  # the simulator's clock (all students at once), not the model's training path
        m = _sigmoid(beta[skill] * gamma * effective[rows, skill] + shift - offset[skill])
        p = guess + (1.0 - guess - slip) * m
        correct = rng.random(S) < p
        skills[:, t], responses[:, t], mastery[:, t], prob[:, t] = skill, correct, m, p
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
        truth={"beta": beta, "offset": offset, **student, "mastery_before": mastery[real], "prob": prob[real]},
    )
