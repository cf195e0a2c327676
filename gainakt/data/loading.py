"""Turn (format, root, options) into an :class:`InteractionData`, through a content-keyed cache.

The cache key hashes the source files' bytes and the reader options, so a changed file or option
builds a new entry; entries are written atomically, so concurrent builders cannot corrupt one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gainakt.data import pykt
from gainakt.data.interactions import InteractionData
from gainakt.data.synthetic import SyntheticConfig, simulate
from gainakt.errors import ConfigError

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the processed form changes meaning


def _synthetic(root: str | None, options: dict[str, Any]) -> InteractionData:
    try:
        cfg = SyntheticConfig(**options)
    except TypeError as exc:
        known = ", ".join(SyntheticConfig.__dataclass_fields__)
        raise ConfigError(f"data.synthetic: {exc}; known keys are {known}") from None
    return simulate(cfg)


def _synthetic_files(root: str | None) -> list[Path]:
    return []


# format name -> (files it reads under root, reader)
FORMATS: dict[str, tuple[Callable[[str | None], list[Path]], Callable[..., InteractionData]]] = {
    "synthetic": (_synthetic_files, _synthetic),
    "pykt": (pykt.required_files, lambda root, options: pykt.read_pykt(root)),
}


def load_dataset(
    format: str, root: str | None, options: dict[str, Any] | None = None, cache_dir: str | Path | None = None
) -> InteractionData:
    """Read a dataset, from the cache when the same files and options were read before."""
    if format not in FORMATS:
        raise ConfigError(f"data.format={format!r}; expected one of {', '.join(FORMATS)}")
    list_files, read = FORMATS[format]
    options = dict(options or {})
    files = list_files(root)
    if cache_dir is None:
        return read(root, options)
    key = _cache_key(format, files, options)
    path = Path(cache_dir).expanduser() / f"{format}-{key}.npz"
    if path.is_file():
        try:
            return InteractionData.load(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cache %s unreadable (%s); rebuilding", path, exc)
    log.info("processing %s data%s (cached afterwards in %s)", format, f" from {root}" if root else "", path)
    data = read(root, options)
    data.save(path)
    return data


def _cache_key(format: str, files: list[Path], options: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, format, options], sort_keys=True, default=str).encode())
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:20]
