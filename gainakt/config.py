"""Hydra plumbing shared by the entry points: resolvers and config-path location."""

from __future__ import annotations

import secrets
from pathlib import Path

from omegaconf import OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def register_resolvers() -> None:
    """``${gainakt_uid:}``: a short random id, cached per config so a run folder name is stable.

    Hydra copies the cache from the sweep config into each job's, so all jobs of one sweep agree
    on the sweep folder, while two runs started in the same second get different folders.
    """
    if not OmegaConf.has_resolver("gainakt_uid"):
        OmegaConf.register_new_resolver("gainakt_uid", lambda: secrets.token_hex(3), use_cache=True)
