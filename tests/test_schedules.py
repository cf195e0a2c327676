"""Loss-weight schedules: pure functions of the epoch, validated before training."""

from __future__ import annotations

import warnings

import pytest
from yaml import safe_load as yaml_load
import yaml

from tests.conftest import CONF
from gainakt.errors import ConfigError
from gainakt.model.schedules import Constant, InverseWarmup, Linear, make_schedule

SCHEDULE_YAMLS = sorted((CONF / "schedule").glob("*.yaml"))
PAIRS = dict(phase1_bce=0.0, phase1_im=1.0, phase2_bce=0.7, phase2_im=0.3)  # V3's weights


def test_constant_is_the_same_every_epoch():
    s = Constant(0.5, 0.5)
    assert {s.weights(e) for e in range(20)} == {(0.5, 0.5)}


def test_inverse_warmup_splits_max_epochs_by_fraction():
    s = InverseWarmup(max_epochs=6, phase1_frac=0.5, phase1_epochs=None, **PAIRS)
    assert [s.weights(e) for e in range(6)] == [(0.0, 1.0)] * 3 + [(0.7, 0.3)] * 3


@pytest.mark.parametrize(
    ("max_epochs", "frac", "phase1"), [(30, 0.5, 15), (3, 0.34, 1), (10, 0.45, 5), (12, 0.4, 5), (3, 0.1, 1)]
)
def test_phase1_length_rounds_half_up_and_is_at_least_one(max_epochs, frac, phase1):
    assert InverseWarmup(max_epochs=max_epochs, phase1_frac=frac, phase1_epochs=None, **PAIRS).phase1_length == phase1


def test_phase1_epochs_wins_over_fraction_and_custom_weights():
    s = InverseWarmup(max_epochs=10, phase1_frac=0.5, phase1_epochs=2, phase1_bce=0.1, phase1_im=0.9,
                      phase2_bce=0.6, phase2_im=0.4)  # fmt: skip
    assert [s.weights(e) for e in (0, 1, 2, 9, 50)] == [(0.1, 0.9)] * 2 + [(0.6, 0.4)] * 3


def test_linear_moves_from_start_to_end():
    s = Linear(max_epochs=5, start_bce=0.0, start_im=1.0, end_bce=0.8, end_im=0.2)
    bce, im = zip(*(s.weights(e) for e in range(5)))
    assert bce == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert im == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert s.weights(9) == pytest.approx((0.8, 0.2))  # past the last epoch (a resumed, longer run)


@pytest.mark.parametrize(
    ("kind", "keys", "named"),
    [
        ("inverse_warmup", {"max_epochs": 6, "phase1_frac": 1.0}, "schedule.phase1_frac"),
        ("inverse_warmup", {"max_epochs": 6, "phase1_frac": 0.0}, "schedule.phase1_frac"),
        ("inverse_warmup", {"max_epochs": 6, "phase1_frac": -0.2}, "schedule.phase1_frac"),
        ("inverse_warmup", {"max_epochs": 6, "phase1_epochs": 0}, "schedule.phase1_epochs"),
        ("inverse_warmup", {"max_epochs": None, "phase1_frac": 0.5}, "schedule.max_epochs"),
        ("inverse_warmup", {"max_epochs": 6, "phase2_im": -0.3}, "schedule.phase2_im"),
        ("inverse_warmup", {"max_epochs": 6, "phase1_bce": 0.0, "phase1_im": 0.0}, "schedule.phase1_bce"),
        ("inverse_warmup", {"max_epochs": 6, "phase1_frac": None, "phase1_epochs": None}, "schedule.phase1_frac"),
        ("constant", {"bce": -1.0}, "schedule.bce"),
        ("constant", {"bce": None}, "schedule.bce"),
        ("constant", {"bce": 0.0, "im": 0.0}, "both 0"),
        ("linear", {"max_epochs": 4, "end_bce": 0.0, "end_im": 0.0}, "schedule.end_bce"),
        ("linear", {"max_epochs": 4, "start_im": float("nan")}, "schedule.start_im"),
        ("nope", {}, "schedule.kind"),
    ],
)
def test_invalid_values_name_the_key(kind, keys, named):
    path = CONF / "schedule" / f"{kind if kind != 'nope' else 'constant'}.yaml"
    defaults = {k: v for k, v in yaml_load(path.read_text()).items() if k not in ("_target_", "kind", "max_epochs")}
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        make_schedule(kind, **{**defaults, **keys})


def test_unused_key_is_ignored_with_a_warning():
    with pytest.warns(UserWarning, match=r"schedule\.phase1_frac=0\.4"):
        s = make_schedule("constant", max_epochs=5, bce=0.7, im=0.3, phase1_frac=0.4)
    assert s == Constant(0.7, 0.3)


def test_every_schedule_config_has_the_same_keys():
    keys = {path.stem: set(yaml.safe_load(path.read_text())) for path in SCHEDULE_YAMLS}
    assert {"constant", "inverse_warmup", "linear"} <= set(keys)
    assert len({frozenset(k) for k in keys.values()}) == 1, keys


@pytest.mark.parametrize("name", [p.stem for p in SCHEDULE_YAMLS])
def test_sweep_keys_override_every_schedule(tiny_config, name):
    """``-m schedule=... schedule.phase1_frac=...`` composes for every schedule; unused keys only warn."""
    from hydra.utils import instantiate

    cfg = tiny_config(f"schedule={name}", "schedule.phase1_frac=0.4", "schedule.phase2_im=0.2", "trainer.max_epochs=5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schedule = instantiate(cfg.schedule)
    ignored = [str(w.message) for w in caught if "does not use" in str(w.message)]
    if name == "inverse_warmup":
        assert not ignored
        assert schedule.phase1_length == 2 and schedule.weights(4) == (0.7, 0.2)
    else:
        assert len(ignored) == 1 and "schedule.phase1_frac=0.4" in ignored[0] and "schedule.phase2_im=0.2" in ignored[0]
