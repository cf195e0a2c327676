"""The pykt reference (gainakt.tools.pykt_reference) scores what GainAKT scores: step t+1's answer
from the output at step t, read at step t+1's skill, on every window step but the first."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from gainakt.tools.pykt_reference import next_step, predict, score_test_split
from tests.conftest import run_cli


class Echo(torch.nn.Module):
    """A stand-in with DKT's interface: output [B, L, C] where y[b, t, c] = (t * 10 + c) / 1000."""

    def __init__(self, num_c: int) -> None:
        super().__init__()
        self.num_c = num_c

    def forward(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        b, steps = q.shape
        t = torch.arange(steps)[None, :, None].expand(b, steps, self.num_c)
        c = torch.arange(self.num_c)[None, None, :].expand(b, steps, self.num_c)
        return (t * 10 + c).float() / 1000


BATCH = {
    "skills": torch.tensor([[[3], [1], [4], [-1]], [[2], [0], [-1], [-1]]]),
    "responses": torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0]]),
    "mask": torch.tensor([[True, True, True, False], [True, True, False, False]]),
}


def test_next_step_reads_the_next_skill_at_the_previous_output_on_scored_steps_only():
    p, y = next_step(Echo(5), BATCH)
    # window 0: steps 1 (skill 1) and 2 (skill 4) from outputs 0 and 1; window 1: step 1 (skill 0) from output 0
    assert torch.allclose(p, torch.tensor([0.001, 0.014, 0.000]))
    assert torch.equal(y, torch.tensor([0.0, 1.0, 1.0]))


class SkillRate(torch.nn.Module):
    """A stand-in that predicts skill c right with probability c / 4 at every step."""

    def forward(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return (torch.arange(5).float() / 4).expand(*q.shape, 5)


def test_the_test_split_is_scored_with_the_statistics_gainakt_reports_for_its_encoders():
    # scored steps: skills 1, 4, 0 -> p 0.25, 1.0, 0.0 against answers 0, 1, 1
    scores = score_test_split(SkillRate(), [BATCH], predict(SkillRate(), [BATCH]))
    assert scores["test_share_predicted_wrong"] == pytest.approx(2 / 3)  # 0.25 and 0.0 are below 0.5
    assert scores["test_acc"] == pytest.approx(2 / 3)  # 0.0 calls a right answer wrong
    assert scores["test_auc"] == pytest.approx(0.5)  # one of the two right answers ranks above the wrong one
    assert scores["test_share_correct"] == pytest.approx(2 / 3)
    assert scores["val_mean_prob"] == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert scores["val_share_correct"] == pytest.approx(2 / 3)
    # the fit's slope is near 0 (right answers at both ends): every recalibrated p is near 2/3, none below 0.5
    assert scores["test_share_predicted_wrong_recalibrated"] == 0.0


@pytest.mark.skipif(importlib.util.find_spec("pykt") is None, reason="pykt-toolkit not installed (pip install --no-deps pykt-toolkit)")
def test_pykt_dkt_loads_without_pykt_package_imports():
    from gainakt.tools.pykt_reference import load_pykt_class

    model = load_pykt_class("dkt", "DKT")(num_c=4, emb_size=8, dropout=0.0)
    y = model(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long))
    assert y.shape == (2, 5, 4) and ((y > 0) & (y < 1)).all()


@pytest.mark.parametrize(("args", "message"), [
    (["data.foldd=1"], "data.foldd: unknown key; did you mean data.fold?"),
    (["data=assist2015", "data.root=no_such_folder"], "data.root=no_such_folder does not exist"),
])  # fmt: skip
def test_bad_input_stops_with_one_line_and_exit_code_2(tmp_path, args, message):
    proc = run_cli("gainakt.tools.pykt_reference", args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
