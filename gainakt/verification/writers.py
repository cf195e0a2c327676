"""Verify a trained model: the checks, their baselines and intervals, the seed document's advice, plots.

``verify`` writes into a folder (a run folder after fit, or an evaluation folder):
``trajectories.csv`` (validation and test rows), ``parameters.json``, ``verification.json`` and
``verification.md`` (checks on the test rows) and ``plots/*.png``. The checks are computed from
exactly the rows written to ``trajectories.csv`` (and, for check 12, the counterfactual statistics).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gainakt.model.gainakt3exp import RECORD_WEIGHTS
from gainakt.run.atomic import write_json_atomic, write_text_atomic
from gainakt.run.folder import RunFolder
from gainakt.verification.baselines import majority_class
from gainakt.verification.checks import (
    DEFINITIONS, CheckResult, Thresholds, accuracy, auc, bootstrap, degenerate_parameters, or_none, recovery_checks,
    run_checks, share_predicted_wrong, share_predicted_wrong_recalibrated,
)  # fmt: skip
from gainakt.verification.trajectories import write_csv

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
        if model_options.get("response") == "guess_slip":
            weight = model_options.get("mastery_weight") or 0
            hint = ("model.mastery_weight=0.1 asks mastery itself to explain the answers, at the same AUC on real data"
                    if not weight else f"a larger model.mastery_weight (this run: {weight}) moves more of the answers' news "
                    "into mastery, at some AUC")  # fmt: skip
            notes.append(hint + ' (README, "Mastery that explains the answers")')
    if override is not None:
        key, value = override.split("=")
        if str(model_options.get(key.removeprefix("model."))) == value:
            notes.append(f"this run already uses {override}; the next option down the tree is the one left to try")
        notes.append("the seed document tries each option together with the V3 inverse-warmup schedule")
    return {"advice": advice + ("; " + "; ".join(notes) if notes else ""), "override": override}


def response_model(rows: pd.DataFrame, params: dict[str, Any]) -> dict[str, Any]:
    """Encoder 2's response model as a researcher reads it: theta, T, guess/slip (summarised over
    skills) and, per split, the share of scored steps below the threshold (mastery before the
    answer < theta: "not mastered") and the share predicted wrong (p < 0.5) by encoder 2 and, beside
    it, by encoder 1."""
    theta = params["theta"]
    out: dict[str, Any] = {"form": params["options"].get("response"), "theta": theta,
                           "temperature": params["temperature"]}  # fmt: skip
    for name in ("guess", "slip"):
        values = params.get(name)
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            out[name] = {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
    for name in RECORD_WEIGHTS:  # how far each piece of the record moves the guess and slip (or the logit)
        if params.get(name) is not None:
            out[name] = params[name]
    splits = sorted(rows["split"].unique())
    out["share_below_theta"] = {sp: float((rows.loc[rows["split"] == sp, "mastery_before"] < theta).mean()) for sp in splits}
    for enc, key in (("enc2", "share_predicted_wrong"), ("enc1", "share_predicted_wrong_enc1")):  # encoder 1's beside it
        out[key] = {sp: share_predicted_wrong(rows.loc[rows["split"] == sp, f"{enc}_prob"].to_numpy()) for sp in splits}
    if {"val", "test"} <= set(splits):  # the test share as a model calibrated on validation would give it
        val, test = rows[rows["split"] == "val"], rows[rows["split"] == "test"]
        out["share_predicted_wrong_recalibrated"] = {
            enc: or_none(lambda enc=enc: share_predicted_wrong_recalibrated(
                val[f"{enc}_prob"].to_numpy(), val["response"].to_numpy(), test[f"{enc}_prob"].to_numpy()))
            for enc in ("enc2", "enc1")}  # fmt: skip
    return out


# What each record term reads, as verification.md names it, and the unit its weights apply to.
_RECORD_TERMS = {
    "ability_weight": ("Running ability over all answers so far", "unit of its logit"),
    "skill_ability_weight": ("Running ability over the answers to the question's skills", "unit of its logit"),
    "skill_recency_weight": ("Last answer to each of the question's skills (+1 right, -1 wrong, times 1 / (1 + steps since))",
                             "unit"),
    "related_weight": ("Record on related skills (every skill's running ability through the learned relation)", "unit"),
    "recent_ability_weight": ("Recent answers beyond each skill's expected share (weighted by recency)", "unit"),
    "skill_forgetting_weight": ("Practice gap of each of the question's skills (-log(1 + questions on other skills "
                                "since it was last practised); a longer gap lowers p)", "unit"),
}


def _response_lines(model: dict[str, Any]) -> list[str]:
    lines = ["", "## Response model of encoder 2", "", f"Form: `{model['form']}`; theta {_fmt(model['theta'])}, "
             f"T {_fmt(model['temperature'])}."]  # fmt: skip
    for name in ("guess", "slip"):
        if name in model:
            g = model[name]
            lines.append(f"{name.capitalize()} over skills: mean {_fmt(g['mean'])}, min {_fmt(g['min'])}, max {_fmt(g['max'])}.")
    for name in RECORD_WEIGHTS:
        if name in model:
            what, unit = _RECORD_TERMS[name]
            w = model[name]
            if "logit" in w:  # ability_in=logit
                lines.append(f"{what}: raises the logit of p by {_fmt(w['logit'])} per {unit}.")
            else:
                lines.append(f"{what}: raises the guess logit by {_fmt(w['guess'])} and lowers the slip logit by "
                             f"{_fmt(w['slip'])} per {unit}.")
    enc1 = model.get("share_predicted_wrong_enc1", {})
    lines += ["", "| split | steps with mastery < theta | steps with p < 0.5 | encoder 1: steps with p < 0.5 |",
              "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {sp} | {_fmt(share)} | {_fmt(model['share_predicted_wrong'][sp])} | {_fmt(enc1.get(sp))} |"
              for sp, share in model["share_below_theta"].items()]  # fmt: skip
    recalibrated = model.get("share_predicted_wrong_recalibrated")
    if recalibrated:
        lines += ["", f"Recalibrated on the validation split (Platt scaling, a statistic only), the test steps with "
                      f"p < 0.5 would be {_fmt(recalibrated['enc2'])} for encoder 2 and {_fmt(recalibrated['enc1'])} "
                      "for encoder 1: the share without each model's bias at 0.5, to read beside a reference's."]  # fmt: skip
    return lines


def _fmt(value: float | None, integral: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{int(value):,}" if integral else f"{value:.4f}"


def _detail(detail: Mapping[str, float | None]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {_fmt(v, v is not None and float(v).is_integer())}" for k, v in detail.items())


def _table(checks: list[dict[str, Any]], with_encoders: bool) -> list[str]:
    """Markdown rows: encoder 2's value (and interval), threshold, baseline, encoder 1, result."""
    head = "| # | check | encoder 2 | 95 % interval | threshold | baseline | encoder 1 | result |"
    if not with_encoders:
        head = "| # | check | value | 95 % interval | threshold | result |"
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for check in checks:
        count = check["id"] == 3  # a number of violations
        value = _fmt(check["value"], count) + (f" ({_detail(check['detail'])})" if check["detail"] else "")
        interval = "-" if not check["interval"] else "{:.4f} – {:.4f}".format(*check["interval"])
        threshold = f"{check['op']} {_fmt(float(check['threshold']), count)}"
        result = check["status"] if check["status"] != "failed" else "**failed**"
        result += f": {check['reason']}" if check["reason"] else ""
        if with_encoders:
            baseline = "-" if check["baseline"] is None else f"{_fmt(check['baseline'])} ({check['baseline_name']})"
            cells = [value, interval, threshold, baseline, _fmt(check["reference"]), result]
        else:
            cells = [value, interval, threshold, result]
        lines.append(f"| {check['id']} | {check['name']} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """verification.md: flags, the checks with their baselines, recovery, then the decision tree."""
    not_computable = f" ({report['checks_not_computable']} not computable)" if report["checks_not_computable"] else ""
    epochs = report.get("checkpoint_epochs")
    held = [f"The checkpoint holds encoder 1 from epoch {epochs['enc1']} and encoder 2 from epoch {epochs['enc2']}.",
            ""] if epochs else []  # fmt: skip
    lines = [
        "# Verification of encoder 2",
        "",
        f"The {report['rows']:,} scored interactions of the {report['students']:,} {report['split']} students "
        "(trajectories.csv). A check passes when encoder 2 meets its threshold and, where a trivial model "
        "scores the same statistic (the *baseline*), beats that model too. The interval resamples students "
        "(bootstrap); encoder 1's value on the same rows is shown for reference.",
        "",
        *held,
        f"**{report['checks_passed']} of {report['checks_total']} checks passed**{not_computable}",
        "",
    ]
    if report["degenerate"]:
        lines += ["**Degenerate learned parameters:**", ""] + [f"- {flag['message']}" for flag in report["degenerate"]] + [""]
    lines += _table(report["checks"], with_encoders=True)
    base = report["baselines"]
    lines += [
        "", "## Baselines", "",
        f"- **majority class**: always answering {'correct' if base['majority_class'] else 'incorrect'} is right on "
        f"{_fmt(base['majority_acc'])} of these rows.",
        "- **per-skill correct rate**: each skill's share of correct answers on the "
        + (f"{base['skill_rate_train_rows']:,} " if base["skill_rate_train_rows"] is not None else "")
        + f"training rows, combined over a question's skills as encoder 2 combines mastery (`{base['aggregate']}`): "
        f"AUC {_fmt(base['skill_rate_auc'])}, accuracy {_fmt(base['skill_rate_acc'])}.",
    ]
    if report["counterfactual"]:
        enc1, enc2 = report["counterfactual"]["enc1"], report["counterfactual"]["enc2"]
        lines += [
            "", "## Counterfactual responses (check 12)", "",
            f"{int(enc2['flips']):,} answers in {int(enc2['windows']):,} test windows were answered the other way, each "
            f"in its own copy of its window; the {int(enc2['pairs']):,} later steps that share a skill with a flipped "
            "answer were predicted again. Share of them whose prediction moved against the flip:", "",
            "| flip | encoder 2 | encoder 1 |", "|---|---|---|",
            f"| wrong → right (must not go down) | {_fmt(enc2['rate_wrong_to_right'])} | {_fmt(enc1['rate_wrong_to_right'])} |",
            f"| right → wrong (must not go up) | {_fmt(enc2['rate_right_to_wrong'])} | {_fmt(enc1['rate_right_to_wrong'])} |",
            f"| all | {_fmt(enc2['rate'])} | {_fmt(enc1['rate'])} |",
        ]  # fmt: skip
    if report.get("recovery"):
        lines += ["", "## Ground-truth recovery (synthetic data)", ""] + _table(report["recovery"], with_encoders=False)
        oracle = report.get("oracle")
        if oracle:
            lines += ["", f"AUC on these rows: the simulator's own probabilities (the oracle) {_fmt(oracle['auc'])}, "
                      f"encoder 2 {_fmt(oracle['enc2_auc'])}, encoder 1 {_fmt(oracle['enc1_auc'])}, the per-skill "
                      f"correct rate {_fmt(base['skill_rate_auc'])}."]  # fmt: skip
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
    model_options: dict[str, Any], counterfactual: Mapping[str, Mapping[str, float]] | None = None,
    skill_rate_train_rows: int | None = None, split: str = "test",
) -> dict[str, Any]:  # fmt: skip
    """The content of verification.json, from one split's rows, the learned parameters and the
    counterfactual statistics (``enc1``/``enc2``, see ``counterfactual.violations``)."""
    part = rows[rows["split"] == split]
    beta = np.asarray(params["beta"])
    checks = run_checks(part, beta, thresholds, counterfactual)
    recovery: list[CheckResult] = []
    if truth and "beta" in truth and "true_mastery_before" in part.columns:
        recovery = recovery_checks(part, beta, truth, thresholds, bootstrap(part, thresholds))
    response = part["response"].to_numpy()
    label, share = majority_class(response)
    baselines = {
        "majority_class": label, "majority_acc": share if len(part) else None,
        "skill_rate_auc": or_none(lambda: auc(part["skill_rate_prob"].to_numpy(), response)),
        "skill_rate_acc": accuracy(part["skill_rate_prob"].to_numpy(), response) if len(part) else None,
        "skill_rate_train_rows": skill_rate_train_rows, "aggregate": model_options.get("aggregate"),
    }  # fmt: skip
    by_id = {c.id: c for c in checks}
    report = {
        "split": split,
        "rows": len(part),
        "students": int(part["student"].nunique()),
        "checks": [c.to_dict() for c in checks],
        "recovery": [c.to_dict() for c in recovery],
        "baselines": baselines,
        "counterfactual": dict(counterfactual) if counterfactual else None,
        "degenerate": degenerate_parameters(params, part, thresholds),
        "checks_passed": sum(c.passed is True for c in checks),
        "checks_total": len(checks),
        "checks_not_computable": sum(c.passed is None for c in checks),
        "decision": decision(by_id[1].value, by_id[11].value, model_options),
        "response_model": params.get("response_model"),
        "checkpoint_epochs": params.get("checkpoint_epochs"),
    }
    if "true_prob" in part.columns:
        report["oracle"] = {name: or_none(lambda column=column: auc(part[column].to_numpy(), response)) for name, column
                            in (("auc", "true_prob"), ("enc2_auc", "enc2_prob"), ("enc1_auc", "enc1_prob"))}  # fmt: skip
    return report


def summary_entries(report: dict[str, Any]) -> dict[str, Any]:
    """What summary.json gets from verification: the counts, the baselines beside the encoders'
    test metrics, the oracle's AUC (synthetic data) and the names of degenerate parameters."""
    split, base = report["split"], report["baselines"]
    entries = {k: report[k] for k in ("checks_passed", "checks_total", "checks_not_computable")}
    entries.update({f"{split}/majority_acc": base["majority_acc"], f"{split}/skill_rate_auc": base["skill_rate_auc"],
                    f"{split}/skill_rate_acc": base["skill_rate_acc"]})  # fmt: skip
    if report.get("oracle"):
        entries[f"{split}/oracle_auc"] = report["oracle"]["auc"]
    entries["degenerate_parameters"] = [flag["parameter"] for flag in report["degenerate"]]
    model = report.get("response_model")
    if model:  # the response model's threshold and how much of the split it calls "not mastered"
        entries.update(theta=model["theta"], share_below_theta=model["share_below_theta"].get(split),
                       share_predicted_wrong=model["share_predicted_wrong"].get(split),
                       share_predicted_wrong_enc1=model.get("share_predicted_wrong_enc1", {}).get(split))  # fmt: skip
        if split == "test" and model.get("share_predicted_wrong_recalibrated"):
            entries.update(share_predicted_wrong_recalibrated=model["share_predicted_wrong_recalibrated"]["enc2"],
                           share_predicted_wrong_recalibrated_enc1=model["share_predicted_wrong_recalibrated"]["enc1"])  # fmt: skip
    return entries


def verify(
    rows: pd.DataFrame, params: dict[str, Any], out_dir: str | Path, thresholds: Thresholds,
    truth: dict[str, np.ndarray] | None, model_options: dict[str, Any],
    counterfactual: Mapping[str, Mapping[str, float]] | None = None, skill_rate_train_rows: int | None = None,
    metrics_csv: str | Path | None = None, plots: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Run the checks on ``rows`` (the trajectories of the validation and test splits) and write every
    verification output into ``out_dir``. Returns the summary entries (:func:`summary_entries`)."""
    folder = RunFolder(out_dir)
    params = {**params, "response_model": response_model(rows, params)}
    write_csv(rows, folder.trajectories)
    write_json_atomic(folder.parameters, params)
    report = verification_report(rows, params, thresholds, truth, model_options, counterfactual, skill_rate_train_rows)
    write_json_atomic(folder.verification_json, report)
    write_text_atomic(folder.verification_md, render_markdown(report))
    if plots:
        from gainakt.verification.plots import write_plots

        write_plots(rows, params, folder.plots, metrics_csv=metrics_csv, truth=truth,
                    min_rows_per_skill=thresholds.min_rows_per_skill, gain_std_threshold=thresholds.gain_std)  # fmt: skip
    print(f"Verification: {report['checks_passed']}/{report['checks_total']} checks passed "
          f"on {report['rows']} test rows; see {folder.verification_md}", flush=True)  # fmt: skip
    return summary_entries(report)
