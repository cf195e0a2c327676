"""TensorBoard is how a user watches gain std live: a real ``tensorboard`` server over a run folder
must serve ``val/gain_std`` and the loss weights, with the values of metrics.csv."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from gainakt.run.epoch_csv import read_epoch_rows
from gainakt.run.folder import RunFolder
from gainakt.train import train

TAGS = ("val/gain_std", "weights/bce", "weights/im")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> object | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None  # not listening yet


def test_tensorboard_serves_gain_std_and_loss_weights(tiny_config, tmp_path):
    summary = train(tiny_config("trainer.max_epochs=2"))
    assert summary["status"] == "completed"
    folder = RunFolder(tmp_path / "run")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(folder.root), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/data/plugin/scalars"
    try:
        deadline, tags = time.time() + 90, {}
        while time.time() < deadline and server.poll() is None:
            tags = _get(f"{base}/tags") or {}
            if any(set(TAGS) <= set(run_tags) for run_tags in tags.values()):
                break
            time.sleep(0.5)
        if server.poll() is not None:
            pytest.fail(f"tensorboard exited with {server.returncode}: {server.stderr.read()[-2000:]}")
        (run,) = [name for name, run_tags in tags.items() if set(TAGS) <= set(run_tags)]
        rows = read_epoch_rows(folder.metrics_csv)
        for tag in TAGS:
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            points = _get(f"{base}/scalars?{query}")
            assert points is not None and len(points) == len(rows) == 2, (tag, points)
            values = [value for _wall_time, _step, value in points]
            assert values == pytest.approx([row[tag] for row in rows], rel=1e-6), tag
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)
