"""Shared test helpers: compose the real Hydra config with tiny sizes."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from gainakt.data.datamodule import KTDataModule
from gainakt.model.gainakt3exp import GainAKT3Exp
from gainakt.run.config import CONFIG_MODULE, compose_config
from gainakt.verification.checks import Thresholds

# ../shared/data beside the checkout; searched upwards so git worktrees nested deeper find it too
SHARED_DATA = next(
    (p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONF = Path(str(importlib.resources.files(CONFIG_MODULE)))  # the config folder the package uses

TINY = [
    "data.synthetic.num_students=80",
    "data.synthetic.num_skills=6",
    "data.synthetic.min_length=10",
    "data.synthetic.max_length=40",
    "data.batch_size=16",
    "model.d_model=16",
    "model.n_heads=2",
    "model.n_blocks=1",
    "model.d_ff=32",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "callbacks.progress_bar=null",
]


def run_config(run_dir: Path, overrides: list[str] = (), tiny: bool = True) -> DictConfig:
    """The project's real config, as ``python -m gainakt.train`` composes it, with ``run_dir`` set."""
    base = list(TINY if tiny else [])
    if any(o.startswith("data=") and o != "data=synthetic" for o in overrides):
        base = [o for o in base if not o.startswith("data.synthetic.")]
    return compose_config("config", [*base, f"run_dir={run_dir}", *overrides])


def default_config() -> DictConfig:
    """The default training config, composed as ``python -m gainakt.train`` composes it."""
    return compose_config("config", [])


def make_net(num_skills: int, num_students: int = 0, **options: object) -> GainAKT3Exp:
    """GainAKT3Exp with conf/model/gainakt.yaml's options (their one source) and ``options`` on top."""
    model = OmegaConf.to_container(default_config().model, resolve=True)
    architecture = {k: v for k, v in model.items() if k not in ("_target_", "variance_weight", "compile", "cudnn_attention",
                                                                   "cuda_graphs", "clip_per_encoder", "teacher_share",
                                                                   "waviness_weight", "mastery_weight")}
    architecture["mastery_output"] = bool(model["mastery_weight"])  # as GainAKTModule sets it
    return GainAKT3Exp(num_skills=num_skills, num_students=num_students, **{**architecture, **options})


def make_module(num_skills: int, num_students: int = 0, **options: object):
    """GainAKTModule as ``build_model`` makes it from the default config, with ``model.<key>`` options on top."""
    from gainakt.run.config import build_model

    cfg = compose_config("config", [f"model.{key}={value}" for key, value in options.items()])
    return build_model(cfg, num_skills, num_students)


def make_datamodule(**options: object) -> KTDataModule:
    """KTDataModule with conf/data/synthetic.yaml's options (their one source) and ``options`` on top
    (``synthetic`` is merged key by key)."""
    data = OmegaConf.to_container(default_config().data, resolve=True)
    data.pop("_target_")
    synthetic = {**data.pop("synthetic"), **options.pop("synthetic", {})}
    return KTDataModule(**{**data, "synthetic": synthetic, **options})


# callbacks that write no files
MONITORS = ("gain_monitor", "monotonicity", "throughput", "finite_loss", "rng_state", "weight_average")
# real data's student-level terms on the logit (conf/epochs/real.yaml) with the mastery loss option: the training
# paths the synthetic demo's defaults leave out
REAL_DATA_OPTIONS = ("model.ability_in=logit", "model.mastery_weight=0.1")


def data_and_model(cfg: DictConfig, seed: int = 0) -> tuple[KTDataModule, Any]:
    """The DataModule of a composed config, set up for fitting, and a freshly seeded model."""
    import lightning as L
    from hydra.utils import instantiate

    from gainakt.run.config import build_model

    L.seed_everything(seed, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, datamodule.num_skills, datamodule.num_train_students, schedule=instantiate(cfg.schedule))
    return datamodule, model


def validate_checkpoint(cfg: DictConfig, ckpt: Path) -> dict[str, float]:
    """The validation metrics of a checkpoint on the validation split of the run ``cfg`` describes."""
    from gainakt.run.config import build

    datamodule, model = data_and_model(cfg)
    trainer = build(cfg.trainer, callbacks=[], logger=False)
    (validated,) = trainer.validate(model, datamodule=datamodule, ckpt_path=str(ckpt), verbose=False)
    return validated


def make_thresholds(**overrides: float) -> Thresholds:
    """The checks' thresholds of conf/checks/default.yaml, with ``overrides`` on top."""
    checks = OmegaConf.to_container(default_config().checks)
    checks.pop("_target_")
    return Thresholds(**{**checks, **overrides})


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep test caches out of the user's cache folder (one cache per test session)."""
    monkeypatch.setenv("GAINAKT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def tiny_config(tmp_path: Path):
    def make(*overrides: str) -> DictConfig:
        return run_config(tmp_path / "run", list(overrides))

    return make


def run_cli(module: str, args: list[str], cwd: Path, timeout: float = 300, **popen: object):
    """Run ``python -m <module> <args>`` in ``cwd`` as a user would, with the tiny test sizes."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        **popen,
    )  # fmt: skip
