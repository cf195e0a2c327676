"""The real Hydra config through a real Lightning Trainer, on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import logging

import lightning as L
import pytest
import torch

from gainakt.run.summary import METRIC_KEYS
from gainakt.train import train

from .conftest import FIXTURES, validate_checkpoint


def test_fit_writes_run_folder(tiny_config, tmp_path):
    cfg = tiny_config("trainer.max_epochs=2")
    assert cfg.threads == 1  # conf/runtime/default.yaml
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        summary = train(cfg)
        assert torch.get_num_threads() == 1  # applied at start
    finally:
        torch.set_num_threads(threads)
    run = tmp_path / "run"
    assert summary["status"] == "completed"
    saved = json.loads((run / "summary.json").read_text())
    for key in [*METRIC_KEYS, "best_epoch", "epochs_run", "train_seconds", "interactions_per_second", "status"]:
        assert key in saved, key
    assert saved["epochs_run"] == 2
    assert 0.0 <= saved["test/enc2_auc"] <= 1.0
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for key in ("val/enc1_auc", "val/enc2_auc", "train/loss", "weights/bce", "weights/im"):
        assert rows[0][key] != "", key


def test_missing_root_is_one_clear_error(tiny_config, tmp_path, capsys):
    summary = train(tiny_config("data=assist2015", f"data.root={tmp_path / 'nowhere'}"))
    err = capsys.readouterr().err
    assert summary["status"] == "failed"
    assert "train_valid.csv" in err and "pykt" in err
    assert "Traceback" not in err


def test_format_is_detected_and_logged_once_per_run(tiny_config, caplog):
    caplog.set_level(logging.INFO, logger="gainakt.data.loading")
    summary = train(tiny_config("data=assist2015", f"data.root={FIXTURES / 'pykt_small'}", "callbacks.verification=null"))
    assert summary["status"] == "completed", summary.get("error")
    detected = [r.getMessage() for r in caplog.records if "data.format=auto" in r.getMessage()]
    assert len(detected) == 1, detected


def test_summary_reports_the_epoch_best_ckpt_holds_whatever_the_monitor(tiny_config, tmp_path):
    """best_epoch is read from best.ckpt, and the summary's validation metrics are that epoch's row;
    val/mean_auc is the mean of the two encoders' validation AUCs."""
    import pytest
    import torch

    for monitor in ("val/enc2_auc", "val/mean_auc"):
        cfg = tiny_config("trainer.max_epochs=3", f"monitor={monitor}", f"run_dir={tmp_path / monitor.replace('/', '_')}")
        summary = train(cfg)
        run = tmp_path / monitor.replace("/", "_")
        held = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
        with open(run / "metrics.csv") as handle:
            rows = {int(r["epoch"]): r for r in csv.DictReader(handle)}
        for row in rows.values():
            mean = (float(row["val/enc1_auc"]) + float(row["val/enc2_auc"])) / 2
            assert float(row["val/mean_auc"]) == pytest.approx(mean, abs=1e-6)
        assert summary["best_epoch"] == held["epoch"]
        best = max(rows, key=lambda e: (float(rows[e][monitor]), -e))
        assert held["epoch"] == best, monitor
        for key in ("val/enc1_auc", "val/enc2_auc", "val/mean_auc"):
            assert summary[key] == pytest.approx(float(rows[best][key])), key


class SpoilEncoder(L.Callback):
    """Zeroes one encoder's parameters at the start of an epoch: its later epochs are worse than its
    best, so only a composed checkpoint still holds that best."""

    def __init__(self, encoder: str, epoch: int) -> None:
        self.encoder, self.epoch = encoder, epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            params = pl_module.net.encoder1_parameters() if self.encoder == "enc1" else pl_module.net.encoder2_parameters()
            with torch.no_grad():
                for p in params:
                    p.zero_()


@pytest.mark.parametrize("first", ["enc1", "enc2"])
def test_per_encoder_monitor_holds_each_encoder_at_its_own_best_epoch(tiny_config, tmp_path, first):
    """monitor=val/per_encoder_auc: best.ckpt holds each encoder at the epoch of its best validation
    AUC, validating that file gives both AUCs back, and the summary reports each from its epoch."""
    import torch

    # One encoder trains alone for 3 epochs and is then spoiled; the other trains alone after it:
    # their best epochs differ, and no single epoch holds both.
    weights = {"phase1_bce": 1.0, "phase1_im": 0.0} if first == "enc1" else {"phase1_bce": 0.0, "phase1_im": 1.0}
    weights.update(phase2_bce=weights["phase1_im"], phase2_im=weights["phase1_bce"])
    # The last step's weights: an average would blur the spoil over the next epochs.
    cfg = tiny_config("trainer.max_epochs=6", "monitor=val/per_encoder_auc", "callbacks.early_stopping=null",
                      "callbacks.verification.plots=false", "schedule=inverse_warmup", "schedule.phase1_epochs=3",
                      *(f"schedule.{k}={v}" for k, v in weights.items()),
                      f"+callbacks.spoil._target_={__name__}.SpoilEncoder", f"+callbacks.spoil.encoder={first}",
                      "+callbacks.spoil.epoch=3",
                      "callbacks.weight_average.epochs=0")  # fmt: skip
    summary = train(cfg)
    run = tmp_path / "run"
    with open(run / "metrics.csv") as handle:
        rows = {int(r["epoch"]): r for r in csv.DictReader(handle) if r["val/enc1_auc"]}
    best = {enc: max(rows, key=lambda e: (float(rows[e][f"val/{enc}_auc"]), -e)) for enc in ("enc1", "enc2")}
    second = "enc2" if first == "enc1" else "enc1"
    assert best[first] < 3 <= best[second]
    held = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert held["encoder_epochs"] == best
    assert held["epoch"] == summary["best_epoch"] == max(best.values())
    for enc, epoch in best.items():
        assert summary[f"best_epoch_{enc}"] == epoch
        assert summary[f"val/{enc}_auc"] == pytest.approx(float(rows[epoch][f"val/{enc}_auc"]))
        running = [max(float(rows[e][f"val/{enc}_auc"]) for e in rows if e <= last) for last in sorted(rows)]
        assert [float(rows[e][f"val/{enc}_auc_best"]) for e in sorted(rows)] == pytest.approx(running)
    assert summary["val/mean_auc"] == pytest.approx((summary["val/enc1_auc"] + summary["val/enc2_auc"]) / 2)
    assert json.loads((run / "parameters.json").read_text())["checkpoint_epochs"] == best
    assert (f"encoder 1 from epoch {best['enc1']} and encoder 2 from epoch {best['enc2']}"
            in (run / "verification.md").read_text())  # fmt: skip
    # The composed weights give each encoder's AUC of its own epoch on the validation split.
    validated = validate_checkpoint(cfg, run / "checkpoints" / "best.ckpt")
    for enc, epoch in best.items():
        assert validated[f"val/{enc}_auc"] == pytest.approx(float(rows[epoch][f"val/{enc}_auc"]), abs=1e-6), enc
