"""Dual-stream causal transformer encoder shared by both of GainAKT3Exp's encoders.

Queries and keys come from the context stream, values from the value stream (as in AKT); both
streams embed the interaction token x_t = q_t + C * r_t, and position t attends to 0..t.

Recency (``recency``): ``none`` attends by content and learned position only; ``linear`` adds
-lambda_h * (t - tau) to head h's scores (ALiBi with a learned slope per head and block: weights decay
exponentially with the number of steps between two interactions); ``alibi`` is the same with ALiBi's
fixed slopes, a bias without a gradient, which PyTorch's fused CPU attention takes (about three
times faster than ``linear`` at 200 steps); ``monotonic`` uses AKT's context-aware distance
(Ghosh et al., 2020), which counts the attention mass lying between tau and t, so a step far back
with little relevant in between still counts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gainakt.model.dropout import Dropout


def embed_skill_sets(table: nn.Embedding, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean embedding over each interaction's skill slots: [B, L, K] ids -> [B, L, d].

    Multi-skill interactions stay one row; padded slots (``valid`` false) do not count.
    """
    vectors = table(ids.clamp_min(0)) * valid.unsqueeze(-1)
    return vectors.sum(-2) / valid.sum(-1, keepdim=True).clamp_min(1)


def interaction_tokens(skills: torch.Tensor, responses: torch.Tensor, num_skills: int) -> torch.Tensor:
    """x = q + C * r per skill slot: [B, L, K] skills and [B, L] responses -> [B, L, K] token ids
    (padded slots hold a valid id; ``embed_skill_sets`` masks them)."""
    return skills.clamp_min(0) + num_skills * responses.unsqueeze(-1)


RECENCY = ("none", "linear", "alibi", "monotonic")


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's geometric slopes 2^(-8 h / H), h = 1..H: one head looks far back, another near."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])


def step_distance(steps: int, device: torch.device) -> torch.Tensor:
    """[L, L] t - tau (negative above the diagonal, where the causal mask applies)."""
    pos = torch.arange(steps, device=device, dtype=torch.float32)
    return pos[:, None] - pos[None, :]


def causal_mask(steps: int, device: torch.device) -> torch.Tensor:
    """[L, L] True where tau > t (the future)."""
    return torch.ones(steps, steps, dtype=torch.bool, device=device).triu(1)


def monotonic_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Monotonic attention with AKT's distance: scores - decay_h * d(t, tau), causal.

    d(t, tau) = sqrt((t - tau) * attention mass on steps tau+1..t) from the undecayed scores (no
    gradient, as in AKT), so attention fades with distance unless little happened in between.
    AKT multiplies the scores by exp(-decay_h * d) instead; subtracting in log space makes every
    weight fall with distance whatever the sign of its score (a multiplied score <= 0 does not).

    Args:
        q, k, v: [B, H, L, d_h]; decay: [H] non-negative rates; bias: optional additive [B, 1, L, L]
            scores (the causal mask is applied here either way).
    """
    steps = q.shape[-2]
    future = causal_mask(steps, q.device)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    scores = scores.masked_fill(future, float("-inf"))
    with torch.no_grad():
        weights = torch.softmax(scores, dim=-1)
        after = weights.sum(-1, keepdim=True) - weights.cumsum(-1)  # mass on tau+1..t
        distance = (after.clamp_min(0.0) * step_distance(steps, q.device).clamp_min(0.0)).sqrt()
    scores = scores - decay[:, None, None] * distance
    return torch.softmax(scores, dim=-1) @ v


def biased_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_h) + bias) v for an additive ``bias`` that holds the causal mask.

    On a CPU, PyTorch's attention takes a bias that needs a gradient (a learned recency slope, the
    skill-pair bias) only on its math path, which also scans every row for being fully masked (never
    true here: each step attends to itself) and costs about twice these three operations. A bias
    without a gradient goes to PyTorch's fused kernels, as does any bias on CUDA.
    """
    if q.device.type != "cpu" or not bias.requires_grad:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
    return torch.softmax(scores.add_(bias), dim=-1) @ v


class CausalAttention(nn.Module):
    """Multi-head attention of step t over steps 0..t, with the block's recency option.

    Queries, keys and values come from separate inputs, so the same module serves the dual-stream
    blocks (Q, K from context, V from value) and encoder 1's retriever (Q from the next question).
    """

    def __init__(self, d_model: int, n_heads: int, recency: str) -> None:
        super().__init__()
        if recency not in RECENCY:
            raise ValueError(f"recency={recency!r}; expected one of {', '.join(RECENCY)}")
        self.n_heads = n_heads
        self.recency = recency
        # Per-head decay rate lambda_h = softplus(raw): ALiBi's slopes to start with (linear), AKT's
        # xavier-sized draw (monotonic); alibi keeps ALiBi's slopes fixed; none has no parameter.
        self.decay_raw = None
        if recency == "alibi":
            self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)
        elif recency == "linear":
            self.decay_raw = nn.Parameter(torch.log(torch.expm1(alibi_slopes(n_heads))))
        elif recency == "monotonic":
            self.decay_raw = nn.Parameter(torch.empty(n_heads).uniform_(-1.0, 1.0))
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    @property
    def decay(self) -> torch.Tensor | None:
        """lambda_h >= 0 per head, or None without recency."""
        if self.recency == "alibi":
            return self.slopes
        return None if self.decay_raw is None else F.softplus(self.decay_raw)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, steps, d = x.shape
        return x.view(b, steps, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B, L, d] each -> [B, L, d]; ``bias``: optional additive [B, 1, L, L] scores holding the causal mask."""
        b, steps, d = queries.shape
        q, k, v = self._heads(self.query(queries)), self._heads(self.key(keys)), self._heads(self.value(values))
        if self.recency == "monotonic":
            attn = monotonic_attention(q, k, v, self.decay, bias)
        else:
            mask, decay = bias, self.decay
            if decay is not None:  # linear, alibi: a [1, H, L, L] bias (fused kernels take 4-d masks)
                recent = (-decay[:, None, None] * step_distance(steps, q.device))[None]
                recent = recent.masked_fill(causal_mask(steps, q.device), float("-inf"))
                mask = recent if bias is None else recent + bias
            if mask is None:
                attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                attn = biased_attention(q, k, v, mask)
        return self.out(attn.transpose(1, 2).reshape(b, steps, d))


class DualStreamBlock(nn.Module):
    """One post-LayerNorm block: attention (Q, K from context, V from value), FFN on context."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, recency: str) -> None:
        super().__init__()
        self.attention = CausalAttention(d_model, n_heads, recency)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), Dropout(dropout), nn.Linear(d_ff, d_model))
        self.norm_attn = nn.LayerNorm(d_model)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.norm_value = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(
        self, ctx: torch.Tensor, val: torch.Tensor, bias: torch.Tensor | None = None, update_context: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``update_context`` false returns ``ctx`` as it came: the last block of an encoder whose
        context stream nobody reads (encoder 2's) skips its feed-forward network."""
        # Dropout acts on the block's outputs, not on attention weights: a [B, H, L, L] mask per
        # block costs more than the rest of the block on a CPU.
        attn = self.dropout(self.attention(ctx, ctx, val, bias))
        if update_context:
            ctx = self.norm_attn(ctx + attn)
            ctx = self.norm_ffn(ctx + self.dropout(self.ffn(ctx)))
        val = self.norm_value(val + attn)
        return ctx, val


class DualStreamEncoder(nn.Module):
    """Token + position embeddings for both streams, then ``n_blocks`` dual-stream blocks."""

    def __init__(
        self, num_skills: int, d_model: int, n_heads: int, n_blocks: int, d_ff: int, dropout: float, max_len: int,
        recency: str,
    ) -> None:  # fmt: skip
        super().__init__()
        self.num_skills = num_skills
        self.max_len = max_len
        self.context_embedding = nn.Embedding(2 * num_skills, d_model)
        self.value_embedding = nn.Embedding(2 * num_skills, d_model)
        self.position = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(DualStreamBlock(d_model, n_heads, d_ff, dropout, recency) for _ in range(n_blocks))

    def forward(
        self, skills: torch.Tensor, responses: torch.Tensor, bias: torch.Tensor | None = None, context: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B, L, K] skills and [B, L] responses -> context and value streams, [B, L, d] each.

        ``bias``: optional additive attention scores [B, 1, L, L] that already hold the causal mask.
        ``context`` false: only the value stream is wanted; the context stream returned is None.
        """
        steps = skills.shape[1]
        if steps > self.max_len:
            raise ValueError(f"sequence of {steps} steps exceeds model.max_len={self.max_len}")
        valid = skills >= 0
        tokens = interaction_tokens(skills, responses, self.num_skills)
        pos = self.position(torch.arange(steps, device=skills.device))
        ctx = embed_skill_sets(self.context_embedding, tokens, valid) + pos
        val = embed_skill_sets(self.value_embedding, tokens, valid) + pos
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            ctx, val = block(ctx, val, bias, update_context=context or i < last)
        return (ctx if context else None), val


class RecurrentState(nn.Module):
    """DKT's state beside the attention: an LSTM over the interaction tokens, h_t after step t.

    Attention weighs past steps by content and distance; an LSTM carries a running summary that
    forgets at its own learned rate, which is what DKT predicts from. The loop over steps runs in
    PyTorch's LSTM kernel, not in Python.
    """

    def __init__(self, num_skills: int, d_model: int, width: int, dropout: float) -> None:
        super().__init__()
        self.num_skills = num_skills
        self.embedding = nn.Embedding(2 * num_skills, d_model)
        self.lstm = nn.LSTM(d_model, width, batch_first=True)
        self.dropout = Dropout(dropout)

    def forward(self, skills: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """[B, L, K] skills and [B, L] responses -> [B, L, width] states (padding after a sequence is read
        after it, so it never reaches an earlier step)."""
        inputs = embed_skill_sets(self.embedding, interaction_tokens(skills, responses, self.num_skills), skills >= 0)
        # In float32 under mixed precision (the embedding's output already is): oneDNN has no bf16 LSTM
        # on CPUs without bf16 instructions, and at this width the LSTM is a small part of a GPU's time.
        with torch.autocast(inputs.device.type, enabled=False):
            states, _ = self.lstm(inputs)
        return self.dropout(states)
