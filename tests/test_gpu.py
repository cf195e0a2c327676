"""GPU-only behaviour: the GPU's own check that no step waits for the host, and the non-finite-loss
guard's asynchronous path. Skipped, with the reason shown, on machines without a CUDA GPU (the
CPU-side check of the same steps is tests/test_performance.py's host-sync test)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from gainakt.model.cuda_graphs import GraphedNetwork
from gainakt.train import train

from .conftest import MONITORS, REAL_DATA_OPTIONS, data_and_model, make_net, run_config

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


@pytest.mark.parametrize("options", [(), REAL_DATA_OPTIONS], ids=["demo", "real_data_options"])
def test_gpu_training_steps_never_wait_for_the_host(tiny_config, options):
    cfg = tiny_config("trainer=gpu", "data.pad_multiple=8", "data.batch_tokens=200", *options)
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


def test_graphed_network_gives_the_eager_outputs_and_gradients_shape_after_shape():
    """Each replay copies its batch into the graph's inputs and recomputes everything: two batches of
    one shape, another shape, then the first again (the graphs share one memory pool), each against
    the eager network in float32 without dropout."""
    torch.manual_seed(0)
    net = make_net(num_skills=7, num_students=8, d_model=32, n_heads=4, n_blocks=2, d_ff=32, dropout=0.0).cuda()
    graphed = GraphedNetwork(net)

    def batch(steps: int) -> tuple[torch.Tensor, ...]:
        skills = torch.randint(0, 7, (8, steps, 1), device="cuda")
        skills[:2, steps // 2 :] = -1  # padding
        return skills, torch.randint(0, 2, (8, steps), device="cuda"), torch.arange(8, device="cuda")

    def run(forward, args):
        net.zero_grad(set_to_none=True)
        out = forward(*args)
        (out.enc1_logit.square().mean() + out.enc2_logit.sigmoid().mean()).backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        return out.enc1_logit.detach().clone(), out.enc2_logit.detach().clone(), grads

    first, second, other = batch(16), batch(16), batch(24)
    for args in (first, second, other, first):
        eager, replayed = run(net, args), run(graphed, args)
        for a, b in zip(eager[:2], replayed[:2]):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
        assert eager[2].keys() == replayed[2].keys()
        for name, grad in eager[2].items():
            assert torch.allclose(grad, replayed[2][name], atol=1e-6, rtol=1e-3), name
    assert len(graphed.graphs) == 2


def _fit_on_gpu(cfg):
    datamodule, model = data_and_model(cfg)
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, limit_train_batches=6,
                          limit_val_batches=2, callbacks=[])  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    return model, {k: float(v) for k, v in trainer.callback_metrics.items()}


@pytest.mark.parametrize("options", [(), REAL_DATA_OPTIONS], ids=["demo", "real_data_options"])
def test_cuda_graphs_train_as_the_eager_network(options):
    """Through Lightning, without dropout and in float32, a run trained through captured graphs
    reports the eager run's losses and metrics; the inverse-warmup schedule changes the trainable
    set at epoch 1, so the second epoch trains through fresh captures."""
    results = {}
    for graphs in (False, True):
        cfg = run_config(None, ["trainer=gpu", "trainer.precision=32-true", "data.pad_multiple=8", "model.dropout=0",
                                "schedule=inverse_warmup", "schedule.phase1_epochs=1", "trainer.max_epochs=2",
                                f"model.cuda_graphs={graphs}", *options])  # fmt: skip
        model, results[graphs] = _fit_on_gpu(cfg)
        if graphs:
            trainable_sets = {key[3] for key in model.graphed.graphs}
            assert len(trainable_sets) == 2, "the schedule's second phase should have captured again"
    assert results[True] == pytest.approx(results[False], abs=1e-3)


def test_cuda_graphs_train_in_bf16_with_dropout():
    cfg = run_config(None, ["trainer=gpu", "data.pad_multiple=8", "trainer.max_epochs=2", "model.cuda_graphs=true"])
    model, metrics = _fit_on_gpu(cfg)
    assert model.graphed.graphs and all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
