"""PNG plots of a verified model, drawn from the trajectories table (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gainakt.verification.checks import NotComputable, learned_rates, per_skill_rows, spearman
from gainakt.run.epoch_csv import read_epoch_rows
from gainakt.run.atomic import atomic_path

STUDENTS_SHOWN = 4
SKILLS_PER_STUDENT = 4
SKILLS_IN_BOXPLOT = 30


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def mastery_curves(rows: pd.DataFrame, path: Path) -> None:
    _save(mastery_curves_figure(rows), path)


def mastery_curves_figure(rows: pd.DataFrame) -> Figure:
    """A few students (the longest sequences): mastery of their most practised skills over steps.

    Each skill's curve is a step function of its mastery after every attempt (mastery does not move
    between attempts); markers sit at the attempts, filled for a correct answer, hollow otherwise.
    A dotted line marks where a student's next window starts (the caption explains it only then).
    """
    students = rows["student"].value_counts().index[:STUDENTS_SHOWN]
    window_starts = 0
    fig = Figure(figsize=(10, 2.6 * len(students)))
    axes = fig.subplots(len(students), 1, squeeze=False)
    for ax, student in zip(axes[:, 0], students):
        own = rows[rows["student"] == student]
        for number, skill in enumerate(own["skill"].value_counts().index[:SKILLS_PER_STUDENT]):
            attempts = own[own["skill"] == skill]
            color = f"C{number}"
            for count, (_, part) in enumerate(attempts.groupby("window")):  # windows are separate model inputs
                ax.plot(part["step"], part["mastery_after"], "-", lw=1.2, drawstyle="steps-post", color=color,
                        label=None if count else f"skill {skill}")  # fmt: skip
            for correct, face in ((1, color), (0, "white")):
                hit = attempts[attempts["response"] == correct]
                ax.scatter(hit["step"], hit["mastery_after"], s=22, facecolors=face, edgecolors=color, zorder=3)
        starts = own.groupby("window")["step"].min().to_numpy()[1:] - 1
        for start in starts:  # the model restarts each window from zero practice
            ax.axvline(start, color="grey", ls=":", lw=1)
        window_starts += len(starts)
        ax.set_title(f"student {student}", fontsize=10)
        ax.set_ylabel("mastery")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, loc="upper left", ncol=SKILLS_PER_STUDENT)
    dotted = "; dotted: a new window starts from zero practice" if window_starts else ""
    axes[-1, 0].set_xlabel(f"step (filled marker: correct, hollow: incorrect{dotted})")
    return fig


def gain_distribution(rows: pd.DataFrame, path: Path, min_rows: int) -> None:
    """Box plot of the per-step gains of each skill (the most practised skills, by median)."""
    exploded = per_skill_rows(rows)
    counts = exploded["skill_id"].value_counts()
    skills = counts[counts >= min_rows].index[:SKILLS_IN_BOXPLOT]
    groups = {s: exploded.loc[exploded["skill_id"] == s, "gain"].to_numpy() for s in skills}
    order = sorted(groups, key=lambda s: np.median(groups[s]))
    fig = Figure(figsize=(max(6, 0.35 * len(order) + 2), 4))
    ax = fig.subplots()
    if order:
        ax.boxplot([groups[s] for s in order], showfliers=False)
        ax.set_xticks(range(1, len(order) + 1), [str(s) for s in order], rotation=90, fontsize=8)
    ax.set_xlabel(f"skill (the {len(order)} most practised, by median gain)")
    ax.set_ylabel("gain per attempt")
    ax.set_title(f"Gains per skill ({rows['split'].iloc[0]} rows; gain std {rows['gain'].std(ddof=0):.4f})")
    _save(fig, path)


def gain_by_response(rows: pd.DataFrame, path: Path) -> None:
    """Mean gain after a correct and after an incorrect answer, with 95 % intervals of the mean."""
    fig = Figure(figsize=(4.5, 4))
    ax = fig.subplots()
    labels, means, errors = [], [], []
    for response, label in ((1, "after correct"), (0, "after incorrect")):
        gain = rows.loc[rows["response"] == response, "gain"].to_numpy(np.float64)
        labels.append(f"{label}\n(n={len(gain)})")
        means.append(gain.mean() if len(gain) else np.nan)
        errors.append(1.96 * gain.std() / np.sqrt(len(gain)) if len(gain) > 1 else 0.0)
    ax.bar(labels, means, yerr=errors, color=["tab:green", "tab:red"], capsize=6)
    ratio = means[0] / means[1] if means[1] else np.nan
    ax.set_ylabel("mean gain")
    ax.set_title(f"Gain by response (ratio {ratio:.3f})")
    _save(fig, path)


def training_curves(metrics_csv: Path, path: Path, gain_std_threshold: float = 0.05) -> bool:
    """Draws :func:`training_curves_figure` of ``metrics_csv``; False when it holds no epoch."""
    epochs = read_epoch_rows(metrics_csv)
    if not epochs:
        return False
    _save(training_curves_figure(pd.DataFrame(epochs), gain_std_threshold), path)
    return True


def training_curves_figure(frame: pd.DataFrame, gain_std_threshold: float) -> Figure:
    """Per epoch: both encoders' validation AUC and, when logged (``val/gain_std``), the gain std.

    The epoch axis spans half an epoch either side of the epochs run, so its ticks are whole epochs
    even for a single one.
    """
    has_std = "val/gain_std" in frame.columns
    fig = Figure(figsize=(11 if has_std else 6, 4))
    axes = fig.subplots(1, 2 if has_std else 1, squeeze=False)
    ax = axes[0, 0]
    for key, label in (("val/enc1_auc", "encoder 1"), ("val/enc2_auc", "encoder 2")):
        if key in frame.columns:
            ax.plot(frame["epoch"], frame[key], "o-", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation AUC")
    ax.set_title("AUC per epoch" + ("" if has_std else "\n(gain std not logged: no val/gain_std in metrics.csv)"), fontsize=10)
    ax.legend()
    if has_std:
        ax = axes[0, 1]
        ax.plot(frame["epoch"], frame["val/gain_std"], "o-", color="tab:purple")
        ax.axhline(gain_std_threshold, ls="--", color="grey", lw=1, label="check 1 threshold")
        ax.set_xlabel("epoch")
        ax.set_ylabel("gain std (validation)")
        ax.set_title("Gain std per epoch", fontsize=10)
        ax.legend()
    for ax in axes[0]:
        ax.set_xlim(frame["epoch"].min() - 0.5, frame["epoch"].max() + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    return fig


def learned_vs_true_rates(rows: pd.DataFrame, beta: np.ndarray, true_beta: np.ndarray, path: Path, min_rows: int) -> None:
    """Synthetic data: each skill's learned rate (beta x mean gain) against the simulator's beta."""
    rates = learned_rates(rows, beta, min_rows)
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    x = true_beta[rates.index.to_numpy()]
    ax.scatter(x, rates.to_numpy())
    for skill, xi, yi in zip(rates.index, x, rates.to_numpy()):
        ax.annotate(str(skill), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("true learning rate beta (simulator)")
    ax.set_ylabel("learned rate: beta x mean gain")
    try:
        rho = f"Spearman {spearman(rates.to_numpy(), x):.3f}"
    except NotComputable as exc:
        rho = str(exc)
    ax.set_title(f"Per-skill learning rates ({rho})", fontsize=10)
    _save(fig, path)


def write_plots(
    rows: pd.DataFrame, params: dict[str, Any], out_dir: Path, metrics_csv: str | Path | None = None,
    truth: dict[str, np.ndarray] | None = None, min_rows_per_skill: int = 5, gain_std_threshold: float = 0.05,
) -> list[Path]:  # fmt: skip
    """Every plot that the available inputs allow, on the test rows (as the checks); returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    rows = rows[rows["split"] == "test"]
    if len(rows):
        for name, draw in (
            ("mastery_curves.png", lambda p: mastery_curves(rows, p)),
            ("gain_distribution.png", lambda p: gain_distribution(rows, p, min_rows_per_skill)),
            ("gain_by_response.png", lambda p: gain_by_response(rows, p)),
        ):
            draw(out_dir / name)
            written.append(out_dir / name)
        if truth and "beta" in truth:
            path = out_dir / "learned_vs_true_rates.png"
            learned_vs_true_rates(rows, np.asarray(params["beta"]), np.asarray(truth["beta"]), path, min_rows_per_skill)
            written.append(path)
    if metrics_csv is not None and Path(metrics_csv).is_file():
        path = out_dir / "training_curves.png"
        if training_curves(Path(metrics_csv), path, gain_std_threshold):
            written.append(path)
    return written
