"""Experiment and sweep presets: the seed document's settings, and every preset trains."""

from __future__ import annotations


import pytest

from tests.conftest import CONF
from gainakt.train import train

from .conftest import run_config

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
ORIGINAL = {"model.d_model": 256, "model.n_heads": 4, "model.n_blocks": 4, "model.d_ff": 512, "model.dropout": 0.2,
            "data.batch_size": 64, "data.fold": 0, "seed": 42, "optim.lr": 1.74e-4,
            "callbacks.early_stopping.patience": 10}  # fmt: skip
STUDY = {
    "v0_scalar_gains": {"model.gains": "scalar", "model.accumulate": "practiced", "model.im_target": "current",
                        "schedule.kind": "constant", "schedule.bce": 0.7, "schedule.im": 0.3,
                        "trainer.max_epochs": 12, "model.variance_weight": 0.0, "optim.gains_lr_mult": 1.0,
                        "callbacks.weight_average.epochs": 0},
    "v1_per_skill": {"model.gains": "per_skill", "model.accumulate": "all", "model.im_target": "current",
                     "schedule.kind": "constant", "schedule.bce": 0.7, "schedule.im": 0.3,
                     "trainer.max_epochs": 12, "model.variance_weight": 0.0, "optim.gains_lr_mult": 1.0,
                     "callbacks.weight_average.epochs": 0},
    "v2_enhanced": {"model.gains": "per_skill", "model.accumulate": "all", "model.im_target": "current",
                    "schedule.kind": "constant", "schedule.bce": 0.5, "schedule.im": 0.5,
                    "trainer.max_epochs": 20, "model.variance_weight": 0.1, "optim.gains_lr_mult": 3.0,
                    "callbacks.weight_average.epochs": 0},
    "v3_inverse_warmup": {"model.gains": "per_skill", "model.accumulate": "all", "model.im_target": "current",
                          "schedule.kind": "inverse_warmup", "schedule.phase1_frac": 0.5, "schedule.phase1_bce": 0.0,
                          "schedule.phase1_im": 1.0, "schedule.phase2_bce": 0.7, "schedule.phase2_im": 0.3,
                          "trainer.max_epochs": 30, "model.variance_weight": 0.1, "optim.gains_lr_mult": 3.0,
                          "callbacks.weight_average.epochs": 0},
    "gainakt": {"model.gains": "per_skill", "model.accumulate": "practiced", "model.im_target": "next",
                "schedule.kind": "inverse_warmup", "trainer.max_epochs": 30},
}  # fmt: skip


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def test_every_preset_is_checked():
    assert PRESETS == sorted(STUDY)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_has_the_seed_document_settings(preset, tmp_path):
    cfg = run_config(tmp_path, [f"experiment={preset}"], tiny=False)
    for key, value in {**ORIGINAL, **STUDY[preset]}.items():
        assert _get(cfg, key) == value, key
    assistments = run_config(tmp_path, ["data=assist2015", "data.batch_size=64"], tiny=False).data
    assert cfg.data == assistments  # ASSISTments 2015 (data.root still to be given)
    text = (CONF / "experiment" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_\n") and ("Reproduces" in text or "corrected" in text)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_a_couple_of_batches(preset, tmp_path):
    cfg = run_config(tmp_path / "run", [f"experiment={preset}", "data=synthetic"])  # tiny sizes win
    summary = train(cfg)
    assert summary["status"] == "completed", summary.get("error")
    assert cfg.model.gains == STUDY[preset]["model.gains"] and cfg.model.d_model == 16


def test_phase2_im_sweep_keeps_the_weights_summing_to_one(tmp_path):
    cfg = run_config(tmp_path, ["sweep=phase2_im", "schedule=inverse_warmup", "schedule.phase2_im=0.2"])
    assert (cfg.schedule.phase2_bce, cfg.schedule.phase2_im) == (0.8, 0.2)
