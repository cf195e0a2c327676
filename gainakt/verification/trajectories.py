"""Learning trajectories: every scored interaction of the validation and test students, in one table.

Extraction runs the model over whole batches of windows (no loop over students or steps) and maps
each output back to its student and step through the split's ``Windows``. A row is a *scored*
interaction: position j >= 1 of its window, the ones both encoders predict (position j - 1 of the
model outputs predicts r_j). Columns:

- ``split``, ``student`` (the dataset's student id), ``window`` (index of the window in its split),
  ``step`` (position in the student's whole sequence), ``skill`` (ids joined by ``|``), ``response``;
- ``enc1_prob``, ``enc2_prob``: each encoder's probability of a correct answer, predicted from the
  steps before this one;
- ``mastery_before``, ``mastery_after``: mastery of the interaction's skills before and after its
  gain, combined over a multi-skill question as encoder 2 does (``model.aggregate``);
- ``gain``: the gain g_t[q_t] applied at this step to the interaction's skills (mean over them);
- ``gain_other``: the gain applied at this step to every other skill (0 unless ``accumulate=all``);
- ``true_mastery_before``: the simulator's mastery before the answer (synthetic data only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import torch

from gainakt.data.datamodule import KTDataModule, WindowDataset
from gainakt.model.accumulation import skill_multi_hot
from gainakt.model.gainakt3exp import GainAKT3Exp
from gainakt.model.learning_curve import aggregate_skills

COLUMNS = ["split", "student", "window", "step", "skill", "response", "enc1_prob", "enc2_prob",
           "mastery_before", "mastery_after", "gain", "gain_other"]  # fmt: skip


@torch.no_grad()
def _batch_rows(net: GainAKT3Exp, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Per scored interaction of one batch: window index, position and the model's readings."""
    skills, responses, student = batch["skills"], batch["responses"], batch["student"]
    out = net(skills, responses, student)  # with accumulate=all it also returns every skill's gain
    trace = net.practised_mastery(out.gain, out.gains_all, skills, student)
    own = skills[:, 1:]
    valid = own >= 0
    gain = (out.gain[:, 1:] * valid).sum(-1) / valid.sum(-1).clamp_min(1)
    if net.accumulate == "all":
        assert out.gains_all is not None
        other = (out.gains_all[:, 1:] * (1.0 - skill_multi_hot(own, net.num_skills))).sum(-1)
    else:
        other = torch.zeros_like(gain)
    scored = batch["mask"][:, 1:]
    row, pos = scored.nonzero(as_tuple=True)
    columns = {
        "window": batch["window"][row],
        "position": pos + 1,
        "response": responses[:, 1:][scored],
        "enc1_prob": torch.sigmoid(out.enc1_logit.float())[scored],
        "enc2_prob": torch.sigmoid(out.enc2_logit.float())[scored],
        "mastery_before": aggregate_skills(trace["mastery_before"][:, 1:], valid, net.aggregate)[scored],
        "mastery_after": aggregate_skills(trace["mastery_after"][:, 1:], valid, net.aggregate)[scored],
        "gain": gain[scored],
        "gain_other": other[scored],
        "skills": own[scored],
    }
    return {name: value.detach().cpu().numpy() for name, value in columns.items()}


def _batches(dataset: WindowDataset, batch_size: int) -> Iterable[dict[str, torch.Tensor]]:
    """Windows in order of length, so each batch pads little."""
    order = np.argsort(dataset.windows.length, kind="stable")
    for begin in range(0, len(order), batch_size):
        yield dataset.collate(order[begin : begin + batch_size].tolist())


def join_skills(skills: np.ndarray) -> np.ndarray:
    """[N, K] skill ids (-1 = empty slot) -> strings ``"3"`` or ``"3|7"``."""
    text = skills[:, 0].astype(str)
    for k in range(1, skills.shape[1]):
        more = skills[:, k] >= 0
        text = np.where(more, np.char.add(np.char.add(text, "|"), skills[:, k].astype(str)), text)
    return text


def extract(
    net: GainAKT3Exp, datamodule: KTDataModule, splits: Iterable[str] = ("val", "test"), batch_size: int | None = None,
    device: torch.device | str = "cpu", progress: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """The trajectories table (columns in the module docstring) of every window of ``splits``."""
    data = datamodule.data
    assert data is not None, "datamodule.setup() first"
    was_training = net.training
    net.eval()
    frames = []
    try:
        for split in splits:
            dataset = datamodule.datasets[split]
            if progress:
                print(f"Trajectories: {split} split, {len(dataset)} windows, "
                      f"{dataset.windows.num_interactions} interactions", flush=True)  # fmt: skip
            parts = [
                _batch_rows(net, {k: v.to(device) for k, v in batch.items()})
                for batch in _batches(dataset, batch_size or datamodule.eval_batch_size)
            ]
            if not parts:
                continue
            cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            windows = dataset.windows
            student = windows.student[cols["window"]]
            flat = windows.start[cols["window"]] + cols["position"]
            frame = pd.DataFrame({
                "split": split,
                "student": data.student_ids[student],
                "window": cols["window"],
                "step": flat - data.offsets[student],
                "skill": join_skills(cols["skills"]),
                "response": cols["response"].astype(np.int8),
                **{k: cols[k].astype(np.float32) for k in COLUMNS[6:]},
            })  # fmt: skip
            if "mastery_before" in data.truth:
                frame["true_mastery_before"] = data.truth["mastery_before"][flat].astype(np.float32)
            frame["_order"] = student
            frames.append(frame.sort_values(["_order", "step"], kind="stable").drop(columns="_order"))
    finally:
        net.train(was_training)
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


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
        "ability_weight": None if net.ability_weight is None else dict(zip(("guess", "slip"), net.ability_weight.detach().tolist())),
        "options": {"gains": net.gains, "accumulate": net.accumulate, "aggregate": net.aggregate,
                    "im_target": net.im_target, "response": net.response},  # fmt: skip
    }


def write_csv(frame: pd.DataFrame, path: Any) -> None:
    """Write the table with float32 precision (9 significant digits round-trip exactly), atomically."""
    from gainakt.run.atomic import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")


def read_csv(path: Any) -> pd.DataFrame:
    """Read a trajectories.csv back with the types it was written with."""
    frame = pd.read_csv(path, dtype={"skill": str, "student": str})
    floats = [c for c in frame.columns if c in COLUMNS[6:] or c == "true_mastery_before"]
    return frame.astype({c: np.float32 for c in floats})
