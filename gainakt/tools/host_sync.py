"""Find the operations that would make a GPU wait for the host, on any device (a CPU included).

A training step on a GPU is fast only if the host can queue the next kernels while the device
works; any operation whose result the host must read (``.item()``, ``int(t)``, ``if t:``, a
boolean-mask selection, whose size is data-dependent, ``nonzero``, ``unique``, ``bincount``, a copy
to the host) stops the host until the device has caught up. :class:`HostSyncMonitor` lists such
operations, with the lines of code that issued them, for the training and validation batches of a
real ``Trainer`` run. It works by the operators' names and arguments, so it finds them on a CPU,
where nothing actually waits; ``tests/test_performance.py`` keeps the step free of them.
"""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any

import lightning as L
import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Operators whose result size or value the host must read (on a CUDA device: a synchronisation).
SYNCING_OPS = frozenset(
    {"_local_scalar_dense", "is_nonzero", "nonzero", "masked_select", "bincount", "_unique", "_unique2",
     "unique_dim", "unique_consecutive", "repeat_interleave", "equal", "allclose", "histc"}
)  # fmt: skip
INDEXING_OPS = frozenset({"index", "index_put", "index_put_", "_index_put_impl_"})


def _is_syncing(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if name in SYNCING_OPS:
        return True
    if name in INDEXING_OPS:  # boolean-mask indices become nonzero() inside the kernel
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)
    return name == "_to_copy" and str(kwargs.get("device")) == "cpu"


def _caller() -> str:
    """The innermost frames outside PyTorch: where the operation was asked for."""
    frames = [f for f in traceback.extract_stack()[:-3] if "/torch/" not in f.filename]
    return " < ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in frames[-3:][::-1])


def _in_optimizer() -> bool:
    """Adam and friends keep their step counters on the host: reading them costs nothing."""
    return any("/torch/optim/" in f.filename for f in traceback.extract_stack())


class _Recorder(TorchDispatchMode):
    def __init__(self, hits: Counter) -> None:
        super().__init__()
        self.hits = hits

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name.split("::")[-1]
        if _is_syncing(name, args, kwargs) and not _in_optimizer():
            self.hits[(name, _caller())] += 1
        return func(*args, **kwargs)


class HostSyncMonitor(L.Callback):
    """Records host-synchronising operations inside training and validation batches.

    ``hits`` counts them by (operator, calling code); ``batches`` counts the batches watched. Put
    it last among the callbacks, so the others' batch-end hooks run while it watches. Slow (every
    operator goes through Python): for tests and diagnosis, not for training.
    """

    def __init__(self) -> None:
        self.hits: Counter[tuple[str, str]] = Counter()
        self.batches = 0
        self._mode: _Recorder | None = None

    def _start(self, *args: Any) -> None:
        self._mode = _Recorder(self.hits)
        self._mode.__enter__()

    def _stop(self, *args: Any) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
            self.batches += 1

    on_train_batch_start = _start
    on_train_batch_end = _stop
    on_validation_batch_start = _start
    on_validation_batch_end = _stop

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._stop()

    def report(self) -> str:
        """One line per (operator, code), most frequent first."""
        return "\n".join(f"{count:6d}  {name:22s} {where}" for (name, where), count in self.hits.most_common())
