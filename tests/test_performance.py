"""Speed-related behaviour that must hold whatever the timings: bucketing changes no metric,
practised mode builds no [B, L, C] tensor, and the benchmark produces its documented JSON."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from gainakt.bench import run_benchmark
from gainakt.run.config import build_model, compose_config
from gainakt.tools.tensor_memory import TensorMemoryTracker
from tests.conftest import make_net


def test_bucketing_gives_the_metrics_of_fixed_padding(tiny_config):
    """Same weights, same windows: only the padding differs, so AUC and accuracy must agree."""
    cfg = tiny_config("data.eval_batch_size=8")
    L.seed_everything(0, verbose=False)
    model = None
    results, padded_positions = {}, {}
    for bucketing in (True, False):
        datamodule = instantiate(cfg.data, bucketing=bucketing)
        datamodule.prepare_data()
        datamodule.setup("fit")
        if model is None:
            model = build_model(cfg, datamodule.num_skills, datamodule.num_train_students)
        padded_positions[bucketing] = sum(batch["mask"].numel() for batch in datamodule.val_dataloader())
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False)
        results[bucketing] = trainer.validate(copy.deepcopy(model), datamodule=datamodule, verbose=False)[0]
    assert padded_positions[True] < padded_positions[False] / 2  # bucketing really shortened the batches
    for key in ("val/enc1_auc", "val/enc1_acc", "val/enc2_auc", "val/enc2_acc", "val/loss"):
        assert results[True][key] == pytest.approx(results[False][key], abs=1e-5), key


def _largest_tensor_bytes(accumulate: str, num_skills: int = 1000, batch: int = 4, steps: int = 30) -> int:
    torch.manual_seed(0)
    model = make_net(num_skills=num_skills, num_students=batch, d_model=16, n_heads=2, n_blocks=1, d_ff=32,
                        accumulate=accumulate)  # fmt: skip
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
