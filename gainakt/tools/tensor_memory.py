"""Peak tensor memory of a piece of PyTorch code, on any device, without allocator statistics.

CPU PyTorch has no ``max_memory_allocated`` and a process's peak RSS mixes in the allocator's
caching and everything imported before, so the benchmark counts tensors instead: every tensor an
operator returns is charged the bytes of its storage (once per storage, so views and in-place
results cost nothing) until that storage is freed. The peak of that running total is what the
code needed in tensors, including autograd's saved activations, gradients and optimiser state.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class TensorMemoryTracker(TorchDispatchMode):
    """Context manager: ``peak_bytes`` of storages allocated inside it and alive at the same time.

    Also keeps the shape of the largest tensor allocated (``largest_shape``), which shows at a
    glance whether some step built a [B, L, C] tensor. Tensors that existed before entering (the
    parameters, say) are not counted; add them yourself.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self.largest_bytes = 0
        self.largest_shape: tuple[int, ...] = ()
        self._alive: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        self.live_bytes -= nbytes
        self._alive.discard(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self._alive:
                continue
            self._alive.add(key)
            self.live_bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            if nbytes > self.largest_bytes:
                self.largest_bytes, self.largest_shape = nbytes, tuple(tensor.shape)
            weakref.finalize(storage, self._release, key, nbytes)
        return out


def tensor_bytes(tensors: Any) -> int:
    """Bytes held by distinct storages among ``tensors`` (parameters, optimiser state, ...)."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())
