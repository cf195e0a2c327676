"""The counterfactual check on hand-made windows and models whose answer is known, and on the real
model through Lightning's predict loop."""

from __future__ import annotations

import json
from dataclasses import replace

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from gainakt.callbacks.verification import Verification
from gainakt.verification import counterfactual
from gainakt.verification.counterfactual import flipped_copies, violations
from tests.conftest import make_module, make_thresholds

T = make_thresholds()


def _batch(skills: list[list[list[int]]], responses: list[list[int]], lengths: list[int]) -> dict[str, torch.Tensor]:
    steps = max(lengths)
    mask = torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]
    return {"skills": torch.tensor(skills), "responses": torch.tensor(responses), "mask": mask,
            "student": torch.full((len(lengths),), -1), "window": torch.arange(len(lengths))}  # fmt: skip


def test_copies_flip_each_answer_that_has_a_later_step_of_its_skill():
    batch = _batch(
        [[[0, -1], [1, -1], [0, -1], [1, -1], [2, -1]],  # skills 0 1 0 1 2
         [[0, 1], [1, -1], [2, -1], [-1, -1], [-1, -1]]],  # a two-skill question, then padding
        [[0, 1, 1, 0, 1], [1, 0, 1, 0, 0]], [5, 3],
    )  # fmt: skip
    copies = flipped_copies(batch)
    assert list(zip(copies.source, copies.position)) == [(0, 0), (0, 1), (1, 0)]
    assert copies.flipped_to.tolist() == [1, 0, 0]
    assert copies.length.tolist() == [3, 4, 2]  # cut after the last later step of the flipped skill
    assert copies.later[0].tolist() == [False, False, True, False]
    assert copies.later[1].tolist() == [False, False, False, True]
    assert copies.later[2].tolist() == [False, True, False, False]  # shares skill 1 with step 1
    assert copies.responses[0, :3].tolist() == [1, 1, 1] and copies.responses[1, :4].tolist() == [0, 0, 1, 0]
    assert (copies.skills[0, 3:] == -1).all() and copies.responses[0, 3] == 0  # beyond the copy
    collated = copies.collate([2, 0])
    assert collated["skills"].shape == (2, 3, 2) and collated["mask"].tolist() == [[True, True, False], [True] * 3]
    two = flipped_copies(batch, max_flips=2, seed=0)
    assert len(two) == 2 and set(zip(two.source, two.position)) < set(zip(copies.source, copies.position))
    assert len(flipped_copies(batch, max_flips=5)) == 3


def _practice_model(batch: dict[str, torch.Tensor]) -> np.ndarray:
    """[B, L] probability at each step: (1 + earlier correct answers) / (2 + earlier attempts) on its
    skill (single-skill windows); a right answer can only raise it."""
    skills = batch["skills"][..., 0].numpy()
    responses = (batch["responses"] * batch["mask"]).numpy()
    steps = skills.shape[1]
    same = (skills[:, :, None] == skills[:, None, :]) & np.triu(np.ones((steps, steps), bool), 1)[None]
    correct = np.einsum("bt,btu->bu", responses, same)
    return (1.0 + correct) / (2.0 + same.sum(1))


def _random_windows(seed: int, windows: int = 30, steps: int = 25, num_skills: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, steps + 1, (windows,), generator=g).tolist()
    skills = torch.randint(0, num_skills, (windows, steps, 1), generator=g)
    batch = _batch(skills.tolist(), torch.randint(0, 2, (windows, steps), generator=g).tolist(), lengths)
    batch["skills"][~batch["mask"]] = -1
    return batch


def _rate(model, batch: dict[str, torch.Tensor], tolerance: float = 1e-9) -> dict[str, float]:
    copies = flipped_copies(batch)
    flipped = model(copies.collate(list(range(len(copies)))))
    return violations(copies, model(batch), flipped, tolerance)


def test_a_model_where_right_answers_help_never_violates_and_its_mirror_always_does():
    batch = _random_windows(0)
    good = _rate(_practice_model, batch)
    assert good["pairs"] > 100 and good["rate"] == 0.0
    bad = _rate(lambda b: 1.0 - _practice_model(b), batch)
    assert bad["pairs"] == good["pairs"] and bad["rate"] == 1.0
    assert bad["rate_wrong_to_right"] == bad["rate_right_to_wrong"] == 1.0
    ignores = _rate(lambda b: np.full(b["skills"].shape[:2], 0.6), batch)
    assert ignores["rate"] == 0.0  # no move at all is no violation


def test_a_model_that_penalises_only_correct_streaks_is_caught_in_one_direction():
    def streak_averse(batch):  # a second right answer on a skill lowers the prediction: RCKT's example
        p = _practice_model(batch)
        return np.where(p > 0.6, 1.2 - p, p)

    rates = _rate(streak_averse, _random_windows(1))
    assert 0.0 < rates["rate"] < 1.0
    assert rates["rate_wrong_to_right"] > 0.0 and rates["rate_right_to_wrong"] > 0.0


def test_grid_places_predict_rows_at_their_window_and_position():
    rows = {"window": np.array([4, 4, 9, 2]), "position": np.array([1, 2, 1, 3]), "p": np.array([0.1, 0.2, 0.3, 0.4])}
    grid = counterfactual.grid(rows, "p", np.array([4, 9]), 3)
    np.testing.assert_array_equal(grid, [[np.nan, 0.1, 0.2], [np.nan, 0.3, np.nan]])


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from tests.conftest import run_config

    dm = instantiate(run_config(tmp_path_factory.mktemp("cf") / "run").data, cache_dir=None)
    dm.setup()
    return dm


def _module(dm):
    torch.manual_seed(0)
    return make_module(dm.num_skills, dm.num_train_students, d_model=16, n_heads=2, n_blocks=1, d_ff=32)


def _net_probs(net, batch: dict[str, torch.Tensor], encoder: str) -> np.ndarray:
    """[B, L] probability at each step straight from the network (position u <- output u - 1)."""
    out = net.eval()(batch["skills"], batch["responses"], batch["student"])
    prob = torch.sigmoid(getattr(out, f"{encoder}_logit")).detach().numpy()
    return np.pad(prob, ((0, 0), (1, 0)), constant_values=np.nan)


def test_the_predict_loop_gives_the_rates_of_a_direct_computation(tiny_data, tmp_path):
    module = _module(tiny_data)
    thresholds = replace(T, counterfactual_windows=6, counterfactual_flips=40, seed=3)
    verification = Verification(tmp_path, thresholds, metrics_csv=None, plots=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[verification])  # fmt: skip
    result = verification.run(trainer, module, tiny_data)
    report = json.loads((tmp_path / "verification.json").read_text())
    test = tiny_data.datasets["test"]
    sample = counterfactual.sample_windows(len(test), 6, 3)
    batch = test.collate(sample.tolist())
    copies = flipped_copies(batch, 40, 3)
    assert len(copies) == 40 < len(flipped_copies(batch))  # a sample of the flips bounds the cost
    for encoder in ("enc1", "enc2"):
        direct = violations(copies, _net_probs(module.net, batch, encoder),
                            _net_probs(module.net, copies.collate(list(range(len(copies)))), encoder),
                            thresholds.counterfactual_tolerance)  # fmt: skip
        assert report["counterfactual"][encoder] == pytest.approx(direct, abs=1e-9), encoder
    check = next(c for c in report["checks"] if c["id"] == 12)
    assert check["value"] == report["counterfactual"]["enc2"]["rate"] and check["detail"]["pairs"] == copies.later.sum()
    assert report["counterfactual"]["enc2"]["flips"] == len(copies)
    assert check["reference"] == report["counterfactual"]["enc1"]["rate"] and result["checks_total"] == 12


def test_unflipped_copies_stay_within_the_tolerance(tiny_data):
    """Batching and cutting the copies moves predictions by rounding only: below the default tolerance."""
    net = _module(tiny_data).net
    test = tiny_data.datasets["test"]
    batch = test.collate(list(range(len(test))))
    copies = flipped_copies(batch)
    same = replace(copies, responses=batch["responses"].numpy()[copies.source, : copies.responses.shape[1]]
                   * (np.arange(copies.responses.shape[1]) < copies.length[:, None]))  # fmt: skip
    for encoder in ("enc1", "enc2"):
        shift = _net_probs(net, same.collate(list(range(len(same)))), encoder) - _net_probs(net, batch, encoder)[
            same.source, : same.responses.shape[1]]  # fmt: skip
        assert np.nanmax(np.abs(np.where(same.later, shift, 0.0))) < T.counterfactual_tolerance / 10
        assert violations(same, _net_probs(net, batch, encoder), _net_probs(net, same.collate(list(range(len(same)))),
                                                                              encoder), T.counterfactual_tolerance)["rate"] == 0.0  # fmt: skip
