"""Verify a trained model: trajectories, the eleven checks, the seed document's advice, plots.

``verify`` writes into a folder (a run folder after fit, or an evaluation folder):
``trajectories.csv`` (validation and test rows), ``parameters.json``, ``verification.json`` and
``verification.md`` (checks on the test rows) and ``plots/*.png``. The checks are computed from
exactly the rows written to ``trajectories.csv``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gainakt.verification.checks import DEFINITIONS, CheckResult, Thresholds, recovery_checks, run_checks
from gainakt.data.datamodule import KTDataModule
from gainakt.run.atomic import write_json_atomic, write_text_atomic
from gainakt.run.folder import RunFolder
from gainakt.model.gainakt3exp import GainAKT3Exp
from gainakt.verification.trajectories import extract, parameters, write_csv

# The seed document's decision tree, by gain std: (lower bound, advice, override that tries it).
DECISION_TREE = [
    (0.10, "gains are differentiated (gain std > 0.10): no architectural option needed", None),
    (0.05, "gain std 0.05-0.10: try option 2, small initialisation of the gains head", "model.gains_init=small"),
    (0.02, "gain std 0.02-0.05: try option 1, a multi-layer gains head", "model.gains_head=mlp"),
    (-math.inf, "gain std < 0.02: try option 3, skill-aware attention in encoder 2", "model.attention_bias=skill_aware"),
]
MASTERY_TARGET = 0.40  # the seed document's success criterion for the mastery correlation


def decision(gain_std: float | None, mastery_corr: float | None, model_options: dict[str, Any]) -> dict[str, Any]:
    """Apply the seed document's decision tree to this run's gain std (check 1) and check 11."""
    if gain_std is None:
        return {"advice": "gain std could not be computed on these rows; no advice", "override": None}
    _, advice, override = next(branch for branch in DECISION_TREE if gain_std > branch[0])
    notes = []
    if override is None and (mastery_corr is None or mastery_corr <= MASTERY_TARGET):
        shown = "not computable" if mastery_corr is None else f"{mastery_corr:.3f}"
        notes.append(f"but the mastery correlation ({shown}) is not above {MASTERY_TARGET}: not yet a success")
    if override is not None:
        key, value = override.split("=")
        if str(model_options.get(key.removeprefix("model."))) == value:
            notes.append(f"this run already uses {override}; the next option down the tree is the one left to try")
        notes.append("the seed document tries each option together with the V3 inverse-warmup schedule")
    return {"advice": advice + ("; " + "; ".join(notes) if notes else ""), "override": override}


def response_model(rows: pd.DataFrame, params: dict[str, Any]) -> dict[str, Any]:
    """Encoder 2's response model as a researcher reads it: theta, T, guess/slip (summarised over
    skills) and, per split, the share of scored steps below the threshold (mastery before the
    answer < theta: "not mastered") and the share predicted wrong (encoder-2 p < 0.5)."""
    theta = params["theta"]
    out: dict[str, Any] = {"form": params["options"].get("response"), "theta": theta,
                           "temperature": params["temperature"]}  # fmt: skip
    for name in ("guess", "slip"):
        values = params.get(name)
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            out[name] = {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
    splits = sorted(rows["split"].unique())
    out["share_below_theta"] = {sp: float((rows.loc[rows["split"] == sp, "mastery_before"] < theta).mean()) for sp in splits}
    out["share_predicted_wrong"] = {sp: float((rows.loc[rows["split"] == sp, "enc2_prob"] < 0.5).mean()) for sp in splits}
    return out


def _response_lines(model: dict[str, Any]) -> list[str]:
    lines = ["", "## Response model of encoder 2", "", f"Form: `{model['form']}`; theta {_fmt(model['theta'])}, "
             f"T {_fmt(model['temperature'])}."]  # fmt: skip
    for name in ("guess", "slip"):
        if name in model:
            g = model[name]
            lines.append(f"{name.capitalize()} over skills: mean {_fmt(g['mean'])}, min {_fmt(g['min'])}, max {_fmt(g['max'])}.")
    lines += ["", "| split | steps with mastery < theta | steps with p < 0.5 |", "|---|---|---|"]
    lines += [f"| {sp} | {_fmt(share)} | {_fmt(model['share_predicted_wrong'][sp])} |"
              for sp, share in model["share_below_theta"].items()]  # fmt: skip
    return lines


def _fmt(value: float | None, integral: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(int(value)) if integral else f"{value:.4f}"


def render_markdown(report: dict[str, Any]) -> str:
    """verification.md: a table of the checks, ground-truth recovery, then the decision tree."""
    lines = [
        "# Verification of encoder 2",
        "",
        f"Rows: the {report['rows']} scored interactions of the {report['students']} {report['split']} "
        f"students (see trajectories.csv). Reference: the same statistic for encoder 1 on the same rows.",
        "",
        f"**{report['checks_passed']} of {report['checks_total']} checks passed**"
        + (f" ({report['checks_not_computable']} not computable)" if report["checks_not_computable"] else ""),
        "",
        "| # | check | value | threshold | result | encoder 1 |",
        "|---|---|---|---|---|---|",
    ]

    def table_row(check: dict[str, Any]) -> str:
        result = check["status"] + (f": {check['reason']}" if check["reason"] else "")
        detail = ", ".join(f"{k} {_fmt(v, v is not None and float(v).is_integer())}" for k, v in check["detail"].items())
        count = check["id"] == 3  # a number of violations
        value = _fmt(check["value"], count) + (f" ({detail})" if detail else "")
        threshold = f"{check['op']} {_fmt(float(check['threshold']), count)}"
        return f"| {check['id']} | {check['name']} | {value} | {threshold} | {result} | {_fmt(check['reference'])} |"

    lines += [table_row(c) for c in report["checks"]]
    if report.get("recovery"):
        lines += ["", "## Ground-truth recovery (synthetic data)", "",
                  "| # | check | value | threshold | result |", "|---|---|---|---|---|"]  # fmt: skip
        lines += ["|".join(table_row(c).split("|")[:-2]) + "|" for c in report["recovery"]]
    if report.get("response_model"):
        lines += _response_lines(report["response_model"])
    tree = report["decision"]
    lines += ["", "## Next step (the seed document's decision tree)", "", tree["advice"] + "."]
    if tree["override"]:
        lines += ["", "Try it:", "", "```bash", f"python -m gainakt.train <this run's overrides> {tree['override']}", "```"]
    shown = [c["id"] for c in report["checks"] + report.get("recovery", [])]
    lines += ["", "## How each check is computed", ""] + [f"- **{i}**: {DEFINITIONS[i]}" for i in shown] + [""]
    return "\n".join(lines)


def verification_report(
    rows: pd.DataFrame, params: dict[str, Any], thresholds: Thresholds, truth: dict[str, np.ndarray] | None,
    model_options: dict[str, Any], split: str = "test",
) -> dict[str, Any]:  # fmt: skip
    """The content of verification.json, from one split's rows and the learned parameters."""
    part = rows[rows["split"] == split]
    beta = np.asarray(params["beta"])
    checks = run_checks(part, beta, thresholds)
    recovery: list[CheckResult] = []
    if truth and "beta" in truth and "true_mastery_before" in part.columns:
        recovery = recovery_checks(part, beta, truth, thresholds)
    by_id = {c.id: c for c in checks}
    return {
        "split": split,
        "rows": len(part),
        "students": int(part["student"].nunique()),
        "checks": [c.to_dict() for c in checks],
        "recovery": [c.to_dict() for c in recovery],
        "checks_passed": sum(c.passed is True for c in checks),
        "checks_total": len(checks),
        "checks_not_computable": sum(c.passed is None for c in checks),
        "decision": decision(by_id[1].value, by_id[11].value, model_options),
        "response_model": params.get("response_model"),
    }


def verify(
    net: GainAKT3Exp, datamodule: KTDataModule, out_dir: str | Path, thresholds: Thresholds,
    metrics_csv: str | Path | None = None, model_options: dict[str, Any] | None = None,
    device: Any = "cpu", plots: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Extract trajectories, run the checks and write every verification output into ``out_dir``.

    Returns the summary entries (``checks_passed``, ``checks_total``, ``checks_not_computable``, and
    the response model's ``theta``, ``share_below_theta`` and ``share_predicted_wrong`` on the test rows).
    """
    folder = RunFolder(out_dir)
    rows = extract(net, datamodule, device=device)
    params = parameters(net)
    assert datamodule.data is not None
    if datamodule.data.skill_ids is not None:
        params["skill_ids"] = datamodule.data.skill_ids.tolist()  # the dataset's id of each skill index
    params["response_model"] = response_model(rows, params)
    write_csv(rows, folder.trajectories)
    write_json_atomic(folder.parameters, params)
    truth = datamodule.data.truth or None
    report = verification_report(rows, params, thresholds, truth, {**params["options"], **(model_options or {})})
    write_json_atomic(folder.verification_json, report)
    write_text_atomic(folder.verification_md, render_markdown(report))
    if plots:
        from gainakt.verification.plots import write_plots

        write_plots(rows, params, folder.plots, metrics_csv=metrics_csv, truth=truth,
                    min_rows_per_skill=thresholds.min_rows_per_skill, gain_std_threshold=thresholds.gain_std)  # fmt: skip
    print(f"Verification: {report['checks_passed']}/{report['checks_total']} checks passed "
          f"on {report['rows']} test rows; see {folder.verification_md}", flush=True)  # fmt: skip
    model = params["response_model"]
    return {**{k: report[k] for k in ("checks_passed", "checks_total", "checks_not_computable")},
            "theta": model["theta"], "share_below_theta": model["share_below_theta"].get("test"),
            "share_predicted_wrong": model["share_predicted_wrong"].get("test")}  # fmt: skip
