"""Train GainAKT3Exp: ``python -m gainakt.train [overrides]`` (Hydra; ``-m`` for sweeps).

Writes its run folder (:class:`gainakt.run.folder.RunFolder`): the resolved config, TensorBoard
events, metrics.csv, the checkpoints, summary.json and the verification outputs; prints
``Run folder: <path>`` first and last. ``resume=<run>`` continues a run in its folder;
``rerun=<run>`` repeats it in a new one.
"""

from __future__ import annotations

import sys
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
from gainakt.errors import GainAKTError
from gainakt.model.module import ENCODERS
from gainakt.run.checkpoint_io import AtomicCheckpointIO
from gainakt.run.config import (
    CONFIG_PATH, absolute_data_root, build, build_all, build_model, continued_config, open_trainer_overrides,
    resume_checkpoint,
)  # fmt: skip
from gainakt.run.config_check import check_config, config_errors
from gainakt.run.epoch_csv import read_epoch_rows
from gainakt.run.folder import RunFolder
from gainakt.run.lifecycle import EXIT_CODES, RunLifecycle, exit_code, prepare_process, say, set_threads
from gainakt.run.summary import METRIC_KEYS, held_epoch_values


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
        if trainer is None:
            return {}, f"interrupted before training started; start again with resume={folder.root}"
        done = epochs_run(trainer)  # metrics.csv holds epochs 0 .. done-1
        held = {0: "", 1: "epoch 0"}.get(done, f"epochs 0-{done - 1}")
        saved = f"{folder.last_ckpt.name} holds {held}" if done else "no epoch was completed"
        return {"epochs_run": done}, (f"interrupted in epoch {done}: {saved}; resume={folder.root} trains epoch "
                                      f"{done} again from its start")

    with RunLifecycle(folder, {"seed": cfg.seed}, "Run folder", folder.log, on_interrupt=interrupted,
                      writer=writer) as run:  # fmt: skip
        set_threads(cfg.threads)
        check_config(cfg)
        ckpt_path = resume_checkpoint(cfg)
        if cfg.resume and ckpt_path is None:
            run.say(f"resume: no epoch was completed ({folder.last_ckpt} does not exist): training starts from epoch 0")
        absolute_data_root(cfg.data)
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

        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        epochs = epochs_run(trainer)
        run.summary["epochs_run"] = epochs
        throughput = _find(callbacks, Throughput)
        if throughput is not None:  # totals over every part of a resumed run
            run.summary.update(train_seconds=throughput.train_seconds,
                               interactions_per_second=throughput.interactions_per_second,
                               train_interactions_seen=throughput.interactions,
                               throughput_epochs=throughput.epochs)  # fmt: skip

        checkpoint = _find(callbacks, RunCheckpoint)
        best_path = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
        tested = trainer.test(model, datamodule=datamodule, ckpt_path=best_path, verbose=False)
        run.summary.update({k: v for k, v in tested[0].items() if k in METRIC_KEYS})
        verification = _find(callbacks, Verification)
        if verification is not None:  # the same weights, device and precision, through the predict loop
            run.summary.update(verification.run(trainer, model, datamodule, ckpt_path=best_path) or {})
        # The epochs tested: those best.ckpt holds (whatever its monitor), else the last one trained.
        held = checkpoint.best_epochs() if best_path else dict.fromkeys(ENCODERS, epochs - 1)
        if folder.metrics_csv.is_file():
            run.summary.update(held_epoch_values(read_epoch_rows(folder.metrics_csv), held))
    return run.summary


def epochs_run(trainer: L.Trainer) -> int:
    """Epochs trained and validated: the rows of metrics.csv. Not ``trainer.current_epoch``: a resumed
    run stopped by a limit it had already spent (``max_time``, ``max_steps``) ends before Lightning
    counts the checkpoint's last epoch as completed, so that would be one short."""
    return trainer.fit_loop.epoch_progress.current.processed


prepare_process()  # here, not under __main__: sweep launchers import this module in fresh processes


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        if cfg.resume or cfg.rerun:
            cfg = continued_config(cfg, list(HydraConfig.get().overrides.task))
    except GainAKTError as exc:
        say(f"error: {exc}", err=True)
        sys.exit(EXIT_CODES["failed"])
    summary = train(cfg)
    if summary["status"] != "completed" and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(exit_code(summary))
    return summary.get("test/enc1_auc")


if __name__ == "__main__":
    sys.argv[1:] = open_trainer_overrides(sys.argv[1:])
    with config_errors("config"):
        main()
