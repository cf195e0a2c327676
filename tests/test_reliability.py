"""Resume, interruption, non-finite loss, determinism, re-runs, atomic outputs and config checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gainakt.errors import ConfigError, DataError
from gainakt.run.atomic import atomic_path, write_json_atomic
from gainakt.run.checkpoint_io import read_checkpoint
from gainakt.run.summary import METRIC_KEYS
from gainakt.train import train
from gainakt.run.config_check import check_config

from .conftest import TINY, run_config, run_cli

STEADY = ["callbacks.early_stopping=null", "trainer.limit_train_batches=3"]


def _metrics(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {k: summary[k] for k in METRIC_KEYS}


def _epoch_rows(run: Path) -> list[str]:
    lines = (run / "metrics.csv").read_text().splitlines()
    return [line for line in lines]


def test_resumed_run_matches_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    train(run_config(whole, [*STEADY, "trainer.max_epochs=4"]))
    part = tmp_path / "part"
    train(run_config(part, [*STEADY, "trainer.max_epochs=2"]))
    assert len(_epoch_rows(part)) == 1 + 2
    resumed = train(
        run_config(part, [*STEADY, "trainer.max_epochs=4", f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}"])
    )
    assert resumed["status"] == "completed" and resumed["epochs_run"] == 4
    assert _epoch_rows(part) == _epoch_rows(whole)  # appended, and equal row for row
    assert _metrics(part) == _metrics(whole)


def test_resume_with_its_limit_already_spent_counts_every_epoch_run(tmp_path):
    # A run stopped by a limit it has already reached when resumed (max_time, here max_steps) trains
    # nothing more; its summary must still count the epochs metrics.csv holds.
    run = tmp_path / "run"
    first = train(run_config(run, [*STEADY, "trainer.max_epochs=2"]))
    resumed = train(run_config(run, [*STEADY, "trainer.max_epochs=4", "+trainer.max_steps=6",
                                     f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]))  # fmt: skip
    assert first["epochs_run"] == resumed["epochs_run"] == len(_epoch_rows(run)) - 1 == 2
    assert _metrics(run) == {k: first[k] for k in METRIC_KEYS}


def test_same_seed_gives_identical_metrics(tmp_path):
    first = train(run_config(tmp_path / "a", ["trainer.max_epochs=2"]))
    second = train(run_config(tmp_path / "b", ["trainer.max_epochs=2"]))
    assert {k: first[k] for k in METRIC_KEYS} == {k: second[k] for k in METRIC_KEYS}


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    overrides = ["trainer.max_epochs=5", "optim.lr=1e12", "callbacks.early_stopping=null", "trainer.limit_train_batches=1"]
    summary = train(run_config(run, overrides))  # one absurd step per epoch: epoch 0 ends, epoch 1 diverges
    assert summary["status"] == "failed"
    assert "non-finite training loss at epoch 1, step 1" in summary["error"]
    assert "im=nan" in summary["error"] or "bce=nan" in summary["error"]
    assert "Traceback" not in capsys.readouterr().err
    # the checkpoint on disk is the last good one: finite weights
    import torch

    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.d_model=-8", "model.d_model"),
        ("model.n_heads=3", "model.n_heads"),
        ("model.dropout=1.5", "model.dropout"),
        ("model.accumulate=sometimes", "model.accumulate"),
        ("optim.lr=fast", "optim.lr"),
        ("data.batch_size=0", "data.batch_size"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, override, key):
    cfg = run_config(tmp_path, [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(cfg)


def test_fold_outside_range_stops_before_training(tmp_path):
    summary = train(run_config(tmp_path / "run", ["data.fold=9"]))
    assert summary["status"] == "failed" and "data.fold=9" in summary["error"]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_atomic_write_leaves_old_file_on_crash(tmp_path):
    target = tmp_path / "summary.json"
    write_json_atomic(target, {"status": "completed"})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"status": "trunc')
            raise RuntimeError("crash between write and rename")
    assert json.loads(target.read_text()) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def _tiny_cli(run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}", *extra]


def test_rerun_reproduces_a_run_from_its_folder(tmp_path):
    first = tmp_path / "first"
    done = run_cli("gainakt.train", _tiny_cli(first, "seed=3"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"Run folder: {first}"
    again = run_cli("gainakt.train", [f"rerun={first}", f"hydra.run.dir={tmp_path / 'again'}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _metrics(tmp_path / "again") == _metrics(first)


@pytest.mark.parametrize(("sig", "name"), [(signal.SIGINT, "SIGINT (Ctrl-C)"), (signal.SIGTERM, "SIGTERM")])
def test_interrupt_saves_checkpoint_and_resume_continues(tmp_path, sig, name):
    run = tmp_path / "run"
    args = [*TINY, "trainer.max_epochs=1000", "trainer.limit_train_batches=null", "callbacks.early_stopping=null",
            f"hydra.run.dir={run}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "gainakt.train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while not (run / "metrics.csv").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (run / "metrics.csv").is_file(), "no epoch finished in time"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    done = summary["epochs_run"]  # epochs completed: the rows of metrics.csv
    assert summary["status"] == "interrupted" and done >= 1
    assert [int(line.split(",")[0]) for line in _epoch_rows(run)[1:]] == list(range(done))
    assert summary["error"] == f"stopped by {name}"
    assert f"interrupted in epoch {done}" in err and "Traceback" not in err
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not [p for p in run.rglob("*.tmp")], "half-written files left behind"
    assert out.strip().splitlines()[-1] == f"Run folder: {run}"

    resumed = run_cli("gainakt.train", [f"resume={run}", f"trainer.max_epochs={done + 2}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == done + 2
    assert (run / ".hydra" / "overrides.yaml").read_text().count("max_epochs=1000") == 1  # original kept


def test_sweep_with_a_failing_job_finishes_the_others(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_cli("gainakt.train", ["-m", *TINY, "model.n_heads=2,3", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    statuses = sorted(json.loads(p.read_text())["status"] for p in sweep.glob("*/summary.json"))
    assert statuses == ["completed", "failed"], done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == lines[-1] == f"Sweep folder: {sweep}"  # what gainakt.report needs, first and last


def _whole_and_interrupted(tmp_path: Path, overrides: list[str], epoch: int) -> tuple[Path, Path]:
    """Two runs of ``overrides``: one whole, one stopped by a real SIGINT after batch 1 of ``epoch``."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    done = run_cli("gainakt.train", [*overrides, f"hydra.run.dir={whole}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    signal_at = f"+callbacks.signal={{_target_:tests.signals.SignalAt,epoch:{epoch},batch:1}}"
    stopped = run_cli("gainakt.train", [*overrides, signal_at, f"hydra.run.dir={part}"], cwd=tmp_path)
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    return whole, part


def test_interrupt_in_the_middle_of_an_epoch_resumes_exactly(tmp_path):
    """A real SIGINT after batch 1 of epoch 1's 4 batches; resume= ends with the metrics of a run
    never stopped: metrics.csv and every metric of the summary, bit for bit."""
    steady = [*TINY, "trainer.limit_train_batches=null", "callbacks.early_stopping=null", "trainer.max_epochs=3"]
    whole, part = _whole_and_interrupted(tmp_path, steady, epoch=1)
    summary = json.loads((part / "summary.json").read_text())
    assert (summary["status"], summary["epochs_run"]) == ("interrupted", 1)
    assert len(_epoch_rows(part)) == 1 + 1  # epoch 0 only: epoch 1 was cut after 2 of its 4 batches
    saved = torch.load(part / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 0 and saved["global_step"] == 4  # the end of epoch 0, not the middle of epoch 1
    trained_before = saved["callbacks"]["Throughput"]["train_seconds"]

    resumed = run_cli("gainakt.train", [f"resume={part}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _epoch_rows(part) == _epoch_rows(whole)
    first, again = (json.loads((run / "summary.json").read_text()) for run in (whole, part))
    same = [*METRIC_KEYS, "best_epoch", "best_epoch_enc1", "best_epoch_enc2", "epochs_run", "train_interactions_seen",
            "val/gain_std"]
    assert {k: again[k] for k in same} == {k: first[k] for k in same}
    assert again["train_seconds"] > trained_before  # both parts counted


def test_throughput_reads_checkpoints_written_before_per_epoch_records():
    """A checkpoint of a run trained before per-epoch records holds the totals only; resuming
    from it keeps them, and the new format round-trips."""
    from gainakt.callbacks.throughput import Throughput

    old = Throughput()
    old.load_state_dict({"interactions": 1200, "seconds": 3.0, "train_seconds": 5.0})
    assert (old.interactions, old.seconds, old.train_seconds) == (1200, 3.0, 5.0)
    again = Throughput()
    again.load_state_dict(old.state_dict())
    assert (again.interactions, again.interactions_per_second, again.train_seconds) == (1200, 400.0, 5.0)


def test_damaged_checkpoint_keeps_the_runs_results(tmp_path):
    """A truncated last.ckpt: resume= stops with one message naming it (exit 2) and the completed
    summary stays; the failed attempt is kept beside it. A bad override on resume= changes nothing."""
    run = tmp_path / "run"
    done = run_cli("gainakt.train", _tiny_cli(run, "trainer.max_epochs=1"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    completed = (run / "summary.json").read_text()
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:4000])

    resumed = run_cli("gainakt.train", [f"resume={run}", "trainer.max_epochs=2"], cwd=tmp_path)
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    assert f"error: {last} is not a readable checkpoint" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert (run / "summary.json").read_text() == completed
    attempt = json.loads((run / "summary.attempt.json").read_text())
    assert attempt["status"] == "failed" and str(last) in attempt["error"]

    bad = run_cli("gainakt.train", [f"resume={run}", "model.d_model=-8"], cwd=tmp_path)
    assert bad.returncode == 2 and "model.d_model=-8" in bad.stderr, bad.stderr[-2000:]
    assert (run / "summary.json").read_text() == completed


def test_evaluating_a_file_that_is_not_a_checkpoint_names_it(tmp_path):
    notes = tmp_path / "notes.ckpt"
    notes.write_text("not a checkpoint\n")
    out = tmp_path / "evaluation"
    done = run_cli("gainakt.evaluate", [f"ckpt_path={notes}", f"hydra.run.dir={out}"], cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"error: {notes} is not a readable checkpoint" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()  # checked before the evaluation folder is made
    with pytest.raises(DataError, match="no state_dict"):
        torch.save({"weights": torch.zeros(2)}, notes)
        read_checkpoint(notes)


def test_last_checkpoint_is_written_every_epoch(tmp_path):
    """Lightning 2.6 writes last.ckpt only when the monitored checkpoint improves; a constant
    monitored value improves once, yet last.ckpt must hold the last epoch (resume continues there)."""
    run = tmp_path / "run"
    overrides = ["trainer.max_epochs=3", "callbacks.checkpoint.monitor=weights/im", "callbacks.early_stopping=null",
                 "callbacks.verification=null"]  # fmt: skip
    assert train(run_config(run, overrides))["status"] == "completed"
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert (best["epoch"], last["epoch"]) == (0, 2)


def test_resumed_run_composes_best_ckpt_from_the_encoder_kept_before_the_interruption(tmp_path):
    """Per-encoder selection across a resume: encoder 1 peaks before the interruption and never again
    (it is spoiled and frozen), encoder 2 improves after it; the resumed run takes encoder 1 from
    best.ckpt and ends with the file and summary of a run never stopped."""
    steady = [*TINY, "trainer.limit_train_batches=null", "callbacks.early_stopping=null", "trainer.max_epochs=6",
              "callbacks.verification=null", "schedule=inverse_warmup", "schedule.phase1_epochs=3",
              "schedule.phase1_bce=1.0", "schedule.phase1_im=0.0", "schedule.phase2_bce=0.0", "schedule.phase2_im=1.0",
              "+callbacks.spoil={_target_:tests.test_train_e2e.SpoilEncoder,encoder:enc1,epoch:3}",
              "callbacks.weight_average.epochs=0"]  # an average would blur the spoil over epochs  # fmt: skip
    whole, part = _whole_and_interrupted(tmp_path, steady, epoch=4)
    resumed = run_cli("gainakt.train", [f"resume={part}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first, again = (json.loads((run / "summary.json").read_text()) for run in (whole, part))
    assert first["best_epoch_enc1"] < 3 <= first["best_epoch_enc2"]
    same = [*METRIC_KEYS, "best_epoch", "best_epoch_enc1", "best_epoch_enc2"]
    assert {k: again[k] for k in same} == {k: first[k] for k in same}
    files = [torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False) for run in (whole, part)]
    assert files[0]["encoder_epochs"] == files[1]["encoder_epochs"]
    for key, value in files[0]["state_dict"].items():
        assert torch.equal(value, files[1]["state_dict"][key]), key
