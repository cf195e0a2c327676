"""GPU-only behaviour: the GPU's own check that no step waits for the host, and the non-finite-loss
guard's asynchronous path. Skipped, with the reason shown, on machines without a CUDA GPU (the
CPU-side check of the same steps is tests/test_performance.py's host-sync test)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from gainakt.train import train

from .conftest import MONITORS, data_and_model, run_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


class _NoSyncInSteps(L.Callback):
    """Makes any host synchronisation inside a training batch (after the first) an error."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx > 0:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        torch.cuda.set_sync_debug_mode(0)

    def on_exception(self, trainer, pl_module, exception) -> None:
        torch.cuda.set_sync_debug_mode(0)


def test_gpu_training_steps_never_wait_for_the_host(tiny_config):
    cfg = tiny_config("trainer=gpu", "data.pad_multiple=8", "data.batch_tokens=200")
    datamodule, model = data_and_model(cfg)
    callbacks = [instantiate(cfg.callbacks[n]) for n in MONITORS] + [_NoSyncInSteps()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False, enable_checkpointing=False,
                          max_epochs=2, limit_train_batches=4, limit_val_batches=2)  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    assert "val/enc1_auc" in trainer.callback_metrics


def test_gpu_non_finite_loss_stops_before_a_checkpoint_is_written(tmp_path):
    run = tmp_path / "run"
    overrides = ["trainer=gpu", "trainer.max_epochs=5", "optim.lr=1e12", "callbacks.early_stopping=null",
                 "trainer.limit_train_batches=1"]  # fmt: skip
    summary = train(run_config(run, overrides))
    assert summary["status"] == "failed"
    assert "non-finite training loss at epoch 1" in summary["error"]
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
