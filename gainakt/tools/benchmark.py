"""The benchmark behind ``python -m gainakt.bench [bench=quick] [overrides]`` (Hydra, config ``benchmark``).

Prints one JSON document (and writes ``bench.json`` into its run folder) with real (unpadded)
interactions per second for training and evaluation, peak tensor memory, and ratios whose two
sides are measured in the same process, interleaved round by round so that load from other work
on the machine falls on both sides alike:

- ``accumulation_speedup``: the model's vectorised accumulation vs the original per-step loop,
  forward + backward on identical inputs at L = 200;
- ``bucketing_speedup``: length-bucketed batches vs fixed padding to the window, training;
- ``time_ratio_c1000_c100`` / ``memory_ratio_c1000_c100``: 1,000 vs 100 skills in practised mode;
- ``epochs``: whole epochs of a real ``fit`` (training and validation) on ASSISTments 2015 fold 0,
  per batching variant (``bench.epoch``): real training interactions per second over the last
  epoch, and the epoch's training and validation seconds.

The sampled batches are valid on a GPU too: every timed batch runs once untimed first (a new shape
costs the device its first-time work: allocations, kernel selection), and the device is waited for
before every clock read. Top-level ratios are those of ``bench.headline_size``; ``ratios_by_size`` holds every size's.
Peak memory is counted in tensors (see :mod:`gainakt.tools.tensor_memory`) over one training step on
the variant's heaviest batch: parameters + gradients + Adam state + activations.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader


from gainakt.callbacks.throughput import Throughput, wait_for_device
from gainakt.errors import ConfigError
from gainakt.data.datamodule import KTDataModule
from gainakt.run.config import build, build_model
from gainakt.run.lifecycle import set_threads
from gainakt.model.accumulation import accumulate_dense, accumulate_gathered, accumulate_reference, skill_multi_hot
from gainakt.model.module import GainAKTModule
from gainakt.tools.tensor_memory import TensorMemoryTracker, tensor_bytes

log = logging.getLogger(__name__)

MIB = 2.0**20
Batch = dict[str, torch.Tensor]


# -- accumulation ------------------------------------------------------------------------------------
def accumulation_case(batch_size: int, length: int, num_skills: int, repeats: int, seed: int) -> dict[str, Any]:
    """EP at the next step's skill, forward + backward, by the three paths on the same gains.

    Every path starts from the same gains of all skills [B, L, C] (as the original code had them)
    and the same skill ids, and must return the same EP; the paths are timed in turn, ``repeats``
    times each. Speedups compare the best times (the cost with the least interference from other
    work on the machine); the medians are reported too.
    """
    generator = torch.Generator().manual_seed(seed)
    skills = torch.randint(0, num_skills, (batch_size, length, 1), generator=generator)
    targets = torch.cat([skills[:, 1:], torch.full_like(skills[:, :1], -1)], dim=1)
    gains_all = torch.rand(batch_size, length, num_skills, generator=generator).requires_grad_()
    practiced = skill_multi_hot(skills, num_skills)

    def at_targets(ep: torch.Tensor) -> torch.Tensor:
        return ep.gather(-1, targets.clamp_min(0)) * (targets >= 0)

    paths: dict[str, Callable[[], torch.Tensor]] = {
        "gathered": lambda: accumulate_gathered(gains_all.gather(-1, skills), skills, targets),
        "dense": lambda: at_targets(accumulate_dense(gains_all, practiced)),
        "reference": lambda: at_targets(accumulate_reference(gains_all, practiced)),
    }
    results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def run(name: str) -> None:
        gains_all.grad = None
        ep = paths[name]()
        ep.sum().backward()
        results[name] = (ep.detach(), gains_all.grad.clone())

    for name in paths:  # warm-up, and the outputs to compare
        run(name)
    for name in ("gathered", "dense"):
        for got, want in zip(results[name], results["reference"]):
            if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
                raise AssertionError(f"accumulation path {name!r} disagrees with the reference loop")
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):  # interleaved, so a busy moment hits every path
        for name in paths:
            start = time.perf_counter()
            run(name)
            times[name].append(1e3 * (time.perf_counter() - start))
    best = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "name": "accumulation",
        "batch_size": batch_size,
        "length": length,
        "num_skills": num_skills,
        "repeats": repeats,
        **{f"{name}_ms": best[name] for name in paths},
        **{f"{name}_median_ms": median[name] for name in paths},
        "speedup_gathered": best["reference"] / best["gathered"],
        "speedup_dense": best["reference"] / best["dense"],
        "speedup_gathered_median": median["reference"] / median["gathered"],
    }


# -- training and evaluation throughput -----------------------------------------------------------
class _BatchClock(L.Callback):
    """Wall time and real interactions of training and evaluation batches, data loading included.

    The clock runs from the epoch start (or the previous batch's end) to each batch's end, after
    the optimiser step; the device is waited for before each reading, so the time covers its work.
    """

    def __init__(self) -> None:
        self.totals = {"train": [0, 0, 0.0], "eval": [0, 0, 0.0]}  # batches, interactions, seconds
        self._mark = 0.0

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        wait_for_device(pl_module.device)
        self._mark = time.perf_counter()

    def _end(self, stage: str, pl_module: L.LightningModule, batch: Batch) -> None:
        wait_for_device(pl_module.device)
        totals = self.totals[stage]
        totals[0] += 1
        totals[1] += int(batch["mask"].sum())
        totals[2] += time.perf_counter() - self._mark
        self._mark = time.perf_counter()

    on_train_epoch_start = _start
    on_validation_epoch_start = _start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._end("train", pl_module, batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._end("eval", pl_module, batch)


@dataclass
class Variant:
    """One side of a comparison: a model (a fresh copy kept for the memory step) and its batches."""

    name: str
    info: dict[str, Any]
    module: GainAKTModule
    pristine: GainAKTModule
    train_loader: DataLoader
    eval_loader: DataLoader
    memory_batch: Batch


def _trainer(trainer_cfg: DictConfig, callbacks: list[L.Callback], **limits: Any) -> L.Trainer:
    """The configured Trainer, stripped of logging, checkpoints and validation during fit."""
    settings = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    num_sanity_val_steps=0, limit_val_batches=0, max_epochs=-1)  # fmt: skip
    return instantiate(trainer_cfg, callbacks=callbacks, **{**settings, **limits})


def _stratified(loader: DataLoader, num_batches: int) -> DataLoader:
    """``num_batches`` batches standing for a whole pass of ``loader``.

    The pass's batches are ordered by padded size (then real interactions), cut into equal strata,
    and the middle batch of each is taken. A few random batches would make the estimate hinge on
    how many long windows they happen to hold: bucketed batches range from a few steps to 200.
    """
    dataset = loader.dataset
    lengths = dataset.windows.length

    def size(indices: list[int]) -> tuple[int, int]:
        return len(indices) * int(lengths[indices].max()), int(lengths[indices].sum())

    batches = sorted(loader.batch_sampler, key=size)
    picked = [batches[int((k + 0.5) * len(batches) / num_batches)] for k in range(num_batches)]
    return DataLoader(dataset, batch_sampler=picked, collate_fn=dataset.collate)


def _heaviest_batch(loader: DataLoader) -> Batch:
    """The batch of a pass with the most padded positions (it sets the peak memory)."""
    dataset = loader.dataset
    indices = max(loader.batch_sampler, key=lambda idx: len(idx) * int(dataset.windows.length[idx].max()))
    return dataset.collate(indices)


def peak_training_memory(trainer_cfg: DictConfig, module: GainAKTModule, batch: Batch) -> dict[str, Any]:
    """Peak tensor bytes of one training step (fresh optimiser) on ``batch``, parameters included."""
    trainer = _trainer(trainer_cfg, [], max_steps=1)
    params = tensor_bytes(module.parameters())
    with TensorMemoryTracker() as tracker:
        trainer.fit(module, train_dataloaders=DataLoader([batch], batch_size=None))
    return {
        "peak_memory_mib": (params + tracker.peak_bytes) / MIB,
        "parameter_mib": params / MIB,
        "memory_batch_shape": list(batch["mask"].shape),
        "largest_tensor_shape": list(tracker.largest_shape),
    }


def compare(variants: list[Variant], trainer_cfg: DictConfig, bench: DictConfig) -> list[dict[str, Any]]:
    """Time the variants round by round in this process, then measure each one's peak memory.

    Before the first round every timed batch runs once untimed (``bench.warmup_passes``), so no
    timing includes the first-time work of a new batch shape.
    """
    for variant in variants:
        for _ in range(bench.warmup_passes):
            _trainer(trainer_cfg, [], max_epochs=1).fit(variant.module, train_dataloaders=variant.train_loader)
            _trainer(trainer_cfg, [], limit_val_batches=1.0).validate(variant.module, variant.eval_loader, verbose=False)
    clocks = {v.name: _BatchClock() for v in variants}
    for round_index in range(bench.rounds):
        for variant in variants if round_index % 2 == 0 else variants[::-1]:  # A, B, B, A, ...
            clock = clocks[variant.name]
            log.info("  round %d/%d: %s", round_index + 1, bench.rounds, variant.name)
            trainer = _trainer(trainer_cfg, [clock], max_steps=bench.train_steps)
            trainer.fit(variant.module, train_dataloaders=variant.train_loader)
            evaluator = _trainer(trainer_cfg, [clock], limit_val_batches=1.0)
            evaluator.validate(variant.module, dataloaders=variant.eval_loader, verbose=False)
    cases = []
    for variant in variants:
        train_batches, train_n, train_s = clocks[variant.name].totals["train"]
        eval_batches, eval_n, eval_s = clocks[variant.name].totals["eval"]
        case = {
            "name": variant.name,
            **variant.info,
            "train_batches": train_batches,
            "train_interactions": train_n,
            "train_seconds": train_s,
            "train_interactions_per_second": train_n / train_s,
            "eval_batches": eval_batches,
            "eval_interactions": eval_n,
            "eval_seconds": eval_s,
            "eval_interactions_per_second": eval_n / eval_s,
        }
        case.update(peak_training_memory(trainer_cfg, variant.pristine, variant.memory_batch))
        cases.append(case)
    return cases


def _data_and_model(cfg: DictConfig, size: dict[str, Any], data_overrides: dict[str, Any]):
    """The DataModule (set up) and a freshly seeded model, so variants of equal shape start from
    identical weights."""
    batches = {k: cfg.bench[k] for k in ("batch_size", "eval_batch_size") if cfg.bench[k] is not None}
    datamodule: KTDataModule = instantiate(cfg.data, **{**batches, **data_overrides})
    datamodule.prepare_data()
    datamodule.setup("fit")
    L.seed_everything(cfg.seed, verbose=False)
    sized = OmegaConf.merge(cfg, {"model": size})
    module = build_model(sized, datamodule.num_skills, datamodule.num_train_students, schedule=build(cfg.schedule))
    return datamodule, module


def _variant(
    name: str, info: dict[str, Any], cfg: DictConfig, size: dict[str, Any], data_overrides: dict[str, Any]
) -> Variant:
    """A side of a sampled-batch comparison: its timed batches, stratified over a whole pass."""
    datamodule, module = _data_and_model(cfg, size, data_overrides)
    return Variant(
        name=name,
        info={**info, "num_skills": datamodule.num_skills, **{f"model.{k}": v for k, v in size.items()}},
        module=module,
        pristine=copy.deepcopy(module),
        train_loader=_stratified(datamodule.train_dataloader(), cfg.bench.train_steps),
        eval_loader=_stratified(datamodule.val_dataloader(), cfg.bench.eval_batches),
        memory_batch=_heaviest_batch(datamodule.train_dataloader()),
    )


def assist2015_data(cfg: DictConfig) -> tuple[dict[str, Any], str]:
    """``data.*`` overrides for ASSISTments 2015 fold 0 (``bench.bucketing``), or for synthetic data
    of its shape when the folder is absent, and a label saying which."""
    spec = cfg.bench.bucketing
    if spec.root and Path(spec.root).expanduser().is_dir():
        return {"format": "pykt", "root": spec.root, "fold": spec.fold, "synthetic": None}, (
            f"assist2015 fold {spec.fold} ({spec.root})"
        )
    log.warning("bench.bucketing.root=%s is absent: using synthetic data of the same shape", spec.root)
    synthetic = {**cfg.bench.simulator.synthetic, **spec.fallback}
    data = {"format": "synthetic", "root": None, "fold": spec.fold, "synthetic": synthetic}
    return data, "synthetic, assist2015-shaped (ASSISTments 2015 absent)"


def bucketing_pair(cfg: DictConfig, size_name: str, size: dict[str, Any]) -> list[Variant]:
    """Bucketed vs fixed padding on ASSISTments 2015 fold 0, or synthetic data of its shape."""
    data, label = assist2015_data(cfg)
    return [
        _variant(
            f"{size_name}/{name}", {"size": size_name, "data": label, "bucketing": bucketing}, cfg, size,
            {**data, "bucketing": bucketing, "batch_tokens": None},  # batch_size windows either way
        )  # fmt: skip
        for name, bucketing in (("bucketed", True), ("padded", False))
    ]


def skills_pair(cfg: DictConfig, size_name: str, size: dict[str, Any]) -> list[Variant]:
    """The same simulated students with C = small vs large skills, ``accumulate=practiced``."""
    spec = cfg.bench.skills
    variants = []
    for count in (spec.small, spec.large):
        synthetic = {**cfg.bench.simulator.synthetic, **spec.synthetic, "num_skills": count}
        info = {"size": size_name, "data": f"synthetic, {count} skills, {spec.synthetic}", "bucketing": True}
        data = {"format": "synthetic", "root": None, "bucketing": True, "synthetic": synthetic}
        variants.append(_variant(f"{size_name}/c{count}", info, cfg, {**size, "accumulate": "practiced"}, data))
    return variants


def epoch_case(cfg: DictConfig, size_name: str, variant: str) -> dict[str, Any]:
    """Whole epochs of a real ``fit`` (training, then validation on the whole split) of one batching
    variant; the last epoch is reported, the earlier ones pay for warm-up (and compilation)."""
    spec = cfg.bench.epoch
    size = OmegaConf.to_container(cfg.bench.sizes[size_name]) or {}
    overrides = OmegaConf.to_container(spec.variants[variant]) or {}
    model_overrides, data_overrides = overrides.get("model") or {}, overrides.get("data") or {}
    data, label = assist2015_data(cfg)
    datamodule, module = _data_and_model(cfg, {**size, **model_overrides}, {**data, **data_overrides})
    throughput = Throughput()
    callbacks = [build(cfg.callbacks[name]) for name in spec.callbacks if cfg.callbacks.get(name) is not None]
    trainer = _trainer(cfg.trainer, [*callbacks, throughput], max_epochs=spec.epochs, limit_val_batches=1.0)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    last = throughput.epochs[-1]
    return {
        "name": f"{size_name}/epoch/{variant}",
        "size": size_name,
        "data": label,
        "variant": variant,
        "data_overrides": data_overrides,
        "model_overrides": model_overrides,
        **{f"model.{k}": v for k, v in size.items()},
        "epochs": spec.epochs,
        "train_batches_per_epoch": len(datamodule.train_dataloader()),
        "train_interactions_per_second": last["interactions"] / last["train_seconds"],
        "train_seconds": last["train_seconds"],
        "val_seconds": last["val_seconds"],
        "epoch_seconds": last["train_seconds"] + last["val_seconds"],
        "train_interactions": last["interactions"],
        "per_epoch": throughput.epochs,
        "fit_seconds": time.perf_counter() - start,
    }


def run_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Every case at every size; returns the JSON document."""
    bench = cfg.bench
    set_threads(bench.threads)
    load_before = os.getloadavg()[0]
    for key, names, known in (("bench.run_sizes", bench.run_sizes, bench.sizes),
                              ("bench.epoch.sizes", bench.epoch.sizes, bench.sizes),
                              ("bench.epoch.run", bench.epoch.run, bench.epoch.variants)):  # fmt: skip
        for name in names:
            if name not in known:
                raise ConfigError(f"{key}: {name!r} is not one of {', '.join(known)}")
    if bench.run_sizes and bench.headline_size not in bench.run_sizes:
        raise ConfigError(f"bench.headline_size={bench.headline_size!r} is not in bench.run_sizes {list(bench.run_sizes)}")
    acc = bench.accumulation
    log.info("accumulation: B=%d, L=%d, C=%d", acc.batch_size, acc.length, acc.num_skills)
    accumulation = accumulation_case(acc.batch_size, acc.length, acc.num_skills, acc.repeats, cfg.seed)
    cases: list[dict[str, Any]] = [accumulation]
    ratios: dict[str, dict[str, float]] = {}
    for size_name in bench.run_sizes:
        size = OmegaConf.to_container(bench.sizes[size_name]) or {}
        log.info("size %s %s: bucketed vs padded", size_name, size)
        bucketed, padded = compare(bucketing_pair(cfg, size_name, size), cfg.trainer, bench)
        log.info("size %s: %d vs %d skills", size_name, bench.skills.small, bench.skills.large)
        small, large = compare(skills_pair(cfg, size_name, size), cfg.trainer, bench)
        cases += [bucketed, padded, small, large]
        ratios[size_name] = {
            "bucketing_speedup": bucketed["train_interactions_per_second"] / padded["train_interactions_per_second"],
            "bucketing_eval_speedup": bucketed["eval_interactions_per_second"]
            / padded["eval_interactions_per_second"],
            f"time_ratio_c{bench.skills.large}_c{bench.skills.small}": small["train_interactions_per_second"]
            / large["train_interactions_per_second"],
            f"memory_ratio_c{bench.skills.large}_c{bench.skills.small}": large["peak_memory_mib"]
            / small["peak_memory_mib"],
        }
    for size_name in bench.epoch.sizes:
        for variant in bench.epoch.run:
            log.info("size %s: whole epochs, %s", size_name, variant)
            cases.append(epoch_case(cfg, size_name, variant))
    headline = ratios.get(bench.headline_size, {})  # empty when bench.run_sizes=[] (epochs only)
    return {
        "accumulation_speedup": accumulation["speedup_gathered"],
        "bucketing_speedup": headline.get("bucketing_speedup"),
        "memory_ratio_c1000_c100": headline.get(f"memory_ratio_c{bench.skills.large}_c{bench.skills.small}"),
        "time_ratio_c1000_c100": headline.get(f"time_ratio_c{bench.skills.large}_c{bench.skills.small}"),
        "headline_size": bench.headline_size,
        "ratios_by_size": ratios,
        "epochs": {case["name"]: {k: case[k] for k in ("train_interactions_per_second", "epoch_seconds")}
                   for case in cases if case.get("variant")},  # fmt: skip
        "cases": cases,
        "machine": {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "accelerator": str(cfg.trainer.get("accelerator", "auto")),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "precision": str(cfg.trainer.get("precision", "32-true")),
            "command": " ".join(["python -m gainakt.bench", *sys.argv[1:]]),
            "load_average_1min": {"start": load_before, "end": os.getloadavg()[0]},  # other work sharing the CPU
        },
        "memory_method": "peak bytes of live tensor storages during one training step on the heaviest batch "
        "(parameters + gradients + Adam state + activations), counted by a TorchDispatchMode",
    }
