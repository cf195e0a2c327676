"""Profile training steps of a real fit with the PyTorch profiler, and list the host synchronisations.

    python docs/gpu/profile_step.py [--warmup 20] [--steps 10] [config overrides as for gainakt.train]

Runs ``warmup`` + ``steps`` training batches through Lightning with the monitoring callbacks of the
training config, profiles the last ``steps`` (host and CUDA activity) and prints one JSON document:
milliseconds per step (device waited for), kernel launches and device time per step, the operators
with the most host time and, on a GPU, every host synchronisation ``torch.cuda.set_sync_debug_mode``
reports in those steps, by the line of code that caused it.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
import traceback
import warnings

import lightning as L
import torch
from torch.profiler import ProfilerActivity, profile

from gainakt.callbacks.throughput import wait_for_device
from gainakt.run.config import build, build_model, compose_config

MONITORS = ("gain_monitor", "monotonicity", "throughput", "finite_loss")


class StepProfiler(L.Callback):
    """Profiles training batches ``warmup`` .. ``warmup + steps - 1``."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.profiler: profile | None = None
        self.syncs: collections.Counter[str] = collections.Counter()
        self._seconds = 0.0
        self._record: warnings.catch_warnings | None = None
        self._caught: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx != self.warmup:
            return
        wait_for_device(pl_module.device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if pl_module.device.type == "cuda" else [])
        self.profiler = profile(activities=activities)
        self.profiler.__enter__()
        if pl_module.device.type == "cuda":
            self._record = warnings.catch_warnings(record=True)
            self._caught = self._record.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        self._seconds = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx != self.warmup + self.steps - 1 or self.profiler is None:
            return
        wait_for_device(pl_module.device)
        self._seconds = time.perf_counter() - self._seconds
        if self._record is not None:
            torch.cuda.set_sync_debug_mode(0)
            self._record.__exit__(None, None, None)
            for w in self._caught:
                if "synchroniz" in str(w.message):
                    self.syncs[f"{w.filename.rsplit('/', 2)[-1]}:{w.lineno}: {str(w.message)[:80]}"] += 1
        self.profiler.__exit__(None, None, None)
        trainer.should_stop = True

    def report(self) -> dict:
        events = self.profiler.key_averages()
        per_step = lambda us: us / 1e3 / self.steps  # noqa: E731
        launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
        device_us = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") if events else 0
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:25]
        return {
            "ms_per_step": 1e3 * self._seconds / self.steps,
            "kernel_launches_per_step": launches / self.steps,
            "device_kernel_ms_per_step": per_step(device_us),
            "host_syncs_in_profiled_steps": sum(self.syncs.values()),
            "host_sync_sites": dict(self.syncs.most_common()),
            "top_host_ops_ms_per_step": {e.key: round(per_step(e.self_cpu_time_total), 3) for e in top},
            "sync_like_ops_per_step": {
                e.key: e.count / self.steps for e in events
                if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "aten::item", "aten::nonzero",
                             "aten::_local_scalar_dense", "cudaMemcpyAsync", "cudaEventSynchronize")
            },  # fmt: skip
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    args, overrides = parser.parse_known_args()
    cfg = compose_config("config", overrides)
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = build(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, datamodule.num_skills, datamodule.num_train_students, schedule=build(cfg.schedule))
    profiler = StepProfiler(args.warmup, args.steps)
    callbacks = [build(cfg.callbacks[n]) for n in MONITORS if cfg.callbacks.get(n) is not None] + [profiler]
    trainer = build(cfg.trainer, callbacks=callbacks, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, max_epochs=1, limit_val_batches=0,
                    limit_train_batches=args.warmup + args.steps)  # fmt: skip
    try:
        trainer.fit(model, datamodule=datamodule)
    except Exception:  # report what was profiled, then the error
        traceback.print_exc()
    result = {"overrides": overrides, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              **(profiler.report() if profiler.profiler is not None else {"error": "no profiled steps"})}  # fmt: skip
    print(json.dumps(result, indent=1), flush=True)


if __name__ == "__main__":
    main()
