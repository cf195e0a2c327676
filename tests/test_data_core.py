"""Reader, protocol and batches of the core data path."""

from __future__ import annotations

import numpy as np
import pytest
import torch


from gainakt.data.datamodule import EpochOrder, Padding, WindowBatchSampler, mean_batch_budget, token_budget_cuts
from gainakt.data.protocol import make_windows, split_students
from gainakt.data.formats.pykt import read
from gainakt.errors import DataError

from .conftest import FIXTURES, default_config, make_datamodule


def test_pykt_reader_counts_small_fixture():
    data = read(FIXTURES / "pykt_small", {})
    assert data.num_students == 7
    assert data.num_interactions == 4 + 2 + 5 + 3 + 7 + 3 + 3  # the -1 padding is dropped
    assert data.num_skills == 6
    assert data.skills.shape[1] == 2  # "4_5" is one interaction with two skills
    assert data.skills[data.offsets[3]].tolist() == [4, 5]
    assert sorted(np.unique(data.fold).tolist()) == [-1, 0, 1, 2]
    assert int(data.responses.sum()) == 3 + 1 + 2 + 2 + 6 + 2 + 2


def test_pykt_reader_names_file_and_line(tmp_path):
    (tmp_path / "train_valid.csv").write_text('fold,uid,concepts,responses\n0,1,"1,2","0,2"\n')
    (tmp_path / "test.csv").write_text('fold,uid,concepts,responses\n-1,2,"1","1"\n')
    with pytest.raises(DataError, match=r"train_valid.csv, line 2: response 2; expected 0 or 1"):
        read(tmp_path, {})
    (tmp_path / "train_valid.csv").write_text('fold,uid,concepts,responses\n0,1,"1,2,3","0,1"\n')
    with pytest.raises(DataError, match=r"line 2: 2 responses but the concepts list says 3"):
        read(tmp_path, {})


def test_windows_follow_pykt_protocol():
    data = read(FIXTURES / "pykt_small", {})
    splits = split_students(data, fold=1)
    assert data.student_ids[splits["val"]].tolist() == ["12", "13"]
    assert data.student_ids[splits["test"]].tolist() == ["20", "21"]
    windows = make_windows(data, splits["train"], window=3, min_length=3)
    # 4 -> [3] (the 1 left over is dropped), 2 -> dropped, 7 -> [3, 3] (1 dropped)
    assert windows.length.tolist() == [3, 3, 3]
    assert windows.start.tolist() == [0, data.offsets[4], data.offsets[4] + 3]


def test_unknown_fold_names_the_key():
    data = read(FIXTURES / "pykt_small", {})
    with pytest.raises(Exception, match=r"data.fold=7"):
        split_students(data, fold=7)


@pytest.mark.parametrize("bucketing", [True, False])
def test_batches_shapes_and_masks(bucketing):
    dm = make_datamodule(format="pykt", root=str(FIXTURES / "pykt_small"), fold=0, window=5, min_length=2,
                         batch_size=8, bucketing=bucketing)  # fmt: skip
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    lengths = batch["mask"].sum(1)
    steps = batch["mask"].shape[1]
    assert steps == (int(lengths.max()) if bucketing else 5)
    assert batch["skills"].shape == (len(lengths), steps, 2)
    assert batch["responses"].shape == batch["mask"].shape
    # real steps are a prefix; padding has no skills and no responses
    assert torch.equal(batch["mask"], torch.arange(steps)[None] < lengths[:, None])
    assert (batch["skills"][~batch["mask"]] == -1).all()
    assert (batch["responses"][~batch["mask"]] == 0).all()
    assert (batch["skills"][batch["mask"]][:, 0] >= 0).all()
    assert (batch["student"] >= 0).all()  # training students have a gamma slot
    total = sum(int(b["mask"].sum()) for b in dm.train_dataloader())
    assert total == dm.datasets["train"].windows.num_interactions


def test_synthetic_keeps_ground_truth():
    dm = make_datamodule(format="synthetic", synthetic={"num_students": 50, "num_skills": 5})
    dm.setup()
    truth = dm.data.truth
    assert truth["beta"].shape == (5,) and truth["gamma"].shape == (50,)
    assert truth["mastery_before"].shape == (dm.data.num_interactions,)
    assert set(np.unique(dm.data.fold).tolist()) == {-1, 0, 1, 2, 3, 4}
    options = default_config().data.synthetic
    guess, slip = options.guess, options.slip
    np.testing.assert_allclose(truth["prob"], guess + (1 - guess - slip) * truth["mastery_before"])


def test_afm_process_is_an_additive_logit_of_ability_difficulty_and_practice():
    dm = make_datamodule(format="synthetic", synthetic={"process": "afm", "num_students": 40, "num_skills": 4})
    dm.setup()
    data, truth = dm.data, dm.data.truth
    assert "gamma" not in truth and truth["ability"].shape == (40,)
    np.testing.assert_array_equal(truth["prob"], truth["mastery_before"])  # no guess or slip
    options = default_config().data.synthetic
    for student in range(data.num_students):  # the test's own reference, one student at a time
        rows = slice(data.offsets[student], data.offsets[student + 1])
        skills, responses = data.skills[rows, 0], data.responses[rows]
        practice = np.zeros(4)
        for skill, response, prob in zip(skills, responses, truth["prob"][rows]):
            logit = truth["ability"][student] - truth["offset"][skill] + truth["beta"][skill] * practice[skill]
            assert prob == pytest.approx(1.0 / (1.0 + np.exp(-logit)), abs=1e-12)
            practice[skill] += options.gain_correct if response else options.gain_incorrect
    assert 0.3 < data.responses.mean() < 0.7


def _batches(sampler) -> list[list[int]]:
    return [list(batch) for batch in sampler]


def _sampler(lengths, shuffle=True, seed=3, rank=0, world=1, equal_shares=True, bucketing=True, multiple=1,
             batch_size=4, batch_tokens=None, window=50):  # fmt: skip
    return WindowBatchSampler(EpochOrder(len(lengths), shuffle, seed), np.asarray(lengths), Padding(window, bucketing, multiple),
                              batch_size=batch_size, batch_tokens=batch_tokens, pool_batches=3, rank=rank, world=world,
                              equal_shares=equal_shares)  # fmt: skip


@pytest.mark.parametrize("tokens", [None, 60])
def test_batches_are_a_pure_function_of_seed_and_epoch(tokens):
    """Any epoch's batches can be recomputed (a resumed run draws what an uninterrupted one would)."""
    lengths = np.random.default_rng(0).integers(3, 50, size=57)
    first, again = _sampler(lengths, batch_tokens=tokens), _sampler(lengths, batch_tokens=tokens)
    epochs = []
    for epoch in (0, 1, 0):
        first.sampler.set_epoch(epoch)
        again.sampler.set_epoch(epoch)
        epochs.append(_batches(first))
        assert epochs[-1] == _batches(again)
        assert sorted(i for b in epochs[-1] for i in b) == list(range(57))  # every window once
    assert epochs[0] == epochs[2] and epochs[0] != epochs[1]
    other_seed = _sampler(lengths, seed=4, batch_tokens=tokens)
    assert _batches(other_seed) != epochs[0]


def test_token_budget_batches_fill_the_budget():
    lengths = np.random.default_rng(1).integers(3, 50, size=300)
    padding = Padding(50, True, 8)
    batches = _batches(_sampler(lengths, batch_tokens=120, multiple=8))
    assert sorted(i for b in batches for i in b) == list(range(300))
    for batch in batches:
        steps = padding.steps(int(lengths[batch].max()))
        assert steps % 8 == 0 or steps == 50
        assert len(batch) * steps <= 120 or len(batch) == 1
    # greedy: a batch stops only where the next window (sorted by length) would overflow the budget
    order = np.concatenate([np.sort(lengths)])
    cuts = token_budget_cuts(padding.steps(order), 120)
    for start, end in zip(cuts[:-1], cuts[1:-1]):
        assert (end - start + 1) * padding.steps(order[end]) > 120
    # the cuts depend on the lengths only: every epoch has the same batch shapes
    shapes = lambda b: sorted((len(x), int(padding.steps(int(lengths[x].max())))) for x in b)  # noqa: E731
    later = _sampler(lengths, batch_tokens=120, multiple=8)
    later.sampler.set_epoch(5)
    assert shapes(_batches(later)) == shapes(batches)


def test_auto_budget_weighs_every_answer_alike_at_the_same_number_of_steps():
    """A batch's loss is the mean over its answers, so an answer weighs 1 / (answers in its batch).
    Bucketed batches of ``batch_size`` windows make that weight depend on the window's length; the
    auto budget keeps it nearly equal, with as many batches an epoch as ``batch_size`` gives."""
    rng = np.random.default_rng(5)
    lengths = np.minimum(rng.geometric(1 / 30, size=2000) + 2, 200)  # many short windows, a few long ones
    padding = Padding(200, True, 1)
    budget = mean_batch_budget(16, padding.steps(lengths))
    assert budget == int(np.ceil(16 * lengths.mean()))

    def answers_per_batch(tokens):
        batches = _batches(_sampler(lengths, batch_size=16, batch_tokens=tokens, window=200))
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        return np.array([lengths[b].sum() for b in batches]), len(batches)

    fixed, fixed_count = answers_per_batch(None)
    auto, auto_count = answers_per_batch(budget)
    assert abs(auto_count - fixed_count) <= 0.1 * fixed_count
    full = np.sort(auto)[1:]  # the shortest batch is the one the budget's remainder fills
    assert full.max() / full.min() < 1.5
    assert fixed.max() / fixed.min() > 10  # what the budget corrects


@pytest.mark.parametrize("bucketing", [True, False])
def test_auto_budget_is_resolved_from_the_training_windows(bucketing):
    dm = make_datamodule(format="pykt", root=str(FIXTURES / "pykt_small"), fold=0, window=5, min_length=2,
                         batch_size=2, batch_tokens="auto", bucketing=bucketing)  # fmt: skip
    dm.setup()
    lengths = dm.datasets["train"].windows.length
    # unbucketed batches are random mixes of batch_size windows already
    assert dm.train_batch_tokens == (int(np.ceil(2 * lengths.mean())) if bucketing else None)
    assert sorted(i for b in dm.train_dataloader().batch_sampler for i in b) == list(range(len(lengths)))


def test_ranks_share_batches_without_overlap():
    lengths = np.random.default_rng(2).integers(3, 50, size=61)
    for tokens in (None, 100):
        train = [_batches(_sampler(lengths, rank=r, world=2, batch_tokens=tokens)) for r in (0, 1)]
        assert len(train[0]) == len(train[1])  # lockstep gradient steps
        seen = [i for rank in train for b in rank for i in b]
        assert len(seen) == len(set(seen))
        evaluation = [_batches(_sampler(lengths, shuffle=False, rank=r, world=2, equal_shares=False, batch_tokens=tokens))
                      for r in (0, 1)]  # fmt: skip
        assert sorted(i for rank in evaluation for b in rank for i in b) == list(range(61))  # each window once


def test_pad_multiple_rounds_the_padded_length():
    dm = make_datamodule(format="pykt", root=str(FIXTURES / "pykt_small"), fold=0, window=5, min_length=2,
                         batch_size=8, pad_multiple=4)  # fmt: skip
    dm.setup()
    for batch in dm.train_dataloader():
        longest = int(batch["mask"].sum(1).max())
        assert batch["mask"].shape[1] == min(-(-longest // 4) * 4, 5)
