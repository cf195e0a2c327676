"""After testing, verify encoder 2 on all validation and test students and write the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from gainakt.callbacks.checkpoint import held_epochs
from gainakt.data.datamodule import KTDataModule
from gainakt.errors import ConfigError
from gainakt.model.module import GainAKTModule
from gainakt.verification import counterfactual
from gainakt.verification.baselines import fit_on_windows
from gainakt.verification.checks import Thresholds
from gainakt.verification.trajectories import concatenate, length_ordered_loader, parameters, to_frame
from gainakt.verification.writers import verify

MODEL_OPTIONS = ("gains", "gains_head", "gains_init", "attention_bias", "accumulate", "aggregate", "im_target",
                 "mastery_weight")
SPLITS = ("val", "test")  # the splits whose trajectories are written; the checks read the test rows


class Verification(L.Callback):
    """Verifies the model through one pass of Lightning's predict loop, on the device and in the
    precision that ``test`` used.

    ``run`` hands the trainer the predict loaders of :meth:`dataloaders` — the windows of each
    split in :data:`SPLITS`, then the counterfactual copies of a sample of test windows — and
    the hooks collect ``GainAKTModule.predict_step``'s rows; at the end of the loop global rank 0
    fits the per-skill baseline on the training rows, runs the checks and writes the files
    (:func:`gainakt.verification.writers.verify`). ``result`` holds the summary entries afterwards.
    ``train`` verifies the best checkpoint (the model a user keeps); ``evaluate`` the one it loads.

    Args:
        out_dir: folder that receives trajectories.csv, parameters.json, verification.{json,md}, plots/.
        thresholds: the checks' settings (config group ``checks``).
        metrics_csv: per-epoch metrics for the training-curve plot (skipped when absent).
        plots: draw the PNG plots.
    """

    def __init__(self, out_dir: str | Path, thresholds: Thresholds, metrics_csv: str | Path | None, plots: bool) -> None:
        self.out_dir = Path(out_dir)
        self.thresholds = thresholds
        self.metrics_csv = metrics_csv
        self.plots = plots
        self.result: dict[str, Any] | None = None
        self._parts: list[list[dict[str, np.ndarray]]] | None = None  # per loader; None: not verifying
        self._datamodule: KTDataModule | None = None
        self._sample: np.ndarray | None = None
        self._copies: counterfactual.FlippedCopies | None = None

    def run(
        self, trainer: L.Trainer, model: GainAKTModule, datamodule: KTDataModule, ckpt_path: str | None = None
    ) -> dict[str, Any] | None:
        """Verify ``model`` (the weights of ``ckpt_path`` when given) and return the summary entries."""
        trainer.predict(model, dataloaders=self.dataloaders(datamodule), ckpt_path=ckpt_path, return_predictions=False)
        return self.result

    def dataloaders(self, datamodule: KTDataModule) -> list[DataLoader]:
        """The predict loaders (one per split, then the counterfactual copies); arms the hooks."""
        self._datamodule = datamodule
        size = datamodule.eval_batch_size
        loaders = []
        for split in SPLITS:
            dataset = datamodule.datasets[split]
            print(f"Trajectories: {split} split, {len(dataset)} windows, "
                  f"{dataset.windows.num_interactions} interactions", flush=True)  # fmt: skip
            loaders.append(length_ordered_loader(dataset.collate, dataset.windows.length, size))
        test = datamodule.datasets["test"]
        wanted = self.thresholds.counterfactual_windows
        self._sample = counterfactual.sample_windows(len(test), wanted, self.thresholds.seed) if wanted != 0 else None
        self._copies = None
        if self._sample is not None and len(self._sample):
            batch = test.collate(self._sample.tolist())
            self._copies = counterfactual.flipped_copies(batch, self.thresholds.counterfactual_flips, self.thresholds.seed)
            print(f"Counterfactual: {len(self._copies)} one-answer flips in {len(self._sample)} test windows",
                  flush=True)  # fmt: skip
            if len(self._copies):
                loaders.append(length_ordered_loader(self._copies.collate, self._copies.length, size))
        self._parts = [[] for _ in loaders]
        return loaders

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._parts is not None:
            self._parts[dataloader_idx].append({name: value.numpy() for name, value in outputs.items()})

    def on_predict_end(self, trainer: L.Trainer, pl_module: GainAKTModule) -> None:
        if self._parts is None:
            return
        parts, self._parts = [concatenate(p) for p in self._parts], None
        if not trainer.is_global_zero:
            return
        datamodule, net = self._datamodule, pl_module.net
        assert datamodule is not None and datamodule.data is not None
        for cols, split in zip(parts, SPLITS):
            windows = datamodule.datasets[split].windows
            expected, got = windows.num_interactions - len(windows), len(cols.get("window", ()))
            if got != expected:
                raise ConfigError(
                    f"verification predicted {got} of the {expected} scored {split} interactions: it needs every "
                    "window, so keep trainer.limit_predict_batches at 1.0 and, on several devices, "
                    "trainer.use_distributed_sampler=false (as conf/trainer/ddp.yaml sets it)"
                )
        table = fit_on_windows(datamodule.data, datamodule.datasets["train"].windows)
        frames = [to_frame(cols, datamodule, split, table, net.aggregate) for cols, split in zip(parts, SPLITS)]
        options = {k: pl_module.hparams[k] for k in MODEL_OPTIONS if k in pl_module.hparams}
        params = parameters(net)
        if datamodule.data.skill_ids is not None:
            params["skill_ids"] = datamodule.data.skill_ids.tolist()  # the dataset's id of each skill index
        if trainer.ckpt_path:  # the epoch of each encoder's weights (they may differ: RunCheckpoint)
            params["checkpoint_epochs"] = held_epochs(torch.load(trainer.ckpt_path, map_location="cpu",
                                                                 weights_only=False, mmap=True))  # fmt: skip
        self.result = verify(
            pd.concat(frames, ignore_index=True), params, self.out_dir, self.thresholds, datamodule.data.truth or None,
            {**params["options"], **options}, counterfactual=self._counterfactual(parts),
            skill_rate_train_rows=table.num_rows, metrics_csv=self.metrics_csv, plots=self.plots,
        )  # fmt: skip

    def _counterfactual(self, parts: list[dict[str, np.ndarray]]) -> dict[str, dict[str, float]] | None:
        """Both encoders' violation rates, from the test rows of the sampled windows and the copies' rows."""
        if self._copies is None:
            return None
        copies = self._copies
        test, flipped_rows = parts[SPLITS.index("test")], parts[-1] if len(copies) else {}
        original_steps = int(self._datamodule.datasets["test"].windows.length[self._sample].max())
        out = {}
        for encoder in ("enc1", "enc2"):
            column = f"{encoder}_prob"
            original = counterfactual.grid(test, column, self._sample, original_steps)
            flipped = counterfactual.grid(flipped_rows, column, np.arange(len(copies)), copies.later.shape[1])
            out[encoder] = counterfactual.violations(copies, original, flipped, self.thresholds.counterfactual_tolerance)
        return out


