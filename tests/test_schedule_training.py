"""Schedules, monitors and checks through the real config and a real Lightning Trainer (tiny data)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from gainakt.run.epoch_csv import read_epoch_rows
from gainakt.model.gainakt3exp import GainAKT3Exp
from gainakt.run.config import build, build_all, build_model
from gainakt.train import train

from .conftest import TINY, run_config, run_cli

ROOT = Path(__file__).resolve().parents[1]
GAIN_KEYS = ["val/gain_std", "val/gain_cv_skills", "val/gain_mean", "val/gain_ratio_correct_incorrect",
             "val/gain_mean_after_correct", "val/gain_mean_after_incorrect"]  # fmt: skip


def _weights(run: Path) -> list[tuple[float, float]]:
    """Logged (w_bce, w_im) per epoch, rounded (Lightning logs them as float32)."""
    return [(round(row["weights/bce"], 6), round(row["weights/im"], 6)) for row in read_epoch_rows(run / "metrics.csv")]


def test_inverse_warmup_logs_phases_gain_statistics_and_histograms(tiny_config, tmp_path):
    summary = train(tiny_config("schedule=inverse_warmup", "trainer.max_epochs=4", "model.student_gamma=true"))
    run = tmp_path / "run"
    assert summary["status"] == "completed"
    assert _weights(run) == [(0.0, 1.0)] * 2 + [(0.7, 0.3)] * 2
    rows = read_epoch_rows(run / "metrics.csv")
    for row in rows:
        assert row["val/monotonicity_violations"] == 0
        assert 0.0 < row["val/gain_mean"] < 1.0 and row["val/gain_std"] > 0.0
        assert all(key in row for key in GAIN_KEYS)
    for key in [*GAIN_KEYS, "val/monotonicity_violations"]:
        assert key in summary, key  # copied from the best epoch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    tags = events.Tags()
    histograms = {"val/gains", "params/beta", "params/saturation", "params/gamma", "params/theta"}
    assert histograms <= set(tags["histograms"])
    assert {"weights/bce", "weights/im", "val/gain_std", "val/gain_cv_skills"} <= set(tags["scalars"])
    assert len(events.Histograms("val/gains")) == 4


class _Snapshots(L.Callback):
    """Copies of every parameter at the end of each training epoch."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append({n: p.detach().clone() for n, p in pl_module.net.named_parameters()})


def test_zero_bce_weight_freezes_encoder1_bit_for_bit(tiny_config):
    cfg = tiny_config("schedule=inverse_warmup", "schedule.phase1_epochs=2", "trainer.max_epochs=3")
    L.seed_everything(0)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, datamodule.num_skills, datamodule.num_train_students, schedule=build(cfg.schedule))
    start = {n: p.detach().clone() for n, p in model.net.named_parameters()}
    enc1 = {n for n, p in model.net.named_parameters() if any(p is q for q in model.net.encoder1_parameters())}
    snaps = _Snapshots()
    trainer = instantiate(cfg.trainer, callbacks=[*build_all(cfg.callbacks), snaps], logger=False)
    trainer.fit(model, datamodule=datamodule)

    assert len(snaps.epochs) == 3 and enc1 and len(enc1) < len(start)
    for epoch in (0, 1):  # phase 1: weights (0, 1); Adam's weight decay must not touch encoder 1 either
        for name in enc1:
            assert torch.equal(snaps.epochs[epoch][name], start[name]), (epoch, name)
        assert any(not torch.equal(snaps.epochs[epoch][n], start[n]) for n in start if n not in enc1)
    assert any(not torch.equal(snaps.epochs[2][n], start[n]) for n in enc1)  # phase 2 trains it


def test_resume_from_last_checkpoint_in_phase2_stays_in_phase2(tiny_config, tmp_path):
    first = train(tiny_config("schedule=inverse_warmup", "trainer.max_epochs=4"))
    run = tmp_path / "run"
    assert first["status"] == "completed" and _weights(run)[-1] == (0.7, 0.3)
    # Raising max_epochs to 6 keeps the boundary before epoch 4 (phase 1 = 3 epochs of 6).
    last = f"ckpt_path={run}/checkpoints/last.ckpt"
    second = train(tiny_config("schedule=inverse_warmup", "trainer.max_epochs=6", last))
    assert second["status"] == "completed"
    assert _weights(run) == [(0.0, 1.0)] * 2 + [(0.7, 0.3)] * 4
    assert [int(r["epoch"]) for r in read_epoch_rows(run / "metrics.csv")] == list(range(6))


def test_resume_that_moves_the_phase_boundary_warns(tiny_config, tmp_path):
    train(tiny_config("schedule=inverse_warmup", "trainer.max_epochs=2"))  # phase 1 = epoch 0
    with pytest.warns(UserWarning, match="phase1_epochs"):  # 0.5 of 4 = 2 epochs: epoch 1 moves to phase 1
        last = f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt"
        train(tiny_config("schedule=inverse_warmup", "trainer.max_epochs=4", last))


def test_early_stopping_ignores_epochs_with_frozen_encoder1(tmp_path):
    # Encoder 1's AUC cannot change while it is frozen; plain early stopping with patience 1 would
    # stop after epoch 1, before phase 2 begins.
    overrides = ("schedule=inverse_warmup", "schedule.phase1_epochs=3", "trainer.max_epochs=4",
                 "callbacks.early_stopping.patience=1", "monitor=val/enc1_auc")  # fmt: skip
    assert train(run_config(tmp_path / "aware", list(overrides)))["epochs_run"] == 4
    plain = train(run_config(tmp_path / "plain", [*overrides, "callbacks.early_stopping.loss_weight=null"]))
    assert plain["epochs_run"] < 4


def test_monotonicity_failure_stops_the_run(tiny_config, monkeypatch, capsys):
    real = GainAKT3Exp.practised_mastery

    def reversed_curves(self, *args):
        trace = real(self, *args)
        return {"mastery_before": trace["mastery_after"], "mastery_after": trace["mastery_before"]}

    monkeypatch.setattr(GainAKT3Exp, "practised_mastery", reversed_curves)
    summary = train(tiny_config("callbacks.monotonicity.fail_on_violation=true"))
    assert summary["status"] == "failed"
    assert "monotonicity" in summary["error"] and "fail_on_violation" in summary["error"]
    assert "Traceback" not in capsys.readouterr().err


def test_seed_document_options_train(tiny_config, tmp_path):
    """Options 1-3, the variance loss and the gains-head learning-rate multiplier, together."""
    cfg = tiny_config("model.gains_head=mlp", "model.gains_init=small", "model.attention_bias=skill_aware",
                      "model.variance_weight=0.1", "optim.gains_lr_mult=3")  # fmt: skip
    model = build_model(cfg, num_skills=6, num_students=10)
    groups = model.configure_optimizers().param_groups
    lr = {g["name"]: g["lr"] for g in groups}
    assert lr["gains"] == pytest.approx(3 * lr["base"])
    assert sum(len(g["params"]) for g in groups if g["name"] == "gains") == 4  # MLP body (2) + output layer (2)
    assert model.net.skill_bias is not None and model.net.gains_out.weight.std() < 0.05
    summary = train(cfg)
    assert summary["status"] == "completed"
    row = read_epoch_rows(tmp_path / "run" / "metrics.csv")[0]
    assert row["train/loss_var"] < 0  # minus the gain variance


def test_invalid_schedule_stops_before_training_with_one_line(tmp_path):
    """From the command line, as a user types it."""
    args = ["schedule=inverse_warmup", "schedule.phase1_frac=1.5", f"hydra.run.dir={tmp_path / 'run'}", *TINY]
    result = run_cli("gainakt.train", args, cwd=ROOT)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: schedule.phase1_frac=1.5: expected a fraction strictly between 0 and 1"], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert '"status": "failed"' in (tmp_path / "run" / "summary.json").read_text()


def test_monitors_and_final_checks_are_one_definition(tiny_config, tmp_path):
    """On the same rows the per-epoch monitors log exactly what checks 1, 3, 5 and 6 report: one epoch
    (best = last checkpoint), every validation batch, and the checks run on trajectories.csv's
    validation rows (written from that checkpoint through the predict loop)."""
    from gainakt.verification import checks
    from gainakt.verification.trajectories import read_csv
    from tests.conftest import make_thresholds

    train(tiny_config("callbacks.early_stopping=null", "trainer.limit_val_batches=1.0"))
    logged = read_epoch_rows(tmp_path / "run" / "metrics.csv")[0]
    rows = read_csv(tmp_path / "run" / "trajectories.csv")
    val = rows[rows["split"] == "val"]
    t = make_thresholds()
    assert logged["val/gain_std"] == pytest.approx(checks.gain_std(val, t).value, rel=1e-5)
    assert logged["val/gain_cv_skills"] == pytest.approx(checks.skill_gain_cv(val, t).value, rel=1e-5)
    assert logged["val/gain_ratio_correct_incorrect"] == pytest.approx(checks.correct_incorrect_ratio(val, t).value, rel=1e-5)
    assert logged["val/monotonicity_violations"] == checks.monotonicity_violations(val, t).value == 0


def test_per_encoder_clipping_leaves_one_encoder_alone_when_the_other_explodes(tmp_path):
    """``model.clip_per_encoder``: a huge encoder-2 gradient is clipped to norm 1 without shrinking
    encoder 1's small one (one joint norm would scale it down ~10^4 times)."""
    module = build_model(run_config(tmp_path, ["model.d_model=16", "model.n_heads=2", "model.n_blocks=1", "model.d_ff=16",
                                     "model.clip_per_encoder=true"]), 5, 0)  # fmt: skip
    enc1, enc2 = module.net.encoder1_parameters(), module.net.encoder2_parameters()
    for params, value in ((enc1, 1e-4), (enc2, 100.0)):
        for p in params:
            p.grad = torch.full_like(p, value)
    before = [p.grad.clone() for p in enc1]
    module.configure_gradient_clipping(None, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    assert all(torch.equal(p.grad, b) for p, b in zip(enc1, before))
    assert torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in enc2])).item() == pytest.approx(1.0, rel=1e-4)
