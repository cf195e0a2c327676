"""Dual-stream causal transformer encoder shared by both of GainAKT3Exp's encoders.

Queries and keys come from the context stream, values from the value stream (as in AKT); both
streams embed the interaction token x_t = q_t + C * r_t, and position t attends to 0..t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def embed_skill_sets(table: nn.Embedding, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean embedding over each interaction's skill slots: [B, L, K] ids -> [B, L, d].

    Multi-skill interactions stay one row; padded slots (``valid`` false) do not count.
    """
    vectors = table(ids.clamp_min(0)) * valid.unsqueeze(-1)
    return vectors.sum(-2) / valid.sum(-1, keepdim=True).clamp_min(1)


class DualStreamBlock(nn.Module):
    """One post-LayerNorm block: attention (Q, K from context, V from value), FFN on context."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.norm_attn = nn.LayerNorm(d_model)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.norm_value = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, steps, d = x.shape
        return x.view(b, steps, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(
        self, ctx: torch.Tensor, val: torch.Tensor, bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, steps, d = ctx.shape
        q, k, v = self._heads(self.query(ctx)), self._heads(self.key(ctx)), self._heads(self.value(val))
        # Dropout acts on the block's outputs, not on attention weights: a [B, H, L, L] mask per
        # block costs more than the rest of the block on a CPU.
        if bias is None:
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        attn = self.dropout(self.out(attn.transpose(1, 2).reshape(b, steps, d)))
        ctx = self.norm_attn(ctx + attn)
        ctx = self.norm_ffn(ctx + self.dropout(self.ffn(ctx)))
        val = self.norm_value(val + attn)
        return ctx, val


class DualStreamEncoder(nn.Module):
    """Token + position embeddings for both streams, then ``n_blocks`` dual-stream blocks."""

    def __init__(
        self, num_skills: int, d_model: int, n_heads: int, n_blocks: int, d_ff: int, dropout: float, max_len: int
    ) -> None:
        super().__init__()
        self.num_skills = num_skills
        self.max_len = max_len
        self.context_embedding = nn.Embedding(2 * num_skills, d_model)
        self.value_embedding = nn.Embedding(2 * num_skills, d_model)
        self.position = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(DualStreamBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_blocks))

    def forward(
        self, skills: torch.Tensor, responses: torch.Tensor, bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, L, K] skills and [B, L] responses -> context and value streams, [B, L, d] each.

        ``bias``: optional additive attention scores [B, 1, L, L] that already hold the causal mask.
        """
        steps = skills.shape[1]
        if steps > self.max_len:
            raise ValueError(f"sequence of {steps} steps exceeds model.max_len={self.max_len}")
        valid = skills >= 0
        tokens = skills.clamp_min(0) + self.num_skills * responses.unsqueeze(-1)
        pos = self.position(torch.arange(steps, device=skills.device))
        ctx = embed_skill_sets(self.context_embedding, tokens, valid) + pos
        val = embed_skill_sets(self.value_embedding, tokens, valid) + pos
        for block in self.blocks:
            ctx, val = block(ctx, val, bias)
        return ctx, val
