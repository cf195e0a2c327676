"""Effective practice EP_t = sum over tau <= t of the gains applied at tau, without a loop over t.

Two vectorised paths:
- ``accumulate_dense``: a cumulative sum over [B, L, C]; needed when every skill gains every step
  (``accumulate: all``) or when all skills' mastery is wanted.
- ``accumulate_gathered``: EP only at the skills one asks about, from gains only at the practised
  skills. It compares skill ids pairwise over time ([B, L, L, J, K]), so its cost does not grow
  with the number of skills C.
- ``accumulate_scattered``: the same values from a cumulative sum over [B, L, C] of the practised
  skills' gains: cheaper than the pairwise comparison when L * J * K exceeds C (long windows,
  multi-skill steps). ``accumulate_practised`` picks the cheaper of the two for a batch's shape.
``last_practice`` finds, by the same two paths, when each asked-about skill was last practised and
how that answer went (encoder 2's ``skill_recency``).
``accumulate_reference`` is the original per-step loop, kept as the yardstick for tests and the
benchmark.
"""

from __future__ import annotations

import torch


def skill_multi_hot(skills: torch.Tensor, num_skills: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[B, L, K] skill ids (-1 = empty slot) -> [B, L, C] 0/1 mask of each step's practised skills."""
    valid = skills >= 0
    hot = torch.zeros(*skills.shape[:2], num_skills, dtype=dtype, device=skills.device)
    return hot.scatter_add_(-1, skills.clamp_min(0), valid.to(dtype)).clamp_max_(1)


def scatter_gains(gains: torch.Tensor, skills: torch.Tensor, num_skills: int) -> torch.Tensor:
    """Place gains of the practised skills ([B, L, K]) into a dense [B, L, C] tensor."""
    dense = torch.zeros(*skills.shape[:2], num_skills, dtype=gains.dtype, device=gains.device)
    return dense.scatter_add(-1, skills.clamp_min(0), gains * (skills >= 0))


def accumulate_dense(gains: torch.Tensor, practiced: torch.Tensor | None = None) -> torch.Tensor:
    """EP_t = cumsum of gains (masked to ``practiced`` when given) over time: [B, L, C]."""
    applied = gains if practiced is None else gains * practiced
    return applied.cumsum(dim=1)


def accumulate_gathered(
    gains: torch.Tensor, skills: torch.Tensor, targets: torch.Tensor, inclusive: bool = True
) -> torch.Tensor:
    """EP at chosen skills, from gains applied only to practised skills.

    Args:
        gains: [B, L, K] gain applied at step tau to its k-th practised skill.
        skills: [B, L, K] practised skill ids, -1 for empty slots (their gains are ignored).
        targets: [B, L, J] skill ids whose EP is wanted at each step t (-1 gives 0).
        inclusive: sum over tau <= t (mastery after step t) or tau < t (before step t).

    Returns:
        [B, L, J]: EP_t[targets[b, t, j]].
    """
    return torch.einsum("btsjk,bsk->btj", _same_skill(skills, targets, inclusive).to(gains.dtype), gains)


def accumulate_dense_at(applied: torch.Tensor, targets: torch.Tensor, inclusive: bool = True) -> torch.Tensor:
    """EP at ``targets`` ([B, L, J], -1 gives 0) from the gains applied at every step to every skill
    ([B, L, C]): the cumulative sum over tau <= t (``inclusive``) or tau < t."""
    ep = accumulate_dense(applied)
    if not inclusive:
        ep = torch.cat([torch.zeros_like(ep[:, :1]), ep[:, :-1]], dim=1)
    return ep.gather(-1, targets.clamp_min(0)) * (targets >= 0)


def accumulate_scattered(
    gains: torch.Tensor, skills: torch.Tensor, targets: torch.Tensor, num_skills: int, inclusive: bool = True
) -> torch.Tensor:
    """:func:`accumulate_gathered`'s result from a [B, L, C] cumulative sum of the practised gains."""
    return accumulate_dense_at(scatter_gains(gains, skills, num_skills), targets, inclusive)


def accumulate_practised(
    gains: torch.Tensor, skills: torch.Tensor, targets: torch.Tensor, num_skills: int, inclusive: bool = True
) -> torch.Tensor:
    """EP at ``targets`` from the practised skills' gains, by the cheaper path for this shape: the
    pairwise comparison costs ~L * L * J * K per window, the cumulative sum ~L * C."""
    if _scatter_is_cheaper(skills, targets, num_skills):
        return accumulate_scattered(gains, skills, targets, num_skills, inclusive)
    return accumulate_gathered(gains, skills, targets, inclusive)


def _scatter_is_cheaper(skills: torch.Tensor, targets: torch.Tensor, num_skills: int) -> bool:
    """Whether a pass over [B, L, C] costs less than the pairwise comparison (~L * J * K vs C per step)."""
    return skills.shape[1] * targets.shape[-1] * skills.shape[-1] > num_skills


def _same_skill(skills: torch.Tensor, targets: torch.Tensor, inclusive: bool) -> torch.Tensor:
    """[B, t, tau, J, K]: step tau's k-th skill is ``targets[:, t, j]``, for tau <= t (``inclusive``) or tau < t."""
    steps = skills.shape[1]
    causal = torch.ones(steps, steps, dtype=torch.bool, device=skills.device).tril(0 if inclusive else -1)
    same = targets[:, :, None, :, None] == skills[:, None, :, None, :]
    return same & (skills >= 0)[:, None, :, None, :] & causal[None, :, :, None, None]


def last_practice(
    skills: torch.Tensor, responses: torch.Tensor, targets: torch.Tensor, num_skills: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(last answer, recency) at ``targets`` ([B, L, J], -1 empty) over steps 0..t, each [B, L, J].

    last answer is +1 or -1 for the latest answer that practised the skill (0 if none); recency is
    1 / (1 + steps since then): 1 when step t practised it, 0 if it never was. One key per step,
    2 * (tau + 1) + r_tau, makes the latest step the largest, so a max finds both at once.
    """
    tau = torch.arange(skills.shape[1], device=skills.device)
    key = (2 * (tau + 1) + responses.long()).float()  # [B, L]
    if _scatter_is_cheaper(skills, targets, num_skills):  # running max over [B, L, C]
        latest = (skill_multi_hot(skills, num_skills) * key[..., None]).cummax(dim=1).values
        latest = latest.gather(-1, targets.clamp_min(0))
    else:  # pairwise, as accumulate_gathered
        latest = (_same_skill(skills, targets, inclusive=True) * key[:, None, :, None, None]).amax(dim=(2, 4))
    latest = latest * (targets >= 0)
    seen = latest > 0
    last = torch.where(seen, 2 * latest.remainder(2) - 1, torch.zeros_like(latest))
    since = tau[None, :, None] - (latest.div(2, rounding_mode="floor") - 1)
    recency = torch.where(seen, 1.0 / (1.0 + since), torch.zeros_like(latest))
    return last, recency


def practice_gap(recency: torch.Tensor) -> torch.Tensor:
    """-log(1 + steps since a skill was last practised), from :func:`last_practice`'s recency: 0 when
    step t practised it, more negative the more questions on other skills came since, and 0 for a
    skill never practised (its first question is answered like one just practised). The log: each
    further step away matters less."""
    return torch.where(recency > 0, recency.clamp_min(1e-12).log(), torch.zeros_like(recency))


def accumulate_reference(gains: torch.Tensor, practiced: torch.Tensor | None = None) -> torch.Tensor:
    """The original code's loop: copy the state at every step and add that step's gains."""
    state = torch.zeros_like(gains[:, 0])
    history = []
    for t in range(gains.shape[1]):
        state = state.clone()
        state += gains[:, t] if practiced is None else gains[:, t] * practiced[:, t]
        history.append(state)
    return torch.stack(history, dim=1)
