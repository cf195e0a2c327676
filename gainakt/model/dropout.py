"""Dropout whose CPU mask costs a fraction of torch's.

On a CPU, ``nn.Dropout``'s mask (``bernoulli_``, one random number per element) was the largest
single cost of a CPU-size training step: 16 % of it, as much as the blocks' matrix products
(docs/performance.md). ``Dropout`` here cuts each 64-bit draw of torch's generator into four
16-bit uniform numbers and compares them with the drop threshold, which makes the mask 4-6x
cheaper. The drop probability is quantised to 1/65536 (0.2 drops 13107/65536 = 0.199997), and kept
elements are scaled by the exact inverse of the keep probability, so the expectation is unchanged.
On other devices it is ``torch.nn.functional.dropout`` (CUDA's generator is fast already).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16  # 16-bit slices, read as int16: [-32768, 32767]
_SLICES = 4  # 16-bit slices per 64-bit word


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Inverted-dropout multiplier: 0 with probability ~p, else 1 / (1 - p'), p' = p quantised to 1/65536."""
    numel = shape.numel()
    words = torch.empty((numel + _SLICES - 1) // _SLICES, dtype=torch.int64, device=device)
    words.random_(-(1 << 63), (1 << 63) - 1)  # every bit uniform (random_() alone leaves the sign bit 0)
    dropped = round(p * _LEVELS)
    mask = torch.empty(shape, dtype=dtype, device=device)  # the comparison writes 0/1 floats directly:
    torch.ge(words.view(torch.int16)[:numel].view(shape), dropped - _LEVELS // 2, out=mask)  # bool then float costs 3x
    return mask.mul_(_LEVELS / (_LEVELS - dropped))


class Dropout(nn.Module):
    """``nn.Dropout`` with the cheap CPU mask of :func:`keep_mask`; same interface and semantics."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability has to be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        return x * keep_mask(x.shape, self.p, x.dtype, x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"
