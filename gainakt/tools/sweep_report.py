"""Turn a multirun folder into one table (``python -m gainakt.report <multirun folder> [--out DIR]``).

Reads each job's ``.hydra/overrides.yaml`` (what was swept) and ``summary.json`` (its metrics),
groups jobs by the swept values other than the repeats (``seed`` and ``data.fold``) and writes,
atomically, ``report.md``, ``report.csv`` (mean and std over the repeats of every metric, and their
number) and one PNG per swept parameter. Jobs that failed, never wrote a summary, or never started (expected from the
sweep's ``multirun.yaml`` but without a folder) are listed; the others are still reported.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from matplotlib.figure import Figure

from gainakt.run.config import override_key
from gainakt.errors import GainAKTError
from gainakt.run.folder import RunFolder
from gainakt.run.atomic import atomic_path, write_text_atomic
from gainakt.run.summary import METRIC_KEYS

# The issue-level numbers a sweep is read by; the test shares say how often encoder 2 calls a step
# "not mastered" (mastery < theta; p < 0.5) beside how often encoder 1 predicts it wrong.
MAIN_METRICS = ["test/enc1_auc", "test/enc2_auc", "val/enc1_auc", "val/enc2_auc", "val/gain_std", "val/gain_cv_skills", "theta",
                "share_below_theta", "share_predicted_wrong", "share_predicted_wrong_enc1", "share_predicted_wrong_recalibrated", "share_predicted_wrong_recalibrated_enc1"]
NOT_METRICS = {"seed", "status", "run_dir", "error"}
SEED_KEY = "seed"
FOLD_KEY = "data.fold"
REPEAT_KEYS = (SEED_KEY, FOLD_KEY)  # repeats of one configuration: averaged over, not compared


@dataclass
class Job:
    """One job of the sweep: its number, its overrides as key -> value text, and its summary."""

    name: str
    overrides: dict[str, str]
    summary: dict[str, Any] | None = None
    problem: str | None = None  # why it is not reported (failed, no summary, missing)

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class Report:
    jobs: list[Job]
    params: list[str]  # swept keys other than the repeats, in sweep order
    repeats: list[str]  # the swept repeat keys (seed, data.fold)
    metrics: list[str]
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["a.b=1", "+c=x"]`` -> ``{"a.b": "1", "c": "x"}`` (``+``/``++``/``~`` prefixes dropped)."""
    return {override_key(item): item.partition("=")[2] for item in items}


def expected_jobs(sweep_dir: Path) -> list[dict[str, str]] | None:
    """The jobs the basic sweeper launched, in job-number order, from ``multirun.yaml`` (None if unknown)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = (yaml.safe_load(path.read_text()) or {}).get("hydra", {})
    params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list((hydra_cfg.get("overrides") or {}).get("task") or [])
    try:
        parsed = OverridesParser.create().parse_overrides(arguments)
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception:  # another sweeper's syntax: fall back to the folders present
        return None
    return [parse_overrides(list(job)) for batch in batches for job in batch]


def _job_number(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (sys.maxsize, path.name)


def _is_run(path: Path) -> bool:
    folder = RunFolder(path)
    return path.is_dir() and (folder.overrides.parent.is_dir() or folder.summary.is_file())


def job_folders(sweep_dir: Path) -> list[Path]:
    """The runs to report: a sweep's job folders (its subfolders holding a run); else the run
    folders anywhere below it, as in ``outputs/runs/<date>/<time>_<id>``; else the folder itself
    when it is one run."""
    jobs = [p for p in sweep_dir.iterdir() if _is_run(p)]
    if not jobs:
        found = {p.parent for name in ("summary.json", ".hydra") for p in sweep_dir.rglob(name)}
        jobs = [p for p in found if _is_run(p) and p != sweep_dir]
    if not jobs and _is_run(sweep_dir):
        jobs = [sweep_dir]
    return jobs


def load_jobs(sweep_dir: Path) -> tuple[list[Job], bool]:
    """Every job folder (:func:`job_folders`) plus the sweep's expected jobs without one."""
    folders = sorted(job_folders(sweep_dir), key=lambda p: (_job_number(p), str(p)))
    expected = expected_jobs(sweep_dir)
    jobs = []
    for folder in folders:
        overrides_file = RunFolder(folder).overrides
        overrides = {}
        if overrides_file.is_file():
            overrides = parse_overrides(yaml.safe_load(overrides_file.read_text()) or [])
        if not overrides and expected is not None and folder.name.isdigit() and int(folder.name) < len(expected):
            overrides = expected[int(folder.name)]
        job = Job(name=folder.name if folder == sweep_dir else str(folder.relative_to(sweep_dir)), overrides=overrides)
        summary_file = RunFolder(folder).summary
        if not summary_file.is_file():
            job.problem = "no summary.json (still running, killed, or crashed before writing it)"
        else:
            try:
                job.summary = json.loads(summary_file.read_text())
            except json.JSONDecodeError as exc:
                job.problem = f"unreadable summary.json: {exc}"
            else:
                if job.summary.get("status") != "completed":
                    reason = job.summary.get("error", "no error message")
                    job.problem = f"status {job.summary.get('status', '?')}: {reason}"
        jobs.append(job)
    if expected is not None:
        present = {job.name for job in jobs}
        for number, overrides in enumerate(expected):
            if str(number) not in present:
                jobs.append(Job(name=str(number), overrides=overrides, problem="missing: no job folder"))
    return jobs, expected is not None


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in the order they first appear."""
    order: dict[str, None] = {}
    for job in jobs:
        order.update(dict.fromkeys(job.overrides))
    return [k for k in order if len({job.overrides.get(k) for job in jobs}) > 1]


def _sort_value(text: str | None) -> tuple[int, float, str]:
    """Numbers in numeric order before text; missing last."""
    if text is None:
        return (2, 0.0, "")
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def metric_names(jobs: list[Job]) -> list[str]:
    """Numeric summary fields of the completed jobs: AUC/accuracy first, then monitors, then the rest."""
    names: dict[str, None] = {}
    for job in jobs:
        if job.ok and job.summary:
            for key, value in job.summary.items():
                if key not in NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool):
                    names[key] = None
    rank = {key: i for i, key in enumerate(METRIC_KEYS)}
    return sorted(names, key=lambda k: (0, rank[k], k) if k in rank else (1 if "/" in k else 2, 0, k))


def aggregate(jobs: list[Job], params: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per configuration: parameter values, n_runs (completed repeats), seeds, folds, then
    <metric>_mean / <metric>_std over those runs."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.overrides.get(p) for p in params), []).append(job)
    rows = []
    for key in sorted(groups, key=lambda values: [_sort_value(v) for v in values]):
        done = [job for job in groups[key] if job.ok]
        row: dict[str, Any] = {p: (v if v is not None else "-") for p, v in zip(params, key)}
        row["n_runs"] = len(done)
        row["seeds"] = " ".join(str(job.summary.get(SEED_KEY, "?")) for job in done)
        row["folds"] = " ".join(job.overrides.get(FOLD_KEY, "-") for job in done)
        row["n_failed"] = len(groups[key]) - len(done)
        for metric in metrics:
            values = pd.Series([job.summary.get(metric) for job in done], dtype="float64").dropna()
            row[f"{metric}_mean"] = values.mean() if len(values) else math.nan
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def build_report(sweep_dir: Path) -> Report:
    if not sweep_dir.is_dir():
        raise GainAKTError(f"{sweep_dir}: not a folder (expected a multirun folder holding job folders 0, 1, ...)")
    jobs, expected_known = load_jobs(sweep_dir)
    if not jobs:
        raise GainAKTError(f"{sweep_dir}: no run found (expected a multirun folder, a folder of run folders or a run folder: "
                           "folders with .hydra/ or summary.json)")
    keys = swept_keys(jobs)
    params = [k for k in keys if k not in REPEAT_KEYS]
    metrics = metric_names(jobs)
    report = Report(jobs, params, [k for k in REPEAT_KEYS if k in keys], metrics, aggregate(jobs, params, metrics))
    if not expected_known:
        report.notes.append("no readable multirun.yaml: jobs that never started cannot be detected")
    return report


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _plot_name(param: str) -> str:
    return "plot_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", param) + ".png"


def render_markdown(report: Report, sweep_dir: Path, plots: list[str]) -> str:
    failed = [job for job in report.jobs if not job.ok]
    done = len(report.jobs) - len(failed)
    out = io.StringIO()
    out.write(f"# Sweep report\n\nFolder: `{sweep_dir}`\n\n")
    out.write(f"{len(report.jobs)} jobs: {done} completed, {len(failed)} failed or missing.\n")
    over = " and ".join({"seed": "seeds", FOLD_KEY: "folds (data.fold)"}[k] for k in report.repeats)
    swept = ", ".join(f"`{p}`" for p in report.params) or (f"nothing but the {over}" if over else "nothing")
    values = f"mean ± std over {over}" if over else "one run per configuration (neither seed nor data.fold swept)"
    out.write(f"Swept: {swept}; rows are configurations, values are {values}; `runs` counts them.\n")
    for note in report.notes:
        out.write(f"\nNote: {note}.\n")
    shown = [m for m in MAIN_METRICS if m in report.metrics]
    header = [*report.params, "runs", *shown]
    out.write("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
    for _, row in report.table.iterrows():
        cells = [str(row[p]) for p in report.params] + [str(row["n_runs"])]
        cells += [_cell(row[f"{m}_mean"], row[f"{m}_std"]) for m in shown]
        out.write("| " + " | ".join(cells) + " |\n")
    out.write("\nEvery metric (including epochs, timing and all gain statistics) is in `report.csv`.\n")
    out.write("\n## Failed or missing jobs\n\n")
    if failed:
        out.write("| job | overrides | problem |\n|---|---|---|\n")
        for job in sorted(failed, key=lambda j: _job_number(Path(j.name))):
            overrides = " ".join(f"{k}={v}" for k, v in job.overrides.items())
            problem = job.problem.replace("|", "\\|").replace("\n", " ")
            out.write(f"| {job.name} | `{overrides}` | {problem} |\n")
    else:
        out.write("None: every job completed.\n")
    if plots:
        out.write("\n## Plots\n\n" + "".join(f"![{p}]({p})\n" for p in plots))
    return out.getvalue()


def plot_param(report: Report, param: str, path: Path) -> None:
    """Main metrics against ``param``: mean ± std over the repeats, one line per setting of the other params."""
    table = report.table[report.table["n_runs"] > 0]
    shown = [m for m in MAIN_METRICS if m in report.metrics]
    others = [p for p in report.params if p != param]
    levels = sorted(table[param].unique(), key=_sort_value)
    numeric = all(_sort_value(v)[0] == 0 for v in levels)
    position = {v: (float(v) if numeric else i) for i, v in enumerate(levels)}
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    series = table.groupby(others, sort=True) if others else [((), table)]
    for ax, metric in zip(axes.flat, shown):
        for label, part in series:
            part = part.sort_values(param, key=lambda s: s.map(_sort_value))
            x = [position[v] for v in part[param]]
            name = ", ".join(f"{p}={v}" for p, v in zip(others, label if isinstance(label, tuple) else (label,)))
            std = part[f"{metric}_std"].fillna(0.0)
            ax.errorbar(x, part[f"{metric}_mean"], yerr=std, marker="o", capsize=3, label=name or None)
        ax.set_title(metric)
        ax.set_xlabel(param)
        if not numeric:
            ax.set_xticks(list(position.values()), [str(v) for v in levels])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    if others:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"mean ± std over {' and '.join(report.repeats) or 'one run'} against {param}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> Report:
    """Build the report of ``sweep_dir`` and write report.md, report.csv and the plots to ``out_dir``."""
    sweep_dir = Path(sweep_dir)
    report = build_report(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir
    plots = []
    if (report.table["n_runs"] > 0).any() and any(m in report.metrics for m in MAIN_METRICS):
        for param in report.params:
            plot_param(report, param, out / _plot_name(param))
            plots.append(_plot_name(param))
    write_text_atomic(out / "report.csv", report.table.to_csv(index=False))
    write_text_atomic(out / "report.md", render_markdown(report, sweep_dir, plots))
    return report
