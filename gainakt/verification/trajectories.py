"""Learning trajectories: every scored interaction of the validation and test students, in one table.

The rows come from Lightning's predict loop (``GainAKTModule.predict_step``, so the device and
precision are those of ``test``), one pass over the windows of each split, and are mapped back to
their student and step through the split's ``Windows``. A row is a *scored* interaction: position
j >= 1 of its window, the ones both encoders predict (position j - 1 of the model outputs predicts
r_j). Columns:

- ``split``, ``student`` (the dataset's student id), ``window`` (index of the window in its split),
  ``step`` (position in the student's whole sequence), ``skill`` (ids joined by ``|``), ``response``;
- ``enc1_prob``, ``enc2_prob``: each encoder's probability of a correct answer, predicted from the
  steps before this one;
- ``mastery_before``, ``mastery_after``: mastery of the interaction's skills before and after its
  gain, combined over a multi-skill question as encoder 2 does (``model.aggregate``);
- ``gain``: the gain g_t[q_t] applied at this step to the interaction's skills (mean over them);
- ``gain_other``: the gain applied at this step to every other skill (0 unless ``accumulate=all``);
- ``skill_rate_prob``: the baseline's prediction, the training correct rate of the row's skills
  (combined as encoder 2 does; see ``baselines``);
- ``true_mastery_before``, ``true_prob``: the simulator's mastery before the answer and its
  probability of a correct answer (synthetic data only).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from gainakt.data.datamodule import Batch, KTDataModule
from gainakt.model.accumulation import skill_multi_hot
from gainakt.model.gainakt3exp import GainAKT3Exp, ModelOutput
from gainakt.model.learning_curve import aggregate_skills
from gainakt.verification.baselines import SkillRateTable

COLUMNS = ["split", "student", "window", "step", "skill", "response", "enc1_prob", "enc2_prob",
           "mastery_before", "mastery_after", "gain", "gain_other", "skill_rate_prob"]  # fmt: skip
READINGS = COLUMNS[6:12]  # what the model gives per row
TRUTH_COLUMNS = {"true_mastery_before": "mastery_before", "true_prob": "prob"}  # column: key of data.truth
FLOATS = [*COLUMNS[6:], *TRUTH_COLUMNS]


@torch.no_grad()
def dense_rows(net: GainAKT3Exp, batch: Batch, out: ModelOutput) -> dict[str, torch.Tensor]:
    """The model's readings at every position j >= 1 of every window of a batch, from a forward
    pass's output, scored or padding: ``weight`` is 1 for a scored interaction and 0 for padding.

    Returns tensors on the batch's device, one entry per row (B x (L - 1) rows): ``weight``,
    ``window``, ``position`` (in the window), ``response``, ``skills`` ([N, K]) and the columns of
    :data:`READINGS`. Nothing is selected, so no operation waits for the host: the per-epoch
    monitors weight these rows; :func:`scored_rows` selects the scored ones.
    """
    skills, student = batch["skills"], batch["student"]
    trace = net.practised_mastery(out.gain, out.gains_all, skills, student)
    own = skills[:, 1:]
    valid = own >= 0
    gain = (out.gain[:, 1:].float() * valid).sum(-1) / valid.sum(-1).clamp_min(1)
    if net.accumulate == "all":
        assert out.gains_all is not None
        other = (out.gains_all[:, 1:].float() * (1.0 - skill_multi_hot(own, net.num_skills))).sum(-1)
    else:
        other = torch.zeros_like(gain)
    scored = batch["mask"][:, 1:]
    rows, steps = scored.shape
    position = torch.arange(1, steps + 1, device=scored.device)
    return {
        "weight": scored.reshape(-1).float(),
        "window": batch["window"].unsqueeze(1).expand(rows, steps).reshape(-1),
        "position": position.expand(rows, steps).reshape(-1),
        "response": batch["responses"][:, 1:].reshape(-1),
        "skills": own.reshape(rows * steps, own.shape[-1]),
        "enc1_prob": torch.sigmoid(out.enc1_logit.float()).reshape(-1),
        "enc2_prob": torch.sigmoid(out.enc2_logit.float()).reshape(-1),
        "mastery_before": aggregate_skills(trace["mastery_before"][:, 1:].float(), valid, net.aggregate).reshape(-1),
        "mastery_after": aggregate_skills(trace["mastery_after"][:, 1:].float(), valid, net.aggregate).reshape(-1),
        "gain": gain.reshape(-1),
        "gain_other": other.reshape(-1),
    }


class BatchReadings:
    """One validation batch's forward pass, and its :func:`dense_rows` computed once, on first use:
    what the validation step returns, so the per-epoch monitors share one computation of the rows."""

    def __init__(self, net: GainAKT3Exp, batch: Batch, out: ModelOutput) -> None:
        self.net, self.batch, self.out = net, batch, out

    @cached_property
    def rows(self) -> dict[str, torch.Tensor]:
        return dense_rows(self.net, self.batch, self.out)


def scored_rows(net: GainAKT3Exp, batch: Batch, out: ModelOutput) -> dict[str, torch.Tensor]:
    """The scored rows of :func:`dense_rows` (without ``weight``), one entry per scored interaction:
    what the predict step returns, hence the checks' rows."""
    rows = dense_rows(net, batch, out)
    scored = rows.pop("weight") > 0
    return {name: value[scored] for name, value in rows.items()}


def length_ordered_loader(collate: Callable[[list[int]], Batch], lengths: np.ndarray, batch_size: int) -> DataLoader:
    """Items 0..n-1 in order of length, so each batch pads little (for the predict loop)."""
    order = np.argsort(lengths, kind="stable").tolist()
    return DataLoader(range(len(lengths)), batch_size=batch_size, sampler=order, collate_fn=collate)


def concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The per-batch outputs of the predict loop, as one array per column."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def join_skills(skills: np.ndarray) -> np.ndarray:
    """[N, K] skill ids (-1 = empty slot) -> strings ``"3"`` or ``"3|7"``."""
    text = skills[:, 0].astype(str)
    for k in range(1, skills.shape[1]):
        more = skills[:, k] >= 0
        text = np.where(more, np.char.add(np.char.add(text, "|"), skills[:, k].astype(str)), text)
    return text


def to_frame(
    cols: dict[str, np.ndarray], datamodule: KTDataModule, split: str, skill_rates: SkillRateTable, aggregate: str
) -> pd.DataFrame:
    """The trajectories table of one split from its concatenated predict outputs (:func:`scored_rows`)."""
    data = datamodule.data
    assert data is not None, "datamodule.setup() first"
    if not cols:
        return pd.DataFrame(columns=COLUMNS)
    windows = datamodule.datasets[split].windows
    student = windows.student[cols["window"]]
    flat = windows.start[cols["window"]] + cols["position"]
    frame = pd.DataFrame({
        "split": split,
        "student": data.student_ids[student],
        "window": cols["window"],
        "step": flat - data.offsets[student],
        "skill": join_skills(cols["skills"]),
        "response": cols["response"].astype(np.int8),
        **{k: cols[k].astype(np.float32) for k in READINGS},
        "skill_rate_prob": skill_rates.predict(cols["skills"], aggregate).astype(np.float32),
    })  # fmt: skip
    for column, key in TRUTH_COLUMNS.items():
        if key in data.truth:
            frame[column] = data.truth[key][flat].astype(np.float32)
    frame["_order"] = student
    return frame.sort_values(["_order", "step"], kind="stable").drop(columns="_order").reset_index(drop=True)


def parameters(net: GainAKT3Exp) -> dict[str, Any]:
    """The learned learning-curve parameters and the options that shape them (for parameters.json)."""
    gamma, guess, slip = net.gamma, net.guess, net.slip
    return {
        "num_skills": net.num_skills,
        "beta": net.beta.detach().cpu().tolist(),
        "saturation": net.saturation.detach().cpu().tolist(),
        "gamma_train_students": None if gamma is None else gamma.detach().cpu().tolist(),
        "gamma_unseen_student": None if gamma is None else float(gamma.mean()),
        "theta": float(net.mastery_threshold.detach()),
        "offset": net.offset,
        "temperature": float(net.temperature.detach()),
        "guess": None if guess is None else guess.detach().cpu().tolist(),
        "slip": None if slip is None else slip.detach().cpu().tolist(),
        "expected": None if net.expected is None else net.expected.detach().cpu().tolist(),
        **net.record_weights(),
        "options": {"gains": net.gains, "accumulate": net.accumulate, "aggregate": net.aggregate,
                    "im_target": net.im_target, "response": net.response, "ability_in": net.ability_in},  # fmt: skip
    }


def write_csv(frame: pd.DataFrame, path: Any) -> None:
    """Write the table with float32 precision (9 significant digits round-trip exactly), atomically."""
    from gainakt.run.atomic import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")


def read_csv(path: Any) -> pd.DataFrame:
    """Read a trajectories.csv back with the types it was written with."""
    frame = pd.read_csv(path, dtype={"skill": str, "student": str})
    return frame.astype({c: np.float32 for c in frame.columns if c in FLOATS})
