"""Evaluate a checkpoint: ``python -m gainakt.evaluate ckpt_path=<run>/checkpoints/best.ckpt``.

Scores the checkpoint on the test split (both encoders' AUC and accuracy), runs the verification
checks and writes, into a new evaluation folder, the files a training run gets from verification
(trajectories.csv, parameters.json, verification.{json,md}, plots/) plus config.yaml and
summary.json. The data config comes from the config.yaml of the run folder holding the checkpoint
(or beside it); ``data.*`` overrides change it and ``data=<name>`` replaces it. The cache folder
is always this machine's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from gainakt.callbacks.verification import Verification
from gainakt.errors import ConfigError
from gainakt.model.module import GainAKTModule
from gainakt.run.checkpoint_io import check_ckpt_path
from gainakt.run.config import CONFIG_PATH, absolute_data_root, build, override_key
from gainakt.run.config_check import config_errors
from gainakt.run.folder import RunFolder
from gainakt.run.lifecycle import RunLifecycle, exit_code, prepare_process, set_threads
from gainakt.run.summary import METRIC_KEYS


def run_folder_of(ckpt: Path) -> RunFolder | None:
    """The run folder whose config.yaml travelled with a checkpoint: the one holding it, or its own folder."""
    for folder in (RunFolder.of_checkpoint(ckpt), RunFolder(ckpt.parent)):
        if folder is not None and folder.config.is_file():
            return folder
    return None


def data_config(cfg: DictConfig, ckpt: Path, overrides: list[str]) -> DictConfig:
    """The data config to evaluate on: the run's own unless ``data=...`` was given, then ``data.*`` overrides."""
    keys = [override_key(o) for o in overrides]
    run = run_folder_of(ckpt)
    if run is None or "data" in keys:
        return cfg.data
    data = OmegaConf.load(run.config).get("data")
    if data is None:
        raise ConfigError(f"{run.config} has no 'data' section; pass data=<name> (and data.root=...)")
    if not any(k == "data.cache_dir" for k in keys):
        data.cache_dir = cfg.data.cache_dir  # the run's cache path belongs to the machine it ran on
    for key in sorted(set(data.keys()) - set(cfg.data.keys())):  # e.g. options a newer version dropped
        print(f"warning: ignoring data.{key} of {run.config}: not a data option of this version", file=sys.stderr)
        data.pop(key)
    mine = [o.lstrip("+") for o, k in zip(overrides, keys) if k.startswith("data.")]
    return OmegaConf.merge({"data": data}, OmegaConf.from_dotlist(mine)).data


def evaluate(cfg: DictConfig, overrides: list[str] = ()) -> dict[str, Any]:
    """Load the checkpoint, test it, verify it and write the evaluation folder. Returns the summary."""
    folder = RunFolder(cfg.run_dir)
    ckpt = Path(cfg.ckpt_path).expanduser()
    with RunLifecycle(folder, {"ckpt_path": str(ckpt)}, "Evaluation folder", folder.evaluation_log) as run:
        set_threads(cfg.threads)
        check_ckpt_path(cfg)
        data_cfg = data_config(cfg, ckpt, list(overrides))
        absolute_data_root(data_cfg)
        used = OmegaConf.to_container(cfg, resolve=True)
        used["data"] = OmegaConf.to_container(data_cfg, resolve=True)
        used = OmegaConf.create(used)
        folder.write_config(used)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = build(used.data)
        datamodule.prepare_data()
        datamodule.setup("test")
        model = GainAKTModule.from_checkpoint(ckpt)
        if model.net.num_skills != datamodule.num_skills:
            raise ConfigError(
                f"{ckpt} was trained on {model.net.num_skills} skills but the data (data.format="
                f"{used.data.format}, data.root={used.data.root}) has {datamodule.num_skills}; pass the "
                "run's dataset with data=... data.root=..."
            )
        source = RunFolder.of_checkpoint(ckpt)
        metrics_csv = source.metrics_csv if source is not None else None
        verification = Verification(folder.root, build(cfg.checks), metrics_csv=metrics_csv, plots=cfg.plots)
        trainer = L.Trainer(accelerator=cfg.accelerator, devices=1, logger=False, callbacks=[verification],
                            enable_model_summary=False, enable_progress_bar=False)  # fmt: skip
        tested = trainer.test(model, datamodule=datamodule, verbose=False)
        run.summary.update({k: v for k, v in tested[0].items() if k in METRIC_KEYS})
        run.summary.update(verification.run(trainer, model, datamodule) or {})
    return run.summary


prepare_process()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run = evaluate(cfg, list(HydraConfig.get().overrides.task))
    if run["status"] != "completed":
        sys.exit(exit_code(run))


if __name__ == "__main__":
    with config_errors("evaluate"):
        main()
