"""Train GainAKT3Exp: ``python -m gainakt.train [overrides]`` (Hydra; ``-m`` for sweeps).

Writes into its run folder: config.yaml (resolved), TensorBoard events, metrics.csv,
checkpoints/{best,last}.ckpt, summary.json and the verification outputs (callbacks/verification.py);
prints ``Run folder: <path>`` first and last.
``resume=<run>`` continues a run in its folder; ``rerun=<run>`` repeats it in a new one.
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
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from gainakt.checkpoint_io import AtomicCheckpointIO
from gainakt.config import CONFIG_DIR, recompose, register_resolvers, saved_overrides
from gainakt.epoch_csv import read_epoch_rows
from gainakt.errors import ConfigError, GainAKTError
from gainakt.io import write_json_atomic, write_text_atomic
from gainakt.summary import METRIC_KEYS, MONITOR_PREFIXES, best_epoch_row, format_table
from gainakt.validation import validate_config

log = logging.getLogger(__name__)

warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")

EXIT_FAILED = 2
EXIT_INTERRUPTED = 130


def _instantiate(config: DictConfig, **kwargs: Any) -> Any:
    """``instantiate``, letting a user error raised by the target (e.g. a ConfigError) through unwrapped."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, GainAKTError):
            raise exc.__cause__ from None
        raise


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every non-null entry of a name -> config mapping (callbacks, loggers)."""
    return [_instantiate(entry) for entry in (group or {}).values() if entry is not None]


def _find(callbacks: list[Any], kind: type) -> Any | None:
    return next((c for c in callbacks if isinstance(c, kind)), None)


def _resume_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``, or the ``resume`` folder's last.ckpt; a missing file is a config error."""
    path = cfg.ckpt_path or (str(Path(cfg.resume) / "checkpoints" / "last.ckpt") if cfg.resume else None)
    if path is not None and not Path(path).is_file():
        key = "ckpt_path" if cfg.ckpt_path else "resume"
        raise ConfigError(f"{key}: checkpoint {path} does not exist")
    return path


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, and write the run folder. Returns the summary.

    Under DDP every process runs this (Lightning relaunches the command per device, into the same
    run folder); only rank 0 writes the folder's files and prints.
    """
    from callbacks.throughput import Throughput
    from callbacks.verification import Verification
    from lightning.pytorch.callbacks import ModelCheckpoint

    writer = rank_zero_only.rank == 0
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if writer:
        print(f"Run folder: {run_dir}", flush=True)
    summary: dict[str, Any] = {"status": "running", "run_dir": str(run_dir), "seed": cfg.seed}
    trainer: L.Trainer | None = None
    try:
        validate_config(cfg)
        ckpt_path = _resume_checkpoint(cfg)
        if writer:
            write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        callbacks = _instantiate_all(cfg.callbacks)  # first: a bad schedule stops before data loading
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = _instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        model = _instantiate(cfg.model, num_skills=datamodule.num_skills, num_students=datamodule.num_train_students)
        trainer = _instantiate(
            cfg.trainer, callbacks=callbacks, logger=_instantiate_all(cfg.logger), plugins=[AtomicCheckpointIO()]
        )

        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        summary["train_seconds"] = time.perf_counter() - start
        summary["epochs_run"] = trainer.current_epoch

        checkpoint = _find(callbacks, ModelCheckpoint)
        best_path = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
        tested = trainer.test(model, datamodule=datamodule, ckpt_path=best_path, verbose=False)
        summary.update({k: v for k, v in tested[0].items() if k in METRIC_KEYS})
        verification = _find(callbacks, Verification)
        if verification is not None and verification.result is not None:
            summary.update(verification.result)

        metrics_csv = run_dir / "metrics.csv"
        best = best_epoch_row(read_epoch_rows(metrics_csv)) if metrics_csv.is_file() else None
        if best is not None:
            summary["best_epoch"] = int(best["epoch"])
            summary.update({k: v for k, v in best.items() if k in METRIC_KEYS or k.startswith(MONITOR_PREFIXES)})
        throughput = _find(callbacks, Throughput)
        if throughput is not None:
            summary["interactions_per_second"] = throughput.interactions_per_second
            summary["train_interactions_seen"] = throughput.interactions
        summary["status"] = "completed"
    except GainAKTError as exc:
        summary.update(status="failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr, flush=True)
    except (KeyboardInterrupt, SystemExit) as exc:
        # Lightning turns Ctrl-C into SystemExit(1) and SIGTERM into SIGTERMException
        signal_name = "SIGTERM" if isinstance(exc, SIGTERMException) else "SIGINT (Ctrl-C)"
        summary.update(status="interrupted", error=f"stopped by {signal_name}")
        if trainer is not None:
            summary["epoch_reached"] = trainer.current_epoch
        print(f"interrupted: checkpoints/last.ckpt holds the state; continue with resume={run_dir}", file=sys.stderr)
    except Exception as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if writer:
            write_json_atomic(run_dir / "summary.json", summary)
            print(format_table(summary), flush=True)
            print(f"Run folder: {run_dir}", flush=True)
    return summary


def _continued_config(cfg: DictConfig) -> DictConfig:
    """For ``resume=``/``rerun=``: the saved run's overrides, with this command's on top."""
    folder = cfg.resume or cfg.rerun
    if cfg.resume and cfg.rerun:
        raise ConfigError("resume and rerun: give one of them, not both")
    current = list(HydraConfig.get().overrides.task)
    composed = recompose(saved_overrides(folder), current, drop=("resume", "rerun", "ckpt_path"))
    if cfg.resume:
        composed.resume = str(folder)
    return composed


register_resolvers()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        if cfg.resume or cfg.rerun:
            cfg = _continued_config(cfg)
    except GainAKTError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)
    summary = train(cfg)
    if summary["status"] != "completed" and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(EXIT_INTERRUPTED if summary["status"] == "interrupted" else EXIT_FAILED)
    return summary.get("test/enc1_auc")


if __name__ == "__main__":
    main()
