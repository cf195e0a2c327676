"""Check the composed config before any work, with messages that name the key.

Hydra already rejects unknown keys typed on the command line; this catches wrong types and
impossible values that would otherwise surface as a traceback deep inside training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gainakt.errors import ConfigError
from gainakt.model.gainakt3exp import CHOICES


def _int(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), f"an integer >= {low}"


def _number(low: float, high: float | None = None, low_open: bool = False, high_open: bool = True):
    def ok(v: Any) -> bool:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return False
        above = v > low if low_open else v >= low
        below = True if high is None else (v < high if high_open else v <= high)
        return above and below

    left = "(" if low_open else "["
    right = "∞)" if high is None else (f"{high})" if high_open else f"{high}]")
    return ok, f"a number in {left}{low}, {right}"


_BOOL = (lambda v: isinstance(v, bool)), "true or false"

RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _int(0),
    "optim.lr": _number(0.0, low_open=True),
    "optim.weight_decay": _number(0.0),
    "optim.gains_lr_mult": _number(0.0, low_open=True),
    "optim.curve_lr_mult": _number(0.0, low_open=True),
    "data.fold": _int(0),
    "data.window": _int(2),
    "data.min_length": _int(2),
    "data.batch_size": _int(1),
    "data.eval_batch_size": _int(1),
    "data.num_workers": _int(0),
    "data.bucketing": _BOOL,
    "model.d_model": _int(1),
    "model.n_heads": _int(1),
    "model.n_blocks": _int(1),
    "model.d_ff": _int(1),
    "model.max_len": _int(2),
    "model.dropout": _number(0.0, 1.0),
    "model.student_gamma": _BOOL,
    "model.learn_temperature": _BOOL,
    "model.learn_offset": _BOOL,
    "model.beta_init": _number(0.0, low_open=True),
    "model.saturation_init": _number(0.0, 1.0, low_open=True),
    "model.gamma_init": _number(0.0, low_open=True),
    "model.theta_init": _number(0.0, 1.0, high_open=False),
    "model.temperature": _number(0.0, low_open=True),
    "model.variance_weight": _number(0.0),
    "trainer.max_epochs": _int(1),
}
RULES.update(
    {f"model.{key}": ((lambda v, options=options: v in options), " | ".join(options)) for key, options in CHOICES.items()}
)


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first invalid value (unset keys are left to their users)."""
    for key, (ok, expected) in RULES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not ok(value):
            raise ConfigError(f"{key}={value!r}: expected {expected}")
    d_model, n_heads = OmegaConf.select(cfg, "model.d_model"), OmegaConf.select(cfg, "model.n_heads")
    if d_model and n_heads and d_model % n_heads:
        raise ConfigError(f"model.d_model={d_model} is not divisible by model.n_heads={n_heads}")
    window, max_len = OmegaConf.select(cfg, "data.window"), OmegaConf.select(cfg, "model.max_len")
    if window and max_len and window > max_len:
        raise ConfigError(f"data.window={window} exceeds model.max_len={max_len}")
