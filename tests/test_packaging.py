"""The wheel is the whole product: one import name, the configs inside it, and it runs from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import CONF, TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps`` of the checkout (no build isolation: no network needed)."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (path,) = out.glob("gainakt-*.whl")
    return path


def test_wheel_holds_one_package_with_its_configs_and_callbacks(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"gainakt"}
    configs = {name.removeprefix("gainakt/conf/") for name in names if name.startswith("gainakt/conf/") and name.endswith(".yaml")}
    assert configs == {str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml") if p.parts[len(CONF.parts)] != "local"}
    callbacks = {Path(n).name for n in names if n.startswith("gainakt/callbacks/")}
    assert callbacks == {p.name for p in (ROOT / "callbacks").glob("*.py")}
    packages = {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    in_tree = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "gainakt").rglob("__init__.py")}
    assert packages == in_tree | {"gainakt/callbacks", "gainakt/conf"}


def test_installed_wheel_trains_from_an_empty_folder(wheel, tmp_path):
    """The wheel alone (dependencies from this environment) finds its configs from any folder and
    writes outputs/ there; the repository's top-level names are not importable from it."""
    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    isolated = [sys.executable, "-P"] if sys.version_info >= (3, 11) else [sys.executable]  # no cwd on sys.path

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*isolated, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    where = run("-c", "import gainakt, gainakt.conf, gainakt.callbacks; print(gainakt.__file__)")
    assert where.returncode == 0 and where.stdout.strip().startswith(str(site)), where.stderr
    assert run("-c", "import callbacks").returncode != 0
    done = run("-m", "gainakt.train", *TINY, "callbacks.verification.plots=false")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("Run folder: "))
    assert (work / run_dir).resolve().is_relative_to(work / "outputs" / "runs")
    assert (work / run_dir / "summary.json").is_file()


def test_ci_runs_the_readme_test_command_in_a_fresh_environment():
    """.ci/run must prove README's set-up command 2 on a clean slate: a new virtual environment in a
    temporary folder, then the command exactly as README prints it."""
    readme = (ROOT / "README.md").read_text().splitlines()
    command = readme[next(i for i, line in enumerate(readme) if line.startswith("# 2.")) + 1]
    assert command == 'pip install -c constraints/cpu.txt -e ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    steps = [line.strip() for line in ci if line.strip() and not line.lstrip().startswith("#")]
    assert steps[-1] == command  # the last step: its status is the script's
    assert "set -euo pipefail" in steps and any("mktemp -d" in s for s in steps) and any("-m venv" in s for s in steps)
    venv, activate, run = (next(i for i, s in enumerate(steps) if key in s) for key in ("-m venv", "activate", command))
    assert venv < activate < run
