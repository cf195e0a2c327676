"""Reader, protocol and batches of the core data path."""

from __future__ import annotations

import numpy as np
import pytest
import torch


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
