"""Several processes and devices: DDP on CPU (gloo), Hydra's joblib sweeps, the SLURM launcher config, GPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from gainakt.run.config import compose_config
from gainakt.model.module import GainAKTModule
from gainakt.run.summary import METRIC_KEYS
from gainakt.train import train

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
# The tiny sizes of conftest.TINY, as command-line overrides; evaluation covers the whole splits.
CLI_TINY = [o for o in TINY if not o.startswith(("+trainer.limit_val", "+trainer.limit_test"))] + ["data.eval_batch_size=8"]


def _installed(module: str) -> bool:
    """Whether an optional plugin is importable (find_spec of a dotted name raises if its parent is missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _run_cli(args: list[str], cache: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "GAINAKT_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gainakt.train", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_ddp_on_two_cpu_processes_writes_one_run_folder(tmp_path, tiny_config):
    """Lightning relaunches the command for rank 1; both ranks must share one run folder, and the
    test metrics (synced over ranks) must equal one device's evaluation of the same checkpoint."""
    runs = tmp_path / "runs"
    run = runs / "run"
    done = _run_cli(["trainer=ddp", "trainer.devices=2", *CLI_TINY, f"hydra.run.dir={run}"], tmp_path / "cache")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["run"]
    assert done.stdout.count("Run folder:") == 2  # rank 0 prints first and last; rank 1 stays quiet
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert summary["checks_total"] == 12  # rank 0 verified every window (a partial pass would have failed the run)

    # One device, same data and checkpoint: every test window is seen once on either side.
    datamodule = instantiate(tiny_config().data)
    datamodule.prepare_data()
    datamodule.setup("test")
    model = GainAKTModule.load_from_checkpoint(run / "checkpoints" / "best.ckpt")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    single = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    # Numeric noise only: float sums differ with batch composition, and on these ~400 test rows one
    # near-tied pair of predictions swapping moves an AUC by about 3e-5.
    for key in (k for k in METRIC_KEYS if k.startswith("test/")):
        assert summary[key] == pytest.approx(single[key], abs=1e-4), key


@pytest.mark.skipif(
    not _installed("hydra_plugins.hydra_joblib_launcher"),
    reason="hydra-joblib-launcher is not installed (pip install '.[sweeps]')",
)
def test_joblib_launcher_runs_a_sweep_in_parallel(tmp_path):
    sweep = tmp_path / "sweep"
    done = _run_cli(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2", *CLI_TINY,
         "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1", f"hydra.sweep.dir={sweep}"],
        tmp_path / "cache",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summaries = [json.loads((sweep / str(job) / "summary.json").read_text()) for job in (0, 1)]
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    assert [s["seed"] for s in summaries] == [1, 2]


@pytest.mark.skipif(
    not _installed("hydra_plugins.hydra_submitit_launcher"),
    reason="hydra-submitit-launcher is not installed (pip install '.[slurm]')",
)
def test_submitit_slurm_launcher_composes(tmp_path):
    overrides = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1",
                 "hydra.launcher.timeout_min=120", "trainer=gpu"]  # fmt: skip
    cfg = compose_config("config", overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 120)
    assert cfg.trainer.accelerator == "gpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_gpu_trainer_trains_in_mixed_precision(tiny_config):
    cfg = tiny_config("trainer=gpu")
    assert cfg.trainer.precision in ("bf16-mixed", "16-mixed")
    summary = train(cfg)
    assert summary["status"] == "completed"
    assert 0.0 <= summary["test/enc1_auc"] <= 1.0
