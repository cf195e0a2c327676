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
        extras.append(f"best epoch {summary['best_epoch']} of {summary.get('epochs_run', '?')}")
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
