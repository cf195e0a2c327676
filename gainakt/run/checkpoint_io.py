"""Checkpoint writing that never leaves a truncated ``.ckpt`` behind."""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from gainakt.run.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves to a temporary file in the same folder, then renames it over the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)
