"""Shared test helpers: compose the real Hydra config with tiny sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gainakt.config import CONFIG_DIR, register_resolvers

# ../shared/data beside the checkout; searched upwards so git worktrees nested deeper find it too
SHARED_DATA = next(
    (p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)
FIXTURES = Path(__file__).resolve().parent / "fixtures"

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


def compose_config(run_dir: Path, overrides: list[str] = (), tiny: bool = True) -> DictConfig:
    """The project's real config, as ``python -m gainakt.train`` composes it, with ``run_dir`` set."""
    register_resolvers()
    base = list(TINY if tiny else [])
    if any(o.startswith("data=") and o != "data=synthetic" for o in overrides):
        base = [o for o in base if not o.startswith("data.synthetic.")]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=[*base, f"run_dir={run_dir}", *overrides])


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep test caches out of the user's cache folder (one cache per test session)."""
    monkeypatch.setenv("GAINAKT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def tiny_config(tmp_path: Path):
    def make(*overrides: str) -> DictConfig:
        return compose_config(tmp_path / "run", list(overrides))

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
