"""Checkpoint writing that never leaves a truncated ``.ckpt`` behind, and reading that names a damaged one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from gainakt.errors import ConfigError, DataError
from gainakt.run.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves to a temporary file in the same folder, then renames it over the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The contents of a checkpoint written by ``gainakt.train``.

    A truncated file, or one that is not a Lightning checkpoint, is a :class:`DataError` naming
    the file (instead of a pickle or zip traceback from deep inside Lightning).
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, unreadable file: all the same to the user
        reason = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else "unreadable"
        raise DataError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {reason}); it is damaged (e.g. "
            "truncated by a full disk or an unfinished copy) or not a checkpoint saved by gainakt.train"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DataError(f"{path} is not a Lightning checkpoint (no state_dict in it): pass a .ckpt saved by gainakt.train")
    return checkpoint


def check_ckpt_path(cfg: Any) -> None:
    """``ckpt_path`` names a readable checkpoint: ``gainakt.evaluate`` checks it before its folder
    exists (conf/evaluate.yaml's ``hydra.callbacks``) and again when it runs."""
    ckpt = Path(str(cfg.ckpt_path)).expanduser()
    if not ckpt.is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
    read_checkpoint(ckpt)
