"""After testing, verify encoder 2 on all validation and test students and write the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from gainakt.verification.checks import Thresholds
from gainakt.model.module import GainAKTModule
from gainakt.verification.writers import verify

MODEL_OPTIONS = ("gains", "gains_head", "gains_init", "attention_bias", "accumulate", "aggregate", "im_target")


class Verification(L.Callback):
    """Runs :func:`gainakt.verification.verify` at the end of ``trainer.test``.

    ``train`` tests the best checkpoint, so the checks describe the model a user keeps; ``evaluate``
    tests the checkpoint it loads. Only global rank 0 extracts and writes. ``result`` holds the
    summary entries (``checks_passed``, ``checks_total``, ``checks_not_computable``) afterwards.

    Args:
        out_dir: folder that receives trajectories.csv, parameters.json, verification.{json,md}, plots/.
        thresholds: the checks' thresholds (config group ``checks``).
        metrics_csv: per-epoch metrics for the training-curve plot (skipped when absent).
        plots: draw the PNG plots.
    """

    def __init__(self, out_dir: str | Path, thresholds: Thresholds, metrics_csv: str | Path | None, plots: bool) -> None:
        self.out_dir = Path(out_dir)
        self.thresholds = thresholds
        self.metrics_csv = metrics_csv
        self.plots = plots
        self.result: dict[str, Any] | None = None

    def on_test_end(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        if not trainer.is_global_zero:
            return
        options = {k: pl_module.hparams[k] for k in MODEL_OPTIONS if k in pl_module.hparams}
        self.result = verify(pl_module.net, trainer.datamodule, self.out_dir, self.thresholds,
                             metrics_csv=self.metrics_csv, model_options=options, device=pl_module.device,
                             plots=self.plots)  # fmt: skip
