"""The run summary: what goes into ``summary.json`` and the table printed at the end."""

from __future__ import annotations

from typing import Any

METRIC_KEYS = [f"{split}/{enc}_{metric}" for split in ("val", "test") for enc in ("enc1", "enc2") for metric in ("auc", "acc")]
METRIC_KEYS.insert(4, "val/mean_auc")  # the mean of both encoders' validation AUCs (a checkpoint monitor)
# Validation-time monitors (gain statistics, check 3) copied from the held epoch into the summary.
MONITOR_PREFIXES = ("val/gain_", "val/monotonicity_")


def epoch_row(rows: list[dict[str, float]], epoch: int) -> dict[str, float] | None:
    """The validation row of ``epoch`` (the epoch whose weights a checkpoint holds), or None."""
    return next((row for row in rows if int(row["epoch"]) == epoch and any(k.startswith("val/") for k in row)), None)


def held_epoch_values(rows: list[dict[str, float]], held: dict[str, int]) -> dict[str, float]:
    """The summary's validation values for a checkpoint that holds encoder ``enc`` at epoch
    ``held[enc]`` (``metrics.csv`` rows): each encoder's metrics from its own epoch's row, the
    monitors (encoder 2's gain statistics, check 3) from encoder 2's, ``val/mean_auc`` the mean of
    the two AUCs held; ``best_epoch`` is the epoch the checkpoint was written (the later of the two),
    ``best_epoch_enc1``/``best_epoch_enc2`` each encoder's."""
    found = {enc: epoch_row(rows, epoch) for enc, epoch in held.items()}
    if any(row is None for row in found.values()):
        return {}
    values: dict[str, float] = {"best_epoch": max(held.values())}
    for enc, row in found.items():
        values[f"best_epoch_{enc}"] = held[enc]
        values.update({k: v for k, v in row.items() if k.startswith(f"val/{enc}_") and k in METRIC_KEYS})
    values.update({k: v for k, v in found["enc2"].items() if k.startswith(MONITOR_PREFIXES)})
    aucs = [values.get(f"val/{enc}_auc") for enc in held]
    if None not in aucs:
        values["val/mean_auc"] = sum(aucs) / len(aucs)
    return values


def format_table(summary: dict[str, Any]) -> str:
    """A few lines: AUC and accuracy per split and encoder (no table when there are none yet), then timing."""
    lines = []
    for split in ("val", "test"):
        for enc in ("enc1", "enc2"):
            auc, acc = summary.get(f"{split}/{enc}_auc"), summary.get(f"{split}/{enc}_acc")
            if auc is None and acc is None:
                continue
            lines.append(f"{split + ' ' + enc:10}{_fmt(auc):>8}{_fmt(acc):>8}")
    if lines:
        lines.insert(0, f"{'':10}{'AUC':>8}{'ACC':>8}")
    extras = []
    if "best_epoch" in summary:
        epochs = {summary.get(f"best_epoch_{enc}", summary["best_epoch"]) for enc in ("enc1", "enc2")}
        held = (f"best epoch {summary['best_epoch']}" if len(epochs) == 1
                else f"best epochs enc1 {summary['best_epoch_enc1']}, enc2 {summary['best_epoch_enc2']}")  # fmt: skip
        extras.append(f"{held} of {summary.get('epochs_run', '?')}")
    if summary.get("train_seconds"):
        extras.append(f"{summary['train_seconds']:.1f} s training")
    if summary.get("interactions_per_second"):
        extras.append(f"{summary['interactions_per_second']:,.0f} interactions/s")
    if extras:
        lines.append(", ".join(extras))
    if "checks_total" in summary:
        lines.append(f"verification: {summary['checks_passed']}/{summary['checks_total']} checks passed (verification.md)")
    lines.append(f"status: {summary.get('status', '?')}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
