"""Loss-weight schedules: (w_bce, w_im) as a pure function of the epoch.

Being pure functions of the epoch, they need no state in a checkpoint: a resumed run lands in
the right phase by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from gainakt.errors import ConfigError


def _check_pair(bce: float, im: float, key: str) -> None:
    if bce < 0 or im < 0:
        raise ConfigError(f"{key}: loss weights must be >= 0, got bce={bce}, im={im}")
    if bce == 0 and im == 0:
        raise ConfigError(f"{key}: bce and im weights are both 0, so nothing would train")


@dataclass(frozen=True)
class Constant:
    """The same weights every epoch (V0-V2 of the original study)."""

    bce: float = 0.7
    im: float = 0.3

    def __post_init__(self) -> None:
        _check_pair(self.bce, self.im, "schedule")

    def weights(self, epoch: int) -> tuple[float, float]:
        return self.bce, self.im
