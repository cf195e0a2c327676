"""Evaluate a checkpoint: ``python -m gainakt.evaluate ckpt_path=<run>/checkpoints/best.ckpt``.

Scores the checkpoint on the test split (both encoders' AUC and accuracy), runs the verification
checks and writes, into a new evaluation folder, the files a training run gets from verification
(trajectories.csv, parameters.json, verification.{json,md}, plots/) plus config.yaml and
summary.json. The data config comes from the run folder's config.yaml next to the checkpoint
(``<run>/config.yaml`` for ``<run>/checkpoints/x.ckpt``); ``data.*`` overrides change it and
``data=<name>`` replaces it. The cache folder is always this machine's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gainakt.config import CONFIG_DIR, override_key, register_resolvers
from gainakt.errors import ConfigError, GainAKTError
from gainakt.io import write_json_atomic, write_text_atomic
from gainakt.summary import METRIC_KEYS, format_table


def run_config(ckpt: Path) -> Path | None:
    """The config.yaml of the run a checkpoint belongs to, if it travelled with it."""
    for folder in (ckpt.parent.parent, ckpt.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def data_config(cfg: DictConfig, ckpt: Path, overrides: list[str]) -> DictConfig:
    """The data config to evaluate on: the run's own unless ``data=...`` was given, then ``data.*`` overrides."""
    keys = [override_key(o) for o in overrides]
    saved = run_config(ckpt)
    if saved is None or "data" in keys:
        return cfg.data
    data = OmegaConf.load(saved).get("data")
    if data is None:
        raise ConfigError(f"{saved} has no 'data' section; pass data=<name> (and data.root=...)")
    if not any(k == "data.cache_dir" for k in keys):
        data.cache_dir = cfg.data.cache_dir  # the run's cache path belongs to the machine it ran on
    for key in sorted(set(data.keys()) - set(cfg.data.keys())):  # e.g. options a newer version dropped
        print(f"warning: ignoring data.{key} of {saved}: not a data option of this version", file=sys.stderr)
        data.pop(key)
    mine = [o.lstrip("+") for o, k in zip(overrides, keys) if k.startswith("data.")]
    return OmegaConf.merge({"data": data}, OmegaConf.from_dotlist(mine)).data


def evaluate(cfg: DictConfig, overrides: list[str] = ()) -> dict[str, Any]:
    """Load the checkpoint, test it, verify it and write the evaluation folder. Returns the summary."""
    from callbacks.verification import Verification
    from gainakt.model.module import GainAKTModule

    out_dir = Path(cfg.run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"Evaluation folder: {out_dir}", flush=True)
    ckpt = Path(cfg.ckpt_path).expanduser()
    summary: dict[str, Any] = {"status": "running", "run_dir": str(out_dir), "ckpt_path": str(ckpt)}
    try:
        if not ckpt.is_file():
            raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
        data_cfg = data_config(cfg, ckpt, list(overrides))
        used = OmegaConf.to_container(cfg, resolve=True)
        used["data"] = OmegaConf.to_container(data_cfg, resolve=True)
        used = OmegaConf.create(used)
        write_text_atomic(out_dir / "config.yaml", OmegaConf.to_yaml(used))
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(used.data)
        datamodule.prepare_data()
        datamodule.setup("test")
        model = GainAKTModule.load_from_checkpoint(ckpt, map_location="cpu")
        if model.net.num_skills != datamodule.num_skills:
            raise ConfigError(
                f"{ckpt} was trained on {model.net.num_skills} skills but the data (data.format="
                f"{used.data.format}, data.root={used.data.root}) has {datamodule.num_skills}; pass the "
                "run's dataset with data=... data.root=..."
            )
        metrics_csv = ckpt.parent.parent / "metrics.csv"
        verification = Verification(out_dir, instantiate(cfg.checks), metrics_csv=metrics_csv, plots=cfg.plots)
        trainer = L.Trainer(accelerator=cfg.accelerator, devices=1, logger=False, callbacks=[verification],
                            enable_model_summary=False, enable_progress_bar=False)  # fmt: skip
        tested = trainer.test(model, datamodule=datamodule, verbose=False)
        summary.update({k: v for k, v in tested[0].items() if k in METRIC_KEYS})
        summary.update(verification.result or {})
        summary["status"] = "completed"
    except GainAKTError as exc:
        summary.update(status="failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr, flush=True)
    finally:
        write_json_atomic(out_dir / "summary.json", summary)
        print(format_table(summary), flush=True)
        print(f"Evaluation folder: {out_dir}", flush=True)
    return summary


register_resolvers()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    summary = evaluate(cfg, list(HydraConfig.get().overrides.task))
    if summary["status"] != "completed":
        sys.exit(2)


if __name__ == "__main__":
    main()
