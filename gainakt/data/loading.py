"""Turn (format, root, options) into an :class:`InteractionData`, through a content-keyed cache.

Every file format is a :class:`Reader` in :data:`FORMATS`; ``format=auto`` asks each one whether
it recognises ``root``. The cache key hashes the source files' bytes and the options the reader
uses (plus the split options), so a changed file or option builds a new entry; entries are written
atomically, so concurrent builders cannot corrupt one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gainakt.data.formats import akt, assist2009_raw, assist2015_raw, dtransformer, pykt, three_line
from gainakt.data.interactions import InteractionData
from gainakt.data.protocol import complete_folds
from gainakt.data.qmatrix import merge_skill_rows, skills_from_problems
from gainakt.data.synthetic import PROCESSES, SyntheticConfig, simulate
from gainakt.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when the processed form changes meaning
SPLIT_OPTIONS = ("split_seed",)  # options of the protocol's split, applied to every file format
ROW_OPTIONS = ("merge_skill_rows", "skills_from_problems")  # options applied to every format with problem ids


@dataclass(frozen=True)
class Reader:
    """A file format: the files it reads under ``root``, how to read them, and how to recognise them."""

    files: Callable[[str | Path | None], list[Path]]
    read: Callable[[str | Path | None, dict[str, Any]], InteractionData]
    detect: Callable[[Path], bool]
    options: tuple[str, ...]
    description: str


FORMATS: dict[str, Reader] = {
    "pykt": Reader(pykt.files, pykt.read, pykt.detect, pykt.OPTIONS, "pykt train_valid.csv + test.csv"),
    "three_line": Reader(
        three_line.files, three_line.read, three_line.detect, three_line.OPTIONS,
        "3-line count/skills/responses, *train + *test (DKVMN, DKT)",
    ),
    "akt": Reader(
        akt.files, akt.read, akt.detect, akt.OPTIONS, "AKT *test1..5.csv (id line, [problems], skills, responses)"
    ),
    "dtransformer": Reader(
        dtransformer.files, dtransformer.read, dtransformer.detect, dtransformer.OPTIONS,
        "4-line count/problems/skills/responses, train.txt + test.txt (DTransformer)",
    ),
    "assist2015_raw": Reader(
        assist2015_raw.files, assist2015_raw.read, assist2015_raw.detect, assist2015_raw.OPTIONS,
        "raw ASSISTments 2015 CSV (user_id,log_id,sequence_id,correct)",
    ),
    "assist2009_raw": Reader(
        assist2009_raw.files, assist2009_raw.read, assist2009_raw.detect, assist2009_raw.OPTIONS,
        "raw ASSISTments 2009-10 skill-builder CSV (order_id,user_id,problem_id,skill_id,correct,...)",
    ),
}
OBTAIN = (
    "Nothing is downloaded at run time: README.md, 'Getting the real datasets', says where to get each one "
    "(ASSISTments 2015 in pykt form: pykt-toolkit's data/assist2015)."
)
SYNTHETIC = "synthetic"
AUTO = "auto"


def detect_format(root: str | Path | None) -> str:
    """The one file format that recognises ``root``, or an error listing what was found and what is known."""
    known = "; ".join(f"{name}: {reader.description}" for name, reader in FORMATS.items())
    if root in (None, ""):
        raise ConfigError(
            "data.root is not set: expected the dataset folder (or raw CSV file), e.g. the folder holding "
            f"pykt's train_valid.csv and test.csv. Known formats: {known}. {OBTAIN}"
        )
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(
            f"data.root={root} does not exist: point data.root at the dataset folder (or raw CSV), or set "
            f"paths.data_root to the folder that holds <dataset>/<form> (e.g. assist2015/pykt), once for all "
            f"runs in conf/local/default.yaml. Known formats: {known}. {OBTAIN}"
        )
    matches = [name for name, reader in FORMATS.items() if reader.detect(path)]
    if len(matches) == 1:
        return matches[0]
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()) if path.is_dir() else [path.name]
    found = ", ".join(entries)
    if matches:
        raise ConfigError(
            f"data.format=auto: {root} fits several formats ({', '.join(matches)}); set data.format to one of them"
        )
    raise DataError(
        f"data.format=auto cannot tell the format of {root} (found: {found or 'nothing'}). "
        f"Known formats: {known}. Point data.root at a folder in one of them or set data.format."
    )


def load_dataset(
    format: str, root: str | None, options: dict[str, Any] | None = None, cache_dir: str | Path | None = None
) -> InteractionData:
    """Read a dataset, from the cache when the same files and options were read before."""
    options = dict(options or {})
    if format == AUTO:
        format = detect_format(root)
        log.info("data.format=auto: %s is in %s format", root, format)
    if format == SYNTHETIC:
        files: list[Path] = []
        used = options
        build: Callable[[], InteractionData] = lambda: _synthetic(options)  # noqa: E731
    elif format in FORMATS:
        reader = FORMATS[format]
        files = reader.files(root)
        used = {k: options[k] for k in (*reader.options, *SPLIT_OPTIONS, *ROW_OPTIONS) if k in options}
        build = lambda: _read(reader, root, used)  # noqa: E731
    else:
        raise ConfigError(f"data.format={format!r}; expected one of {', '.join([AUTO, SYNTHETIC, *FORMATS])}")
    if cache_dir is None:
        return build()
    key = _cache_key(format, files, used)
    path = Path(cache_dir).expanduser() / f"{format}-{key}.npz"
    if path.is_file():
        try:
            return InteractionData.load(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cache %s unreadable (%s); rebuilding", path, exc)
    log.info("processing %s data%s (cached afterwards in %s)", format, f" from {root}" if root else "", path)
    data = build()
    data.save(path)
    return data


def _synthetic(options: dict[str, Any]) -> InteractionData:
    try:
        cfg = SyntheticConfig(**options)
    except TypeError as exc:
        known = ", ".join(SyntheticConfig.__dataclass_fields__)
        raise ConfigError(f"data.synthetic: {exc}; known keys are {known}") from None
    if cfg.process not in PROCESSES:
        raise ConfigError(f"data.synthetic.process={cfg.process!r}: expected one of {', '.join(PROCESSES)}")
    return simulate(cfg)


def _read(reader: Reader, root: str | Path | None, options: dict[str, Any]) -> InteractionData:
    """Read, fold repeated skill rows if asked, and give students without a source fold one."""
    data = reader.read(root, options)
    if options.get("merge_skill_rows"):
        data = merge_skill_rows(data)
    if options.get("skills_from_problems"):
        data = skills_from_problems(data)
    seed = options.get("split_seed")
    data.fold = complete_folds(data.fold, seed=0 if seed is None else int(seed))
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
