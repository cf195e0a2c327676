"""Aggregate training throughput of the jobs of a sweep (``python -m gainakt.train -m ...``).

    python docs/gpu/sweep_throughput.py outputs/multirun/<date>/<time>_<id> [...]

Reads each job's ``summary.json`` (``throughput_epochs``: per epoch the start time, real training
interactions, training and validation seconds) and prints one JSON document per sweep folder: all
jobs' real training interactions over the wall time from the first epoch's start to the last
epoch's end, the jobs sharing the device over that time. One job gives its own rate the same way,
so the two compare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def aggregate(sweep: Path) -> dict:
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    epochs = [e for s in summaries for e in s.get("throughput_epochs", [])]
    if not epochs:
        return {"sweep": str(sweep), "jobs": len(summaries), "error": "no throughput_epochs in the summaries"}
    first = min(e["started"] for e in epochs)
    last = max(e["started"] + e["train_seconds"] + e["val_seconds"] for e in epochs)
    interactions = sum(e["interactions"] for e in epochs)
    return {
        "sweep": str(sweep),
        "jobs": len(summaries),
        "statuses": [s.get("status") for s in summaries],
        "epochs": len(epochs),
        "interactions": interactions,
        "wall_seconds": last - first,
        "aggregate_interactions_per_second": interactions / (last - first),
        "per_job_interactions_per_second": [s.get("interactions_per_second") for s in summaries],
    }


if __name__ == "__main__":
    print(json.dumps([aggregate(Path(arg)) for arg in sys.argv[1:]], indent=1))
