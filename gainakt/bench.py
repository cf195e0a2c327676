"""Benchmark: ``python -m gainakt.bench [bench=quick] [overrides]`` (Hydra, config ``benchmark``).

Prints one JSON document (progress goes to stderr) and writes it into its folder as ``bench.json``;
what it measures is described in :mod:`gainakt.tools.benchmark`.
"""

from __future__ import annotations

import json
import logging
import sys

import hydra
from omegaconf import DictConfig

from gainakt.errors import GainAKTError
from gainakt.run.atomic import write_json_atomic
from gainakt.run.config import CONFIG_PATH, open_trainer_overrides
from gainakt.run.config_check import config_errors
from gainakt.run.folder import RunFolder
from gainakt.run.lifecycle import EXIT_CODES, prepare_process
from gainakt.tools.benchmark import run_benchmark

prepare_process()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="benchmark")
def main(cfg: DictConfig) -> None:
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        result = run_benchmark(cfg)
    except GainAKTError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CODES["failed"])
    write_json_atomic(RunFolder(cfg.run_dir).bench, result)
    print(json.dumps(result, indent=2, sort_keys=True), flush=True)


if __name__ == "__main__":
    sys.argv[1:] = open_trainer_overrides(sys.argv[1:])
    with config_errors("benchmark"):
        main()
