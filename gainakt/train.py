"""Train GainAKT3Exp: ``python -m gainakt.train [overrides]`` (Hydra; ``-m`` for sweeps).

Writes into its run folder: config.yaml (resolved), TensorBoard events, metrics.csv,
checkpoints/{best,last}.ckpt and summary.json; prints ``Run folder: <path>`` first and last.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gainakt.config import CONFIG_DIR, register_resolvers
from gainakt.epoch_csv import read_epoch_rows
from gainakt.errors import GainAKTError
from gainakt.io import write_json_atomic, write_text_atomic
from gainakt.summary import METRIC_KEYS, best_epoch_row, format_table

log = logging.getLogger(__name__)

warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every non-null entry of a name -> config mapping (callbacks, loggers)."""
    return [instantiate(entry) for entry in (group or {}).values() if entry is not None]


def _find(callbacks: list[Any], kind: type) -> Any | None:
    return next((c for c in callbacks if isinstance(c, kind)), None)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, and write the run folder. Returns the summary."""
    from callbacks.throughput import Throughput
    from lightning.pytorch.callbacks import ModelCheckpoint

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"Run folder: {run_dir}", flush=True)
    summary: dict[str, Any] = {"status": "running", "run_dir": str(run_dir), "seed": cfg.seed}
    try:
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        model = instantiate(cfg.model, num_skills=datamodule.num_skills, num_students=datamodule.num_train_students)
        callbacks = _instantiate_all(cfg.callbacks)
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=_instantiate_all(cfg.logger))

        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        summary["train_seconds"] = time.perf_counter() - start
        summary["epochs_run"] = trainer.current_epoch

        checkpoint = _find(callbacks, ModelCheckpoint)
        best_path = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
        tested = trainer.test(model, datamodule=datamodule, ckpt_path=best_path, verbose=False)
        summary.update({k: v for k, v in tested[0].items() if k in METRIC_KEYS})

        metrics_csv = run_dir / "metrics.csv"
        best = best_epoch_row(read_epoch_rows(metrics_csv)) if metrics_csv.is_file() else None
        if best is not None:
            summary["best_epoch"] = int(best["epoch"])
            summary.update({k: v for k, v in best.items() if k.startswith("val/") and k in METRIC_KEYS})
        throughput = _find(callbacks, Throughput)
        if throughput is not None:
            summary["interactions_per_second"] = throughput.interactions_per_second
            summary["train_interactions_seen"] = throughput.interactions
        summary["status"] = "completed"
    except GainAKTError as exc:
        summary.update(status="failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr, flush=True)
    finally:
        write_json_atomic(run_dir / "summary.json", summary)
        print(format_table(summary), flush=True)
        print(f"Run folder: {run_dir}", flush=True)
    return summary


register_resolvers()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    if summary["status"] != "completed" and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(2)
    return summary.get("test/enc1_auc")


if __name__ == "__main__":
    main()
