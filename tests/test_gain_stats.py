"""Gain statistics and the monotonicity count, checked against direct numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gainakt.verification.gain_stats import (
    NotComputable, add_gain_sums, gain_ratio, gain_std, gain_sums, mastery_decreases, skill_gain_cv, summarise_gains,
)  # fmt: skip
from gainakt.verification.trajectories import dense_rows, scored_rows
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
    # window 0 skill 3: 0.4 after step 2, 0.35 before step 4 -> one fall; skill 4 and window 1 may start anywhere
    assert int(mastery_decreases(window, skills, step, before, after, 1e-6)) == 2
    assert int(mastery_decreases(window, skills, step, before, after, 0.06)) == 0
    shuffled = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    rows = [x[shuffled] for x in (window, skills, step, before, after)]
    assert int(mastery_decreases(*rows, 1e-6)) == 2
    # a skill set is compared whole: {3, 4} is not {3}, and its order within a row is the same set as stored
    pair = torch.tensor([[3, 4], [3, -1], [3, 4]])
    assert int(mastery_decreases(torch.zeros(3), pair, torch.arange(3), torch.tensor([0.0, 0.0, 0.1]),
                                 torch.tensor([0.5, 0.9, 0.6]), 0.0)) == 1  # fmt: skip


def test_rows_of_weight_zero_are_neither_counted_nor_compared():
    """Padding between two rows of one window and skill set must not hide their fall, and a
    padding row's own readings (anything) never count."""
    window = torch.tensor([0, 0, 0, 0])
    skills = torch.tensor([[3], [3], [3], [-1]])
    step = torch.tensor([1, 2, 3, 4])
    before = torch.tensor([0.1, 0.9, 0.3, 0.9])
    after = torch.tensor([0.5, 0.1, 0.4, 0.0])  # row 1 (padding) falls within itself and below row 0
    weight = torch.tensor([1.0, 0.0, 1.0, 0.0])
    # counted rows 0 and 2: 0.5 after row 0, 0.3 before row 2 -> one fall
    assert int(mastery_decreases(window, skills, step, before, after, 0.0, weight)) == 1
    # all counted: rows 1 and 3 fall within themselves, and row 1 sits between rows 0 and 2
    assert int(mastery_decreases(window, skills, step, before, after, 0.0)) == 2
    sums = gain_sums(torch.tensor([0.2, float("nan"), 0.4, 7.0]), skills, torch.tensor([1, 5, 0, 1]), C, weight)
    selected = gain_sums(torch.tensor([0.2, 0.4]), skills[[0, 2]], torch.tensor([1, 0]), C)
    assert all(torch.equal(sums[k], selected[k]) for k in selected)


def _real_batch(accumulate: str = "practiced"):
    torch.manual_seed(0)
    net = make_net(num_skills=C, num_students=3, d_model=16, n_heads=2, n_blocks=1, d_ff=32, accumulate=accumulate)
    net.eval()
    g = torch.Generator().manual_seed(3)
    skills = torch.randint(0, C, (4, 12, 2), generator=g)
    skills[..., 1][torch.rand(4, 12, generator=g) < 0.6] = -1  # some two-skill questions
    skills[..., 1][skills[..., 1] == skills[..., 0]] = -1
    mask = torch.arange(12)[None, :] < torch.tensor([[12], [9], [5], [12]])
    skills[~mask] = -1
    batch = {"skills": skills, "responses": torch.randint(0, 2, (4, 12), generator=g) * mask, "mask": mask,
             "student": torch.tensor([0, 1, 2, -1]), "window": torch.tensor([4, 0, 2, 7])}  # fmt: skip
    return net, batch, net(batch["skills"], batch["responses"], batch["student"], need_all_gains=accumulate == "all")


@pytest.mark.parametrize("accumulate", ["practiced", "all"])
def test_dense_weighted_rows_give_the_statistics_of_the_scored_rows(accumulate):
    """The monitors' path (every position, padding weighted 0) and the checks' path (the scored rows
    selected) give the same numbers on a real batch."""
    net, batch, out = _real_batch(accumulate)
    dense, rows = dense_rows(net, batch, out), scored_rows(net, batch, out)
    assert len(rows["gain"]) == int(batch["mask"][:, 1:].sum()) < len(dense["gain"])
    for name, value in rows.items():
        assert torch.equal(dense[name][dense["weight"] > 0], value), name
    weighted = gain_sums(dense["gain"], dense["skills"], dense["response"], C, dense["weight"])
    selected = gain_sums(rows["gain"], rows["skills"], rows["response"], C)
    for key in selected:
        torch.testing.assert_close(weighted[key], selected[key], rtol=1e-12, atol=1e-12)
    assert summarise_gains(weighted, 1) == pytest.approx(summarise_gains(selected, 1), rel=1e-12)
    for tolerance in (0.0, -0.01):  # a negative tolerance counts every flat step: the count is not trivially 0
        on_rows = mastery_decreases(rows["window"], rows["skills"], rows["position"], rows["mastery_before"],
                                    rows["mastery_after"], tolerance)  # fmt: skip
        on_dense = mastery_decreases(dense["window"], dense["skills"], dense["position"], dense["mastery_before"],
                                     dense["mastery_after"], tolerance, dense["weight"])  # fmt: skip
        assert int(on_dense) == int(on_rows)
    assert int(on_rows) > 0


def test_real_model_mastery_never_decreases():
    net, batch, out = _real_batch()
    rows = scored_rows(net, batch, out)
    count = mastery_decreases(rows["window"], rows["skills"], rows["position"], rows["mastery_before"],
                              rows["mastery_after"], 0.0)  # fmt: skip
    assert int(count) == 0
    assert bool((rows["mastery_after"] > rows["mastery_before"]).any())  # it does move: the count is not trivially 0
