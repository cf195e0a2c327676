"""The run folder as one object: the only place that knows what each file of a run is called.

Training runs, evaluation folders and sweep jobs share the layout; commands, callbacks, the
config (through the ``${gainakt_path:<run_dir>,<name>}`` resolver) and the sweep report ask a
:class:`RunFolder` for a path instead of spelling the file name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gainakt.run.atomic import write_json_atomic, write_text_atomic

BEST_CHECKPOINT = "best"  # ModelCheckpoint's filename (without .ckpt) of the selected checkpoint
LAST_CHECKPOINT = "last"  # Lightning's fixed name of the last checkpoint


class RunFolder:
    """A run (or evaluation) folder; each property is the path of one of its files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml", doc="the resolved configuration")
    summary = property(lambda self: self.root / "summary.json", doc="status, metrics and timings")
    attempt = property(lambda self: self.root / "summary.attempt.json",
                       doc="the last resume attempt that ended without replacing the summary (see RunLifecycle)")
    metrics_csv = property(lambda self: self.root / "metrics.csv", doc="one row per epoch")
    checkpoints = property(lambda self: self.root / "checkpoints", doc="folder of the checkpoints")
    best_ckpt = property(lambda self: self.checkpoints / f"{BEST_CHECKPOINT}.ckpt", doc="the selected checkpoint")
    last_ckpt = property(lambda self: self.checkpoints / f"{LAST_CHECKPOINT}.ckpt", doc="the state to resume from")
    tensorboard = property(lambda self: self.root / "tensorboard", doc="TensorBoard event files")
    log = property(lambda self: self.root / "train.log", doc="what the run printed (Hydra's job log of gainakt.train)")
    evaluation_log = property(lambda self: self.root / "evaluate.log", doc="what an evaluation printed")
    trajectories = property(lambda self: self.root / "trajectories.csv", doc="one row per scored interaction")
    parameters = property(lambda self: self.root / "parameters.json", doc="the learned curve parameters")
    verification_json = property(lambda self: self.root / "verification.json", doc="the checks")
    verification_md = property(lambda self: self.root / "verification.md", doc="the checks, for reading")
    plots = property(lambda self: self.root / "plots", doc="folder of the PNG plots")
    overrides = property(lambda self: self.root / ".hydra" / "overrides.yaml",
                         doc="Hydra's record of the command line (resume, rerun, the sweep report)")  # fmt: skip
    bench = property(lambda self: self.root / "bench.json", doc="the benchmark's JSON document")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    @classmethod
    def of_checkpoint(cls, ckpt: str | Path) -> RunFolder | None:
        """The run folder holding ``ckpt`` in its ``checkpoints/``, if the checkpoint sits there."""
        ckpt = Path(ckpt)
        return cls(ckpt.parent.parent) if ckpt.parent.name == "checkpoints" else None

    def write_config(self, cfg: Any) -> None:
        write_text_atomic(self.config, OmegaConf.to_yaml(cfg, resolve=True))

    def read_summary(self) -> dict[str, Any] | None:
        """The summary, or None when there is none (or it cannot be read)."""
        try:
            return json.loads(self.summary.read_text())
        except (OSError, ValueError):
            return None

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.summary, summary)

    def write_attempt(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.attempt, summary)


def path_resolver(run_dir: str, name: str) -> str:
    """``${gainakt_path:${run_dir},last_ckpt}`` in YAML: the path of one of a run folder's files."""
    return str(getattr(RunFolder(run_dir), name))
