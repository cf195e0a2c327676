"""Dataset statistics: ``python -m gainakt.data.stats data=<name> data.root=<folder> [data.fold=k]``.

Reads the data exactly as training does (same config, reader, cache and split) and prints what a
paper's dataset table reports, plus what the reader dropped or merged and the split sizes.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from hydra.utils import instantiate

from gainakt.run.config import compose_config
from gainakt.data.datamodule import KTDataModule
from gainakt.data.loading import AUTO, detect_format
from gainakt.data.protocol import SPLITS
from gainakt.data.qmatrix import q_matrix
from gainakt.errors import GainAKTError

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


def dataset_stats(datamodule: KTDataModule) -> dict[str, Any]:
    """Counts of the whole dataset and of each split of the chosen fold (before windowing)."""
    datamodule.setup("fit")
    data = datamodule.data
    assert data is not None
    lengths = data.lengths
    skills_per_row = (data.skills >= 0).sum(axis=1)
    q = q_matrix(data)
    stats: dict[str, Any] = {
        "format": detect_format(datamodule.root) if datamodule.format == AUTO else datamodule.format,
        "students": data.num_students,
        "interactions": data.num_interactions,
        "skills": data.num_skills,
        "problems": data.num_problems,
        "correct_rate": float(data.responses.mean()),
        "multi_skill_interactions": int((skills_per_row > 1).sum()),
        "multi_skill_problems": int((q.sum(axis=1) > 1).sum()) if data.problems is not None else 0,
        "length_mean": float(lengths.mean()),
        "length_quantiles": {f"q{int(100 * p)}": float(np.quantile(lengths, p)) for p in QUANTILES},
        "adjusted": dict(data.adjusted),
        "fold": datamodule.fold,
        "splits": {},
    }
    for split in SPLITS:
        students = datamodule.students[split]
        windows = datamodule.datasets[split].windows
        stats["splits"][split] = {
            "students": len(students),
            "interactions": int(lengths[students].sum()),
            "windows": len(windows),
            "window_interactions": windows.num_interactions,
        }
    return stats


def format_stats(stats: dict[str, Any], root: str | None) -> str:
    q = stats["length_quantiles"]
    lines = [
        f"dataset            {root} (format {stats['format']})",
        f"students           {stats['students']:,}",
        f"interactions       {stats['interactions']:,}",
        f"skills             {stats['skills']:,}",
        f"problems           {stats['problems']:,}" + ("" if stats["problems"] else " (no problem ids)"),
        f"correct rate       {stats['correct_rate']:.4f}",
        f"multi-skill        {stats['multi_skill_interactions']:,} interactions, "
        f"{stats['multi_skill_problems']:,} problems",
        f"sequence length    mean {stats['length_mean']:.1f}; "
        + ", ".join(f"{k} {v:g}" for k, v in q.items()),
    ]
    for reason, count in stats["adjusted"].items():
        lines.append(f"reader adjusted    {reason.replace('_', ' ')}: {count:,}")
    merged = stats["adjusted"].get("skill_rows_merged", 0)
    if merged:
        lines.append(
            f"source rows        {stats['interactions'] + merged:,} "
            "(data.reader.merge_skill_rows=false reads them unmerged)"
        )
    lines.append(f"split (data.fold={stats['fold']}): students / interactions / windows kept (interactions)")
    for split, s in stats["splits"].items():
        lines.append(
            f"  {split:<5}            {s['students']:,} / {s['interactions']:,} / "
            f"{s['windows']:,} ({s['window_interactions']:,})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    cfg = compose_config("config", list(sys.argv[1:] if argv is None else argv))
    try:
        datamodule = instantiate(cfg.data)
        print(format_stats(dataset_stats(datamodule), cfg.data.root), flush=True)
    except GainAKTError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
