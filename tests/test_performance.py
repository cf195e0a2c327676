"""Speed-related behaviour that must hold whatever the timings: no batching mode changes a metric,
no step waits for the host, compiling changes nothing, practised mode builds no [B, L, C] tensor,
and the benchmark produces its documented JSON."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from gainakt.bench import run_benchmark
from gainakt.errors import ConfigError
from gainakt.model.cuda_graphs import GraphedNetwork
from gainakt.model.metrics import MaskedAccuracy, MaskedAUROC, WeightedMean
from gainakt.tools.host_sync import HostSyncMonitor
from gainakt.run.config import build_model, compose_config
from gainakt.tools.tensor_memory import TensorMemoryTracker
from tests.conftest import MONITORS, REAL_DATA_OPTIONS, data_and_model, make_net


BATCHING = {
    "bucketed": {"bucketing": True},
    "bucketed, lengths rounded to 8": {"bucketing": True, "pad_multiple": 8},
    "token budgets": {"bucketing": True, "pad_multiple": 8, "eval_batch_tokens": 96},
}


@pytest.mark.parametrize("mode", list(BATCHING))
def test_batching_modes_give_the_metrics_of_fixed_padding(tiny_config, mode):
    """Same weights, same windows: only the batches' padding and composition differ, so AUC,
    accuracy and the loss must agree."""
    cfg = tiny_config("data.eval_batch_size=8")
    L.seed_everything(0, verbose=False)
    model = None
    results, padded_positions = {}, {}
    for name, options in (("padded", {"bucketing": False}), (mode, BATCHING[mode])):
        datamodule = instantiate(cfg.data, **options)
        datamodule.prepare_data()
        datamodule.setup("fit")
        if model is None:
            model = build_model(cfg, datamodule.num_skills, datamodule.num_train_students)
        padded_positions[name] = sum(batch["mask"].numel() for batch in datamodule.val_dataloader())
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False)
        results[name] = trainer.validate(copy.deepcopy(model), datamodule=datamodule, verbose=False)[0]
    assert padded_positions[mode] < padded_positions["padded"] / 2  # the batches really are shorter
    # Attention over a longer padded window rounds differently in the last bit (1e-7 in a logit),
    # which can break a tie between two equal predictions: half a pair of the tiny validation
    # split's 135 x 144 (2.6e-5 in AUC). A lost or shifted step moves the metrics far more.
    for key in ("val/enc1_auc", "val/enc1_acc", "val/enc2_auc", "val/enc2_acc", "val/loss"):
        assert results[mode][key] == pytest.approx(results["padded"][key], abs=1e-4 if key.endswith("auc") else 1e-5), key


def test_masked_metrics_equal_torchmetrics_on_the_scored_steps():
    generator = torch.Generator().manual_seed(0)
    ours = {"auc": MaskedAUROC(), "acc": MaskedAccuracy(), "mean": WeightedMean()}
    theirs = {"auc": BinaryAUROC(), "acc": BinaryAccuracy()}
    values, weights = [], []
    for steps in (7, 12, 3):
        prob = torch.rand(5, steps, generator=generator)
        target = torch.randint(0, 2, (5, steps), generator=generator)
        mask = torch.rand(5, steps, generator=generator) > 0.3
        for name in ("auc", "acc"):
            ours[name].update(prob, target, mask)
            theirs[name].update(prob[mask], target[mask])
        value = torch.rand((), generator=generator)
        ours["mean"].update(value, mask.sum())
        values.append(float(value))
        weights.append(int(mask.sum()))
    for name in ("auc", "acc"):
        assert float(ours[name].compute()) == pytest.approx(float(theirs[name].compute()), abs=1e-6), name
    expected = sum(v * w for v, w in zip(values, weights)) / sum(weights)
    assert float(ours["mean"].compute()) == pytest.approx(expected, rel=1e-6)


class _ReadsBack(L.Callback):
    """A callback that reads a value back every batch, as the old throughput counter did."""

    calls = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        int(batch["mask"].sum())
        self.calls += 1


@pytest.mark.parametrize(("planted", "options"), [(False, ()), (True, ()), (False, REAL_DATA_OPTIONS)],
                         ids=["demo", "planted", "real_data_options"])  # fmt: skip
def test_training_and_validation_steps_do_not_wait_for_the_host(tiny_config, planted, options):
    """Every operator of the training and validation batches (forward, losses, metrics, backward,
    optimiser, monitoring callbacks, the weight average) is checked: none may make a GPU wait for
    the host. The planted read-back shows the monitor would see one."""
    cfg = tiny_config("trainer.max_epochs=2", "data.pad_multiple=8", "data.batch_tokens=200", *options)
    datamodule, model = data_and_model(cfg)
    monitor = HostSyncMonitor()
    reads_back = _ReadsBack()
    callbacks = [instantiate(cfg.callbacks[n]) for n in MONITORS] + ([reads_back] if planted else []) + [monitor]
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=3, limit_val_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, callbacks=callbacks,
                        gradient_clip_val=1.0)  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    assert monitor.batches >= 2 * (2 + 1)  # training and validation batches of both epochs were watched
    if planted:
        assert sum(monitor.hits.values()) == reads_back.calls > 0 and "test_performance.py" in monitor.report()
    else:
        assert not monitor.hits, monitor.report()


def test_compiled_network_trains_as_the_eager_one(tiny_config):
    """``model.compile`` compiles the network in place (same parameter names, same results); the
    eager backend traces it the way inductor would, without building kernels."""
    results = {}
    for compile_options in (None, {"backend": "eager", "dynamic": True}):
        cfg = tiny_config("trainer.max_epochs=1", "data.pad_multiple=8")
        cfg.model.compile = compile_options
        datamodule, model = data_and_model(cfg)
        trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=3, limit_val_batches=2, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False)  # fmt: skip
        trainer.fit(model, datamodule=datamodule)
        assert (getattr(model.net, "_compiled_call_impl", None) is not None) == (compile_options is not None)
        results[compile_options is None] = {k: float(v) for k, v in trainer.callback_metrics.items()}
        assert all(not k.startswith("_orig_mod") for k in model.state_dict())
    assert results[True] == pytest.approx(results[False], abs=1e-5)


def test_graphed_network_captures_once_per_shape_and_again_when_the_trainable_set_changes():
    """``GraphedNetwork`` keys its graphs on what a captured backward depends on. The capture is a
    stand-in here (CUDA graphs need a GPU; tests/test_gpu.py runs the real one): it returns the
    wrapped network, so the outputs must also equal the network's own."""
    torch.manual_seed(0)
    net = make_net(num_skills=5, num_students=4, d_model=16, n_heads=2, n_blocks=1, d_ff=16, dropout=0.0)
    captured = []

    def capture(module, args, pool):  # records the shape, then runs the network itself
        captured.append(args[0].shape)
        return lambda anchor, *a: module(*a)

    graphed = GraphedNetwork(net, capture=capture)

    def batch(steps: int) -> tuple[torch.Tensor, ...]:
        return torch.randint(0, 5, (4, steps, 1)), torch.randint(0, 2, (4, steps)), torch.arange(4)

    short, long = batch(6), batch(9)
    for args in (short, long, short, long):
        out, own = graphed(*args), net(*args)
        assert torch.equal(out.enc1_logit, own.enc1_logit) and torch.equal(out.enc2_logit, own.enc2_logit)
        assert out.gains_all is None
    assert captured == [short[0].shape, long[0].shape]
    assert graphed(*short, need_all_gains=True).gains_all.shape == (4, 6, 5)  # another output set: captured
    for p in net.encoder1_parameters():  # the schedule freezes encoder 1: its backward graph would be stale
        p.requires_grad_(False)
    graphed(*short)
    assert captured == [short[0].shape, long[0].shape, short[0].shape, short[0].shape]


def test_cuda_graphs_refuse_a_run_without_one_cuda_gpu(tiny_config):
    cfg = tiny_config("model.cuda_graphs=true")
    datamodule, model = data_and_model(cfg)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False)  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.cuda_graphs=true needs one CUDA GPU .* 1 cpu device"):
        trainer.fit(model, datamodule=datamodule)
    with pytest.raises(ConfigError, match=r"model\.cuda_graphs=true and model\.compile"):
        data_and_model(tiny_config("model.cuda_graphs=true", "model.compile={dynamic: true}"))


def _largest_tensor_bytes(accumulate: str, num_skills: int = 1000, batch: int = 4, steps: int = 30) -> int:
    torch.manual_seed(0)
    # Without encoder 1's LSTM: its kernel keeps one flat workspace sized by B, L and its width, not by
    # C, which at this tiny model width would be the largest tensor and hide what is measured here.
    # With every option of encoder 2's record on, the record on related skills too.
    model = make_net(num_skills=num_skills, num_students=batch, d_model=16, n_heads=2, n_blocks=1, d_ff=32,
                     accumulate=accumulate, recurrent_enc1=0, related_skills=4)  # fmt: skip
    skills = torch.randint(0, num_skills, (batch, steps, 1))
    responses = torch.randint(0, 2, (batch, steps))
    with TensorMemoryTracker() as tracker:
        out = model(skills, responses, torch.arange(batch))
        (out.enc1_logit.sum() + out.enc2_logit.sum()).backward()
    return tracker.largest_bytes


def test_practiced_mode_builds_no_batch_by_skill_tensor():
    """The gathered path's forward and backward stay below one [B, L, C] float tensor, which
    ``accumulate=all`` (every skill gains) cannot avoid."""
    batch, steps, num_skills = 8, 50, 1000
    one_dense = batch * steps * num_skills * 4
    assert _largest_tensor_bytes("practiced", num_skills, batch, steps) < one_dense / 4
    assert _largest_tensor_bytes("all", num_skills, batch, steps) >= one_dense


def test_tensor_memory_tracker_counts_live_storages_once():
    with TensorMemoryTracker() as tracker:
        a = torch.ones(1000)  # 4000 bytes
        view = a[:10]  # a view: no new storage
        b = a * 2  # 4000 more
        del b
        c = a + 1  # reuses the freed 4000
        del view, c
    assert tracker.peak_bytes == 8000
    assert tracker.largest_shape == (1000,)
    assert tracker.live_bytes == 4000  # only ``a`` is left


def test_benchmark_produces_the_documented_json(tmp_path, monkeypatch):
    tiny = "{d_model: 16, n_heads: 2, n_blocks: 1, d_ff: 32}"
    overrides = [
        "bench=quick", f"++bench.sizes.cpu={tiny}",
        f"bench.bucketing.root={tmp_path / 'absent'}",
        "bench.bucketing.fallback.num_students=120", "bench.skills.synthetic.num_students=60",
        "bench.skills.synthetic.min_length=40", "bench.skills.synthetic.max_length=40", "data.window=40",
        "bench.accumulation.batch_size=4", "bench.accumulation.length=40", "bench.skills.large=300",
    ]  # fmt: skip
    cfg = compose_config("benchmark", [*overrides, f"run_dir={tmp_path}"])
    result = run_benchmark(cfg)
    for key in ("accumulation_speedup", "bucketing_speedup", "memory_ratio_c1000_c100", "time_ratio_c1000_c100"):
        assert result[key] > 0, key
    names = [case["name"] for case in result["cases"]]
    assert names == ["accumulation", "cpu/bucketed", "cpu/padded", "cpu/c100", "cpu/c300"]
    bucketed, padded, small, large = result["cases"][1:]
    assert "synthetic" in bucketed["data"]  # ASSISTments absent: the fallback says so
    assert bucketed["bucketing"] and not padded["bucketing"]
    assert (small["num_skills"], large["num_skills"]) == (100, 300)
    for case in result["cases"][1:]:
        assert case["train_batches"] == 2 and case["eval_batches"] == 1
        assert case["train_interactions_per_second"] > 0 and case["eval_interactions_per_second"] > 0
        assert case["peak_memory_mib"] > case["parameter_mib"] > 0
    assert result["memory_ratio_c1000_c100"] == pytest.approx(large["peak_memory_mib"] / small["peak_memory_mib"])


def test_benchmark_whole_epochs_cover_every_training_interaction(tmp_path):
    tiny = "{d_model: 16, n_heads: 2, n_blocks: 1, d_ff: 32}"
    overrides = [
        "bench=quick", f"++bench.sizes.cpu={tiny}", f"bench.bucketing.root={tmp_path / 'absent'}",
        "bench.bucketing.fallback.num_students=120", "data.window=40", "bench.accumulation.batch_size=4",
        "bench.accumulation.length=40", "bench.run_sizes=[]", "bench.epoch.sizes=[cpu]", "bench.epoch.epochs=2",
        "bench.epoch.run=[bucketed,tokens]", "bench.batch_size=16", "bench.epoch.variants.tokens.data.batch_tokens=2000",
        "bench.epoch.variants.tokens.data.eval_batch_tokens=400",
    ]  # fmt: skip
    result = run_benchmark(compose_config("benchmark", [*overrides, f"run_dir={tmp_path}"]))
    assert result["bucketing_speedup"] is None  # no sampled comparison was asked for
    assert set(result["epochs"]) == {"cpu/epoch/bucketed", "cpu/epoch/tokens"}
    bucketed, tokens = (c for c in result["cases"] if c.get("variant"))
    assert len(bucketed["per_epoch"]) == 2 and bucketed["epoch_seconds"] > bucketed["train_seconds"] > 0
    assert bucketed["train_interactions"] == tokens["train_interactions"] > 0  # every window, both ways
    assert tokens["train_batches_per_epoch"] < bucketed["train_batches_per_epoch"]
