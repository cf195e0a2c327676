"""Hydra plumbing shared by the entry points: resolvers, config location, resume and re-run."""

from __future__ import annotations

import secrets
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from gainakt.errors import ConfigError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def continued_run(resume: str | None, ckpt_path: str | None) -> str | None:
    """The run folder a command continues: ``resume``, or the one holding ``ckpt_path``'s checkpoints/."""
    if resume:
        return str(resume)
    if ckpt_path and Path(ckpt_path).parent.name == "checkpoints":
        return str(Path(ckpt_path).parent.parent)
    return None


def register_resolvers() -> None:
    """Resolvers used by conf/config.yaml's ``hydra`` block.

    ``${gainakt_uid:}`` is a short random id, cached per config so a folder name is stable; Hydra
    copies the cache into each sweep job, so jobs agree on the sweep folder while two runs started
    in the same second get different folders. ``${gainakt_run_dir:resume,ckpt_path,new}`` and
    ``${gainakt_output_subdir:resume,ckpt_path}`` make a resumed run write into its old folder
    without overwriting the saved Hydra config of the original command. ``${gainakt_one_minus:x}``
    is 1 - x (conf/sweep/phase2_im.yaml). ``${gainakt_gpu_precision:}`` picks the GPU trainer's
    mixed precision.
    """
    if not OmegaConf.has_resolver("gainakt_gpu_precision"):
        OmegaConf.register_new_resolver("gainakt_gpu_precision", gpu_precision)
    if OmegaConf.has_resolver("gainakt_uid"):
        return
    OmegaConf.register_new_resolver("gainakt_uid", lambda: secrets.token_hex(3), use_cache=True)
    OmegaConf.register_new_resolver(
        "gainakt_run_dir", lambda resume, ckpt, new: continued_run(resume, ckpt) or new
    )
    OmegaConf.register_new_resolver(
        "gainakt_output_subdir", lambda resume, ckpt: None if continued_run(resume, ckpt) else ".hydra"
    )
    OmegaConf.register_new_resolver("gainakt_one_minus", _one_minus)


def _one_minus(value: float) -> float:
    """``${gainakt_one_minus:x}`` = 1 - x, rounded so 1 - 0.3 reads 0.7: pairs weights that sum to 1 in sweeps."""
    return round(1.0 - float(value), 12)


def override_key(override: str) -> str:
    """The config key of a command-line override: ``"+trainer.x=1"`` -> ``"trainer.x"``."""
    return override.split("=", 1)[0].lstrip("+~")


def saved_overrides(run_dir: str | Path) -> list[str]:
    """The command-line overrides a run was started with (Hydra keeps them in .hydra/overrides.yaml)."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: expected a run folder written by python -m gainakt.train")
    overrides = OmegaConf.load(path)
    if not isinstance(overrides, ListConfig):
        raise ConfigError(f"{path}: expected a list of overrides")
    return [str(o) for o in overrides]


def recompose(saved: list[str], current: list[str], drop: tuple[str, ...]) -> DictConfig:
    """Compose the config of a saved run with this command's overrides on top (they win)."""
    from hydra import compose

    mine = [o for o in current if override_key(o) not in drop]
    keys = {override_key(o) for o in mine}
    theirs = [o for o in saved if override_key(o) not in keys | set(drop)]
    return compose(config_name="config", overrides=theirs + mine)


def gpu_precision() -> str:
    """``${gainakt_gpu_precision:}`` (conf/trainer/gpu.yaml): bf16-mixed where the GPU computes in bf16
    natively, else 16-mixed. bf16 keeps fp32's range (no loss scaling); pre-Ampere GPUs only emulate it.
    """
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16-mixed"
    return "16-mixed"
