"""Loss-weight schedules: (w_bce, w_im) as a pure function of the epoch.

The module applies its schedule at every epoch start (:class:`gainakt.model.module.GainAKTModule`);
the values live in ``conf/schedule/*.yaml`` only, so the classes here have no defaults.

Being pure functions of the epoch, they need no state in a checkpoint: a resumed run lands in
the right phase by construction.

Every ``conf/schedule/*.yaml`` carries the same keys (those a schedule does not use are null), so an
override such as ``schedule.phase1_frac=0.4`` is valid whichever schedule is selected;
:func:`make_schedule` builds the named schedule from its own keys and warns about set keys it ignores.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from typing import Any, Protocol

from gainakt.errors import ConfigError


class Schedule(Protocol):
    def weights(self, epoch: int) -> tuple[float, float]:
        """(w_bce, w_im) for the 0-based ``epoch``."""


def _is_count(value: object, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_pair(bce: float, im: float, bce_key: str, im_key: str) -> None:
    for key, value in ((bce_key, bce), (im_key, im)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigError(f"schedule.{key}={value!r}: expected a finite number >= 0")
        if value < 0:
            raise ConfigError(f"schedule.{key}={value}: loss weights must be >= 0")
    if bce == 0 and im == 0:
        raise ConfigError(f"schedule.{bce_key} and schedule.{im_key} are both 0, so nothing would train")


@dataclass(frozen=True)
class Constant:
    """The same weights every epoch (V0-V2 of the original study)."""

    bce: float
    im: float

    def __post_init__(self) -> None:
        _check_pair(self.bce, self.im, "bce", "im")

    def weights(self, epoch: int) -> tuple[float, float]:
        return self.bce, self.im


@dataclass(frozen=True)
class InverseWarmup:
    """V3 of the original study: IM only first, so encoder 2 cannot lean on a compromise, then mostly BCE.

    Phase 1 lasts ``phase1_epochs`` epochs when given, else ``phase1_frac`` of ``max_epochs``
    (rounded half up, at least one epoch). Phase 1 measured as a share of ``max_epochs`` moves when a
    resumed run raises ``max_epochs``; set ``phase1_epochs`` to keep it fixed.
    """

    max_epochs: int | None
    phase1_frac: float | None
    phase1_epochs: int | None
    phase1_bce: float
    phase1_im: float
    phase2_bce: float
    phase2_im: float

    def __post_init__(self) -> None:
        _check_pair(self.phase1_bce, self.phase1_im, "phase1_bce", "phase1_im")
        _check_pair(self.phase2_bce, self.phase2_im, "phase2_bce", "phase2_im")
        if self.phase1_epochs is not None:
            if not _is_count(self.phase1_epochs):
                raise ConfigError(f"schedule.phase1_epochs={self.phase1_epochs!r}: expected an integer >= 1 (or null)")
            return
        frac = self.phase1_frac
        if frac is None:
            raise ConfigError("schedule.phase1_frac and schedule.phase1_epochs are both null: set one of them")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise ConfigError(f"schedule.phase1_frac={frac!r}: expected a fraction strictly between 0 and 1")
        if not _is_count(self.max_epochs):
            raise ConfigError(
                f"schedule.max_epochs={self.max_epochs!r}: phase1_frac needs a positive number of epochs "
                "(set trainer.max_epochs, or schedule.phase1_epochs instead of phase1_frac)"
            )

    @property
    def phase1_length(self) -> int:
        """Number of phase-1 epochs."""
        if self.phase1_epochs is not None:
            return self.phase1_epochs
        assert self.phase1_frac is not None and self.max_epochs is not None
        return max(1, math.floor(self.phase1_frac * self.max_epochs + 0.5))

    def weights(self, epoch: int) -> tuple[float, float]:
        if epoch < self.phase1_length:
            return self.phase1_bce, self.phase1_im
        return self.phase2_bce, self.phase2_im


@dataclass(frozen=True)
class Linear:
    """Weights move in a straight line from the start pair (epoch 0) to the end pair (last epoch)."""

    max_epochs: int | None
    start_bce: float
    start_im: float
    end_bce: float
    end_im: float

    def __post_init__(self) -> None:
        _check_pair(self.start_bce, self.start_im, "start_bce", "start_im")
        _check_pair(self.end_bce, self.end_im, "end_bce", "end_im")
        if not _is_count(self.max_epochs):
            raise ConfigError(f"schedule.max_epochs={self.max_epochs!r}: expected a positive number of epochs")

    def weights(self, epoch: int) -> tuple[float, float]:
        # Both pairs are >= 0 and not both zero, so every point between them is too.
        t = min(epoch / (self.max_epochs - 1), 1.0) if self.max_epochs > 1 else 1.0
        return (
            self.start_bce + t * (self.end_bce - self.start_bce),
            self.start_im + t * (self.end_im - self.start_im),
        )


SCHEDULES: dict[str, type] = {"constant": Constant, "inverse_warmup": InverseWarmup, "linear": Linear}


def make_schedule(kind: str, **keys: Any) -> Schedule:
    """Build schedule ``kind`` from the shared key set of ``conf/schedule``.

    Keys the schedule does not use should be null; a set one is ignored with a warning naming it, so
    a sweep that crosses schedules still runs every job. ``max_epochs`` (interpolated from the
    trainer) is context, passed to the schedules that need it and never warned about.
    """
    if kind not in SCHEDULES:
        raise ConfigError(f"schedule.kind={kind!r}: expected one of {', '.join(SCHEDULES)}")
    cls = SCHEDULES[kind]
    own = {f.name for f in fields(cls)}
    ignored = sorted(k for k, v in keys.items() if k not in own and k != "max_epochs" and v is not None)
    if ignored:
        warnings.warn(
            f"schedule {kind!r} does not use {', '.join(f'schedule.{k}={keys[k]}' for k in ignored)}; ignored",
            stacklevel=2,
        )
    return cls(**{k: v for k, v in keys.items() if k in own})
