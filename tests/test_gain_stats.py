"""Gain statistics and the monotonicity count, checked against direct numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gainakt.verification.gain_stats import (
    NotComputable, add_gain_sums, gain_ratio, gain_std, gain_sums, mastery_decreases, skill_gain_cv, summarise_gains,
    window_skill_groups,
)  # fmt: skip
from gainakt.verification.trajectories import scored_rows
from tests.conftest import make_net

C = 5


def _rows(seed: int, n: int = 40, k: int = 2):
    g = torch.Generator().manual_seed(seed)
    skills = torch.randint(0, C, (n, k), generator=g)
    skills[:, 1] = (skills[:, 0] + torch.randint(1, C, (n,), generator=g)) % C  # a set never repeats a skill
    skills[:, 1][torch.rand(n, generator=g) < 0.6] = -1  # mostly single-skill
    responses = torch.randint(0, 2, (n,), generator=g)
    gain = torch.rand(n, generator=g)
    return gain, skills, responses


def _direct(gain, skills, responses, min_rows=1):
    g, s, r = gain.numpy().astype(np.float64), skills.numpy(), responses.numpy()
    per_skill = [g[(s == c).any(1)] for c in range(C)]  # a two-skill row counts for both, with its gain
    means = np.array([p.mean() for p in per_skill if len(p) >= min_rows])
    return {
        "std": g.std(),
        "mean": g.mean(),
        "cv_skills": means.std() / means.mean(),
        "ratio_correct_incorrect": g[r == 1].mean() / g[r == 0].mean(),
        "mean_after_correct": g[r == 1].mean(),
        "mean_after_incorrect": g[r == 0].mean(),
    }


def test_summary_matches_direct_computation():
    rows = _rows(0)
    assert summarise_gains(gain_sums(*rows, C), 1) == pytest.approx(_direct(*rows), rel=1e-9)
    assert summarise_gains(gain_sums(*rows, C), 9)["cv_skills"] == pytest.approx(_direct(*rows, 9)["cv_skills"])


def test_batches_add_up_to_the_whole_epoch():
    a, b = _rows(1), _rows(2)
    together = [torch.cat([x, y]) for x, y in zip(a, b)]
    summed = add_gain_sums(add_gain_sums(None, gain_sums(*a, C)), gain_sums(*b, C))
    assert summarise_gains(summed, 1) == pytest.approx(_direct(*together), rel=1e-9)


def test_uniform_gains_have_zero_spread_and_missing_groups_are_reasons():
    skills = torch.tensor([[0], [1], [2]])
    sums = gain_sums(torch.full((3,), 0.6), skills, torch.tensor([1, 1, 1]), C)
    out = summarise_gains(sums, 1)
    assert out["std"] == pytest.approx(0.0, abs=1e-12) and out["cv_skills"] == pytest.approx(0.0, abs=1e-12)
    assert out["mean_after_correct"] == pytest.approx(0.6) and math.isnan(out["mean_after_incorrect"])
    with pytest.raises(NotComputable, match="no incorrect answers"):
        gain_ratio(sums)
    with pytest.raises(NotComputable, match="2 skills with >= 2 rows"):
        skill_gain_cv(sums, 2)
    with pytest.raises(NotComputable, match="2 rows"):
        gain_std(gain_sums(torch.tensor([0.5]), torch.tensor([[0]]), torch.tensor([1]), C))


def test_mastery_decreases_within_rows_and_between_rows_of_a_window_and_skill_set():
    window = torch.tensor([0, 0, 0, 0, 1, 1])
    skills = torch.tensor([[3], [3], [4], [3], [3], [3]])
    step = torch.tensor([1, 2, 3, 4, 1, 2])
    before = torch.tensor([0.1, 0.3, 0.9, 0.35, 0.0, 0.2])
    after = torch.tensor([0.3, 0.4, 0.95, 0.5, 0.2, 0.15])  # window 1 step 2 falls within itself
    group = window_skill_groups(window, skills)
    assert group[0] == group[1] == group[3] and group[2] != group[0] and group[4] != group[0]
    # window 0 skill 3: 0.4 after step 2, 0.35 before step 4 -> one fall; skill 4 and window 1 may start anywhere
    assert int(mastery_decreases(group, step, before, after, 1e-6)) == 2
    assert int(mastery_decreases(group, step, before, after, 0.06)) == 0
    shuffled = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    assert int(mastery_decreases(group[shuffled], step[shuffled], before[shuffled], after[shuffled], 1e-6)) == 2


def test_real_model_mastery_never_decreases():
    torch.manual_seed(0)
    net = make_net(num_skills=C, num_students=3, d_model=16, n_heads=2, n_blocks=1, d_ff=32).eval()
    g = torch.Generator().manual_seed(3)
    skills = torch.randint(0, C, (4, 12, 1), generator=g)
    mask = torch.arange(12)[None, :] < torch.tensor([[12], [9], [5], [12]])
    skills[~mask] = -1
    batch = {"skills": skills, "responses": torch.randint(0, 2, (4, 12), generator=g) * mask, "mask": mask,
             "student": torch.tensor([0, 1, 2, -1]), "window": torch.arange(4)}  # fmt: skip
    rows = scored_rows(net, batch, net(batch["skills"], batch["responses"], batch["student"]))
    group = window_skill_groups(rows["window"], rows["skills"])
    assert int(mastery_decreases(group, rows["position"], rows["mastery_before"], rows["mastery_after"], 0.0)) == 0
    assert bool((rows["mastery_after"] > rows["mastery_before"]).any())  # it does move: the count is not trivially 0
