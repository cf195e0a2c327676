"""Check the composed config before any work, with messages that name the key.

Catches wrong types, impossible values and unknown keys (``+model.dmodel=32``: a key the object
it configures does not take) that would otherwise surface as a traceback deep inside training;
:func:`config_errors` turns Hydra's own composition errors (``model.dmodel=32``) into the same
one-line message and exit code.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from hydra.errors import HydraException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from gainakt.data.datamodule import AUTO
from gainakt.data.synthetic import PROCESSES
from gainakt.errors import ConfigError
from gainakt.model.gainakt3exp import CHOICES
from gainakt.model.module import ENCODERS


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

# validation metrics a checkpoint can be chosen by (max); val/per_encoder_auc composes best.ckpt per encoder
MONITORS = ("val/per_encoder_auc", "val/mean_auc", "val/enc1_auc", "val/enc2_auc")

RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _int(0),
    "monitor": ((lambda v: v in MONITORS), " | ".join(MONITORS)),
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
    "data.batch_tokens": ((lambda v: v == AUTO or _int(1)[0](v)), f"{AUTO} or an integer >= 1"),
    "data.eval_batch_tokens": _int(1),
    "data.bucketing": _BOOL,
    "data.pad_multiple": _int(1),
    "data.pool_batches": _int(1),
    "data.synthetic.process": ((lambda v: v in PROCESSES), " | ".join(PROCESSES)),
    "model.d_model": _int(1),
    "model.n_heads": _int(1),
    "model.n_blocks": _int(1),
    "model.d_ff": _int(1),
    "model.max_len": _int(2),
    "model.dropout": _number(0.0, 1.0),
    "model.student_gamma": _BOOL,
    "model.learn_temperature": _BOOL,
    "model.learn_offset": _BOOL,
    "model.response_ability": _BOOL,
    "model.skill_ability": _BOOL,
    "model.skill_recency": _BOOL,
    "model.related_skills": _int(0),
    "model.recent_ability": _number(0.0, 1.0),
    "model.skill_forgetting": _BOOL,
    "model.retriever": _BOOL,
    "model.history_enc1": _BOOL,
    "model.recurrent_enc1": _int(0),
    "model.skill_readout": _BOOL,
    "model.clip_per_encoder": _BOOL,
    "model.teacher_share": _number(0.0, 1.0, high_open=False),
    "model.beta_init": _number(0.0, low_open=True),
    "model.saturation_init": _number(0.0, 1.0, low_open=True),
    "model.gamma_init": _number(0.0, low_open=True),
    "model.theta_init": _number(0.0, 1.0, high_open=False),
    "model.temperature": _number(0.0, low_open=True),
    "model.variance_weight": _number(0.0),
    "model.waviness_weight": _number(0.0),
    "model.mastery_weight": _number(0.0),
    "model.guess_init": _number(0.0, 0.5, low_open=True),
    "model.slip_init": _number(0.0, 0.5, low_open=True),
    "model.guess_max": _number(0.0, 0.5, low_open=True, high_open=False),
    "model.slip_max": _number(0.0, 0.5, low_open=True, high_open=False),
    "callbacks.weight_average.epochs": _number(0.0),
    "callbacks.weight_average.encoders": (
        lambda v: OmegaConf.is_list(v) and 0 < len(v) == len(set(v)) and set(v) <= set(ENCODERS),
        f"a list of distinct encoders from {', '.join(ENCODERS)}",
    ),
    "trainer.max_epochs": _int(1),
    "threads": _int(1),
}
RULES.update(
    {f"model.{key}": ((lambda v, options=options: v in options), " | ".join(options)) for key, options in CHOICES.items()}
)


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first unknown key or invalid value."""
    check_keys(cfg)
    check_values(cfg)


def check_values(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first invalid value (unset keys are left to their users)."""
    for key, (ok, expected) in RULES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not ok(value):
            raise ConfigError(f"{key}={value!r}: expected {expected}")
    d_model, n_heads = OmegaConf.select(cfg, "model.d_model"), OmegaConf.select(cfg, "model.n_heads")
    if d_model and n_heads and d_model % n_heads:
        raise ConfigError(f"model.d_model={d_model} is not divisible by model.n_heads={n_heads}")
    theta = OmegaConf.select(cfg, "model.theta_init")
    if OmegaConf.select(cfg, "model.response") == "guess_slip" and theta in (0, 1):
        raise ConfigError(f"model.theta_init={theta}: model.response=guess_slip learns theta strictly inside (0, 1)")
    for name, off in (("response_ability", "false"), ("skill_ability", "false"), ("skill_recency", "false"),
                      ("related_skills", "0"), ("recent_ability", "0"), ("skill_forgetting", "false")):  # fmt: skip
        value = OmegaConf.select(cfg, f"model.{name}")
        if value and OmegaConf.select(cfg, "model.response") == "threshold":
            shown = "true" if value is True else value
            raise ConfigError(f"model.{name}={shown} needs model.response=guess_slip (it moves the guess and slip); "
                              f"with model.response=threshold add model.{name}={off}")
    waviness = OmegaConf.select(cfg, "model.waviness_weight")
    if waviness and OmegaConf.select(cfg, "model.skill_readout") is False:
        raise ConfigError(f"model.waviness_weight={waviness} smooths encoder 1's per-skill read-out, which "
                          "model.skill_readout=false leaves out: add model.waviness_weight=0")
    mastery = OmegaConf.select(cfg, "model.mastery_weight")
    if mastery and OmegaConf.select(cfg, "model.response") == "threshold":
        raise ConfigError(f"model.mastery_weight={mastery} adds a loss on encoder 2's prediction from mastery alone, "
                          "which model.response=threshold already is: add model.mastery_weight=0")
    for name in ("guess", "slip"):
        init, top = OmegaConf.select(cfg, f"model.{name}_init"), OmegaConf.select(cfg, f"model.{name}_max")
        if init is not None and top is not None and init >= top:
            raise ConfigError(f"model.{name}_init={init} must be below model.{name}_max={top}")
    window, max_len = OmegaConf.select(cfg, "data.window"), OmegaConf.select(cfg, "model.max_len")
    if window and max_len and window > max_len:
        raise ConfigError(f"data.window={window} exceeds model.max_len={max_len}")


# Where a target's **kwargs go: GainAKTModule passes **architecture to GainAKT3Exp, callbacks to their base.
FORWARDED_KWARGS = {
    "gainakt.model.module.GainAKTModule": "gainakt.model.gainakt3exp.GainAKT3Exp",
    "gainakt.callbacks.checkpoint.RunCheckpoint": "lightning.pytorch.callbacks.ModelCheckpoint",
    "gainakt.callbacks.early_stopping.ScheduleAwareEarlyStopping": "lightning.pytorch.callbacks.EarlyStopping",
}
SUPPLIED = {  # passed by the code, not the config
    "model": ("num_skills", "num_students", "optimizer", "lr_mults", "schedule"),
    "trainer": ("callbacks", "logger", "plugins"),
}


def _accepted(target: str) -> tuple[set[str], bool]:
    """Keyword names ``target`` accepts, and whether it takes any (an unforwarded ``**kwargs``)."""
    names: set[str] = set()
    while True:
        params = inspect.signature(get_object(target)).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        has_var = any(p.kind is p.VAR_KEYWORD for p in params)
        if not has_var or target not in FORWARDED_KWARGS:
            return names, has_var
        target = FORWARDED_KWARGS[target]


def _unknown_key(key: str, candidates: list[str]) -> ConfigError:
    parent, _, name = key.rpartition(".")
    near = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = f"; did you mean {(parent + '.' if parent else '') + near[0]}?" if near else ""
    return ConfigError(f"{key}: unknown key{hint}")


def check_keys(cfg: DictConfig) -> None:
    """Every key of a node built by ``_target_`` must be an argument of its target (optimiser:
    also the ``*_lr_mult`` multipliers), so a misspelt ``+key`` is caught before any work."""
    nodes = {key: cfg.get(key) for key in ("model", "data", "optim", "schedule", "trainer")}
    nodes.update({f"callbacks.{k}": v for k, v in (cfg.get("callbacks") or {}).items()})
    for path, node in nodes.items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        try:
            accepted, takes_any = _accepted(node._target_)
        except Exception:  # a target that does not import is reported when it is built
            continue
        if takes_any:
            continue
        accepted |= set(SUPPLIED.get(path, ()))
        for key in node:
            if key.startswith("_") or key in accepted or (path == "optim" and key.endswith("_lr_mult")):
                continue
            raise _unknown_key(f"{path}.{key}", sorted(accepted))


def _dotted_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node.keys():
        value = node._get_node(key)
        path = f"{prefix}{key}"
        keys += _dotted_keys(value, f"{path}.") if isinstance(value, DictConfig) else [path]
    return keys


def check_run_config(cfg: DictConfig) -> None:
    """The check ``gainakt.train`` makes before Hydra creates the run folder (conf/config.yaml's
    ``hydra.callbacks``): for ``resume=``/``rerun=``, of the saved run's config with this command's
    overrides on top, as the run will use it."""
    from gainakt.run.config import continued_config

    if cfg.get("resume") or cfg.get("rerun"):
        cfg = continued_config(cfg, [str(o) for o in cfg.hydra.overrides.task])
    check_config(cfg)


def _candidates(node: Any) -> list[str]:
    """The keys a config node may have: its own, and the arguments of the class it builds."""
    if not isinstance(node, DictConfig):
        return []
    keys = set(node.keys())
    if "_target_" in node:
        with contextlib.suppress(Exception):
            keys |= _accepted(node._target_)[0]
    return sorted(keys)


@contextlib.contextmanager
def config_errors(config_name: str) -> Iterator[None]:
    """Around an entry point's ``main()``: Hydra's own composition errors (an unknown key without
    ``+``, a group option that does not exist) become one line naming the key, exit code 2."""
    from gainakt.run.config import compose_config

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let Hydra raise instead of printing and exiting 1
    try:
        yield
    except HydraException as exc:
        cause = exc.__cause__ or exc.__context__
        key = getattr(cause, "full_key", None)
        if key:
            from hydra.core.global_hydra import GlobalHydra

            GlobalHydra.instance().clear()
            parent = key.rpartition(".")[0]
            reference = compose_config(config_name, [])
            node = OmegaConf.select(reference, parent) if parent else reference
            message = str(_unknown_key(key, _candidates(node)))
            elsewhere = [k for k in _dotted_keys(reference) if k.rpartition(".")[2] == key.rpartition(".")[2]]
            if "did you mean" not in message and elsewhere:
                message += f"; {key.rpartition('.')[2]} is set as {' or '.join(elsewhere)}"
        else:  # Hydra's message, on one line (e.g. a group option that does not exist, with the options)
            text = str(exc).split("Config search path")[0]
            message = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)
