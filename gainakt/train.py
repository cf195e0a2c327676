"""Train GainAKT3Exp: ``python -m gainakt.train [overrides]`` (Hydra; ``-m`` for sweeps).

Writes its run folder (:class:`gainakt.run.folder.RunFolder`): the resolved config, TensorBoard
events, metrics.csv, the checkpoints, summary.json and the verification outputs; prints
``Run folder: <path>`` first and last. ``resume=<run>`` continues a run in its folder;
``rerun=<run>`` repeats it in a new one.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from gainakt.callbacks.checkpoint import RunCheckpoint
from gainakt.callbacks.throughput import Throughput
from gainakt.callbacks.verification import Verification
from gainakt.errors import ConfigError, GainAKTError
from gainakt.run.checkpoint_io import AtomicCheckpointIO
from gainakt.run.config import (
    CONFIG_PATH, build, build_all, build_model, recompose, resume_checkpoint, saved_overrides,
)  # fmt: skip
from gainakt.run.config_check import check_config, config_errors
from gainakt.run.epoch_csv import read_epoch_rows
from gainakt.run.folder import RunFolder
from gainakt.run.lifecycle import EXIT_CODES, RunLifecycle, exit_code, prepare_process
from gainakt.run.summary import METRIC_KEYS, MONITOR_PREFIXES, best_epoch_row


def _find(callbacks: list[Any], kind: type) -> Any | None:
    return next((c for c in callbacks if isinstance(c, kind)), None)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, and write the run folder. Returns the summary.

    Under DDP every process runs this (Lightning relaunches the command per device, into the same
    run folder); only rank 0 writes the folder's files and prints.
    """
    folder = RunFolder(cfg.run_dir)
    writer = rank_zero_only.rank == 0
    trainer: L.Trainer | None = None

    def interrupted() -> tuple[dict[str, Any], str]:
        reached = {} if trainer is None else {"epoch_reached": trainer.current_epoch}
        return reached, f"interrupted: {folder.last_ckpt.name} holds the state; continue with resume={folder.root}"

    with RunLifecycle(folder, {"seed": cfg.seed}, "Run folder", on_interrupt=interrupted, writer=writer) as run:
        check_config(cfg)
        ckpt_path = resume_checkpoint(cfg)
        if writer:
            folder.write_config(cfg)
        callbacks = build_all(cfg.callbacks)
        schedule = build(cfg.schedule)  # before data loading: a bad schedule stops at once
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = build(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        model = build_model(cfg, datamodule.num_skills, datamodule.num_train_students, schedule=schedule)
        trainer = build(cfg.trainer, callbacks=callbacks, logger=build_all(cfg.logger), plugins=[AtomicCheckpointIO()])

        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        run.summary.update(train_seconds=time.perf_counter() - start, epochs_run=trainer.current_epoch)

        checkpoint = _find(callbacks, RunCheckpoint)
        best_path = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
        tested = trainer.test(model, datamodule=datamodule, ckpt_path=best_path, verbose=False)
        run.summary.update({k: v for k, v in tested[0].items() if k in METRIC_KEYS})
        verification = _find(callbacks, Verification)
        if verification is not None and verification.result is not None:
            run.summary.update(verification.result)
        best = best_epoch_row(read_epoch_rows(folder.metrics_csv)) if folder.metrics_csv.is_file() else None
        if best is not None:
            run.summary["best_epoch"] = int(best["epoch"])
            run.summary.update({k: v for k, v in best.items() if k in METRIC_KEYS or k.startswith(MONITOR_PREFIXES)})
        throughput = _find(callbacks, Throughput)
        if throughput is not None:
            run.summary.update(interactions_per_second=throughput.interactions_per_second,
                               train_interactions_seen=throughput.interactions,
                               throughput_epochs=throughput.epochs)  # fmt: skip
    return run.summary


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


prepare_process()  # here, not under __main__: sweep launchers import this module in fresh processes


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        if cfg.resume or cfg.rerun:
            cfg = _continued_config(cfg)
    except GainAKTError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CODES["failed"])
    summary = train(cfg)
    if summary["status"] != "completed" and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(exit_code(summary))
    return summary.get("test/enc1_auc")


if __name__ == "__main__":
    with config_errors("config"):
        main()
