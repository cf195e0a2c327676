"""Hydra plumbing shared by the entry points: resolvers, config location, resume and re-run."""

from __future__ import annotations

import inspect
import secrets
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from gainakt.errors import ConfigError, GainAKTError
from gainakt.run.checkpoint_io import read_checkpoint
from gainakt.run.folder import RunFolder, path_resolver

CONFIG_MODULE = "gainakt.conf"  # the configs ship inside the package (conf/ in the repository)
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"  # for @hydra.main: found in editable and wheel installs alike


def compose_config(config_name: str, overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """Compose a config as the entry points do, outside one (tests, ``gainakt.data.stats``)."""
    register_resolvers()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=return_hydra_config)


def continued_run(resume: str | None, ckpt_path: str | None) -> str | None:
    """The run folder a command continues: ``resume``, or the one holding ``ckpt_path``'s checkpoints/."""
    if resume:
        return str(resume)
    folder = RunFolder.of_checkpoint(ckpt_path) if ckpt_path else None
    return None if folder is None else str(folder.root)


def register_resolvers() -> None:
    """Resolvers used by conf/config.yaml's ``hydra`` block.

    ``${gainakt_uid:}`` is a short random id, cached per config so a folder name is stable; Hydra
    copies the cache into each sweep job, so jobs agree on the sweep folder while two runs started
    in the same second get different folders. ``${gainakt_run_dir:resume,ckpt_path,new}`` and
    ``${gainakt_output_subdir:resume,ckpt_path}`` make a resumed run write into its old folder
    without overwriting the saved Hydra config of the original command. ``${gainakt_one_minus:x}``
    is 1 - x (conf/sweep/phase2_im.yaml). ``${gainakt_gpu_precision:}`` picks the GPU trainer's
    mixed precision; ``${gainakt_on_cpu:${trainer.accelerator}}`` says whether training runs on a CPU.
    """
    if not OmegaConf.has_resolver("gainakt_gpu_precision"):
        OmegaConf.register_new_resolver("gainakt_gpu_precision", gpu_precision)
    if not OmegaConf.has_resolver("gainakt_on_cpu"):
        OmegaConf.register_new_resolver("gainakt_on_cpu", lambda accelerator: str(accelerator) == "cpu")
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
    OmegaConf.register_new_resolver("gainakt_path", path_resolver)


def _one_minus(value: float) -> float:
    """``${gainakt_one_minus:x}`` = 1 - x, rounded so 1 - 0.3 reads 0.7: pairs weights that sum to 1 in sweeps."""
    return round(1.0 - float(value), 12)


def override_key(override: str) -> str:
    """The config key of a command-line override: ``"+trainer.x=1"`` -> ``"trainer.x"``."""
    return override.split("=", 1)[0].lstrip("+~")


def saved_overrides(run_dir: str | Path) -> list[str]:
    """The command-line overrides a run was started with (Hydra keeps them in .hydra/overrides.yaml)."""
    path = RunFolder(run_dir).overrides
    if not path.is_file():
        raise ConfigError(f"{path} not found: expected a run folder written by python -m gainakt.train")
    overrides = OmegaConf.load(path)
    if not isinstance(overrides, ListConfig):
        raise ConfigError(f"{path}: expected a list of overrides")
    return [str(o) for o in overrides]


def recompose(saved: list[str], current: list[str], drop: tuple[str, ...]) -> DictConfig:
    """Compose the config of a saved run with this command's overrides on top (they win)."""
    mine = [o for o in current if override_key(o) not in drop]
    keys = {override_key(o) for o in mine}
    theirs = [o for o in saved if override_key(o) not in keys | set(drop)]
    return compose(config_name="config", overrides=theirs + mine)


def continued_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """For ``resume=``/``rerun=``: the saved run's overrides, with this command's ``overrides`` on top."""
    folder = cfg.resume or cfg.rerun
    if cfg.resume and cfg.rerun:
        raise ConfigError("resume and rerun: give one of them, not both")
    composed = recompose(saved_overrides(folder), overrides, drop=("resume", "rerun", "ckpt_path"))
    if cfg.resume:
        composed.resume = str(folder)
    return composed


def open_trainer_overrides(args: list[str]) -> list[str]:
    """Command-line arguments with ``trainer.<arg>=v``, for any argument of Lightning's ``Trainer``,
    turned into ``++trainer.<arg>=v`` (set or add).

    Hydra refuses to set a key that the composed config does not have unless the override starts
    with ``+``; the trainer presets set only some of the Trainer's arguments, and any of them may be
    given as ``trainer.<arg>=``. Other arguments pass unchanged; a misspelt name still stops with
    the nearest valid one.
    """
    from lightning.pytorch import Trainer

    names = set(inspect.signature(Trainer.__init__).parameters) - {"self"}
    opened = []
    for arg in args:
        key, sep, _ = arg.partition("=")
        group, _, name = key.partition(".")
        opened.append(f"++{arg}" if sep and group == "trainer" and name in names else arg)
    return opened


def absolute_data_root(data: DictConfig) -> None:
    """Make ``data.root`` absolute (from the current folder), so a saved config finds the data from anywhere."""
    if data.get("root"):
        data.root = str(Path(str(data.root)).expanduser().resolve())


def gpu_precision() -> str:
    """``${gainakt_gpu_precision:}`` (conf/trainer/gpu.yaml): bf16-mixed where the GPU computes in bf16
    natively, else 16-mixed. bf16 keeps fp32's range (no loss scaling); pre-Ampere GPUs only emulate it.
    """
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16-mixed"
    return "16-mixed"


def build(config: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, letting a user error raised by the target (a ConfigError) through unwrapped."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, GainAKTError):
            raise exc.__cause__ from None
        raise


def build_all(group: DictConfig | None) -> list[Any]:
    """Build every non-null entry of a name -> config mapping (callbacks, loggers)."""
    return [build(entry) for entry in (group or {}).values() if entry is not None]


LR_MULT_SUFFIX = "_lr_mult"  # optim.<group>_lr_mult: the learning-rate multiplier of one of the model's groups


def build_model(cfg: DictConfig, num_skills: int, num_students: int, **kwargs: Any) -> Any:
    """The model of ``cfg.model`` with its optimiser from ``cfg.optim``.

    ``optim`` is one flat group for the user (``optim.lr``, ``optim.curve_lr_mult``, ...): the
    ``*_lr_mult`` keys go to the model as its groups' multipliers, the rest is the optimiser's
    partial (``_target_``, ``lr``, ``weight_decay``, ...).
    """
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    lr_mults = {key.removesuffix(LR_MULT_SUFFIX): optim.pop(key) for key in list(optim) if key.endswith(LR_MULT_SUFFIX)}
    model = build(cfg.model, _partial_=True)  # objects passed through instantiate would become configs
    return model(num_skills=num_skills, num_students=num_students, optimizer=build(OmegaConf.create(optim)),
                 lr_mults=lr_mults, **kwargs)  # fmt: skip


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``, or the ``resume`` folder's last checkpoint, checked to be a readable checkpoint.

    A ``resume`` folder without one is a run stopped before its first epoch ended: it starts again
    from the beginning (None). A missing ``ckpt_path``, or no checkpoint in a folder that trained
    epochs, is a config error; a damaged file is a data error naming it.
    """
    if not (cfg.ckpt_path or cfg.resume):
        return None
    key, path = ("ckpt_path", Path(cfg.ckpt_path)) if cfg.ckpt_path else ("resume", RunFolder(cfg.resume).last_ckpt)
    if not path.is_file():
        trained = (RunFolder(cfg.resume).read_summary() or {}).get("epochs_run", 0) if key == "resume" else None
        if trained == 0:
            return None
        raise ConfigError(f"{key}: checkpoint {path} does not exist")
    read_checkpoint(path)
    return str(path)
