"""Gain statistics and the monotonicity count, checked against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gainakt.verification.gain_stats import add_gain_sums, count_mastery_decreases, gain_sums, summarise_gains
from tests.conftest import make_net

C = 5


def _batch(seed: int, b: int = 4, steps: int = 7, k: int = 2):
    g = torch.Generator().manual_seed(seed)
    skills = torch.randint(0, C, (b, steps, k), generator=g)
    skills[:, :, 1][torch.rand(b, steps, generator=g) < 0.6] = -1  # mostly single-skill
    lengths = torch.randint(2, steps + 1, (b,), generator=g)
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    skills[~mask] = -1
    responses = torch.randint(0, 2, (b, steps), generator=g) * mask
    gain = torch.rand(b, steps, k, generator=g)
    return gain, skills, responses, mask


def _direct(gain, skills, responses):
    valid = (skills >= 0).numpy()
    g = gain.numpy()[valid].astype(np.float64)
    s = skills.numpy()[valid]
    r = np.broadcast_to(responses.numpy()[..., None], skills.shape)[valid]
    per_skill = np.array([g[s == c].mean() for c in np.unique(s)])
    return {
        "std": g.std(),
        "mean": g.mean(),
        "cv_skills": per_skill.std() / per_skill.mean(),
        "mean_after_correct": g[r == 1].mean(),
        "mean_after_incorrect": g[r == 0].mean(),
    }


def test_summary_matches_direct_computation():
    gain, skills, responses, _ = _batch(0)
    got = summarise_gains(gain_sums(gain, skills, responses, C))
    assert got == pytest.approx(_direct(gain, skills, responses), rel=1e-9)


def test_batches_add_up_to_the_whole_epoch():
    a, b = _batch(1), _batch(2)
    together = [torch.cat([x, y]) for x, y in zip(a[:3], b[:3])]
    summed = add_gain_sums(add_gain_sums(None, gain_sums(*a[:3], C)), gain_sums(*b[:3], C))
    assert summarise_gains(summed) == pytest.approx(_direct(*together), rel=1e-9)


def test_uniform_gains_have_zero_spread_and_missing_groups_are_nan():
    skills = torch.tensor([[[0], [1], [2], [-1]]])
    responses = torch.tensor([[1, 1, 1, 0]])
    out = summarise_gains(gain_sums(torch.full((1, 4, 1), 0.6), skills, responses, C))
    assert out["std"] == pytest.approx(0.0, abs=1e-12) and out["cv_skills"] == pytest.approx(0.0, abs=1e-12)
    assert out["mean_after_correct"] == pytest.approx(0.6)
    assert np.isnan(out["mean_after_incorrect"])  # the only incorrect step is padding


def test_count_mastery_decreases_counts_real_step_pairs_only():
    m = torch.tensor([[[0.1, 0.5], [0.2, 0.4], [0.1, 0.4], [0.0, 0.0]]])  # skill 1 falls at t=1, skill 0 at t=2
    mask = torch.tensor([[True, True, True, False]])  # the drop to 0 at t=3 is padding
    assert count_mastery_decreases(m, mask) == 2
    assert count_mastery_decreases(m, mask, tolerance=0.15) == 0


def test_real_model_mastery_never_decreases():
    torch.manual_seed(0)
    net = make_net(num_skills=C, num_students=3, d_model=16, n_heads=2, n_blocks=1, d_ff=32).eval()
    gain, skills, responses, mask = _batch(3)
    out = net(skills, responses, torch.tensor([0, 1, 2, -1]))
    m = net.mastery_all_skills(out.gain, out.gains_all, skills, torch.tensor([0, 1, 2, -1]))
    assert m.shape == (4, 7, C)
    assert count_mastery_decreases(m, mask) == 0
    assert bool((m[:, -1] > m[:, 0]).any())  # it does move: the count is not trivially 0
