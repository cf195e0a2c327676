"""What a user sees on the command line: no run folder for a config error, a clean stop when the
output pipe is gone, train.log, any Trainer argument as trainer.<arg>=, paths saved absolute, and
the sweep folder announced."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from gainakt.run.config import compose_config, open_trainer_overrides
from gainakt.run.summary import format_table

from .conftest import FIXTURES, TINY, run_cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = [*TINY, "callbacks.verification.plots=false"]


def test_config_error_leaves_no_run_folder_and_prints_no_table(tmp_path):
    run = tmp_path / "run"
    done = run_cli("gainakt.train", [*QUICK, "model.d_model=-8", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: model.d_model=-8: expected an integer >= 1" in done.stderr
    assert not run.exists()
    assert "AUC" not in done.stdout and "Run folder" not in done.stdout
    assert format_table({"status": "interrupted"}) == "status: interrupted"  # nothing measured: no empty table


def test_run_prints_to_train_log_any_trainer_argument_and_no_adverts(tmp_path):
    run = tmp_path / "run"
    args = [o for o in QUICK if not o.startswith("+trainer.limit_val_batches")]
    done = run_cli("gainakt.train", [*args, "trainer.limit_val_batches=1", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert OmegaConf.load(run / "config.yaml").trainer.limit_val_batches == 1  # not in the preset: set anyway
    log = (run / "train.log").read_text()
    for line in (f"Run folder: {run}", "test enc1", "status: completed"):
        assert line in log and line in done.stdout, line
    assert "Tip:" not in done.stdout + done.stderr + log

    typo = run_cli("gainakt.train", ["trainer.limti_val_batches=1"], cwd=tmp_path, timeout=120)
    assert typo.returncode == 2
    assert "trainer.limti_val_batches: unknown key; did you mean trainer.limit_val_batches?" in typo.stderr


def test_open_trainer_overrides_only_touches_trainer_arguments():
    args = ["-m", "trainer.limit_val_batches=2", "trainer.max_epochs=3", "+trainer.limit_test_batches=1",
            "trainer.nonsense=1", "model.d_model=8", "trainer=gpu"]  # fmt: skip
    assert open_trainer_overrides(args) == ["-m", "++trainer.limit_val_batches=2", "++trainer.max_epochs=3",
                                            "+trainer.limit_test_batches=1", "trainer.nonsense=1", "model.d_model=8",
                                            "trainer=gpu"]  # fmt: skip
    cfg = compose_config("config", open_trainer_overrides(["trainer.limit_val_batches=2", "trainer.max_epochs=3"]))
    assert (cfg.trainer.limit_val_batches, cfg.trainer.max_epochs) == (2, 3)


def test_relative_data_root_is_saved_absolute_and_evaluates_from_elsewhere(tmp_path):
    shutil.copytree(FIXTURES / "pykt_small", tmp_path / "data" / "pykt_small")
    run = tmp_path / "run"
    args = [o for o in QUICK if not o.startswith("data.synthetic")]
    done = run_cli("gainakt.train", [*args, "data=assist2015", "data.root=data/pykt_small", f"hydra.run.dir={run}"],
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert OmegaConf.load(run / "config.yaml").data.root == str(tmp_path / "data" / "pykt_small")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evaluated = run_cli("gainakt.evaluate", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "plots=false"],
                        cwd=elsewhere)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    folder = Path(evaluated.stdout.strip().splitlines()[-1].removeprefix("Evaluation folder: "))
    assert "status: completed" in (elsewhere / folder / "evaluate.log").read_text()


def test_ctrl_c_with_the_output_pipe_gone_ends_without_a_traceback(tmp_path):
    """`python -m gainakt.train | tee log`, then Ctrl-C: tee ends first, so the run's last lines meet
    a closed pipe. The run still stops cleanly, with its summary and exit code 130."""
    run = tmp_path / "run"
    args = [*QUICK, "trainer.max_epochs=1000", "trainer.limit_train_batches=null", "callbacks.early_stopping=null",
            f"hydra.run.dir={run}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gainakt.train", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=err)  # fmt: skip
        try:
            deadline = time.time() + 120
            while not (run / "metrics.csv").is_file() and time.time() < deadline and proc.poll() is None:
                time.sleep(0.2)
            assert (run / "metrics.csv").is_file(), "no epoch finished in time"
            proc.stdout.close()  # the reader is gone
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = (tmp_path / "stderr").read_text()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    assert "status: interrupted" in (run / "train.log").read_text()
