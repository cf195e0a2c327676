"""The moving average of the weights (callbacks.weight_average): its arithmetic, and that validation,
the checkpoints and the test see the average while training goes on from the training weights."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from gainakt.callbacks.weight_average import average_step_weight, step_decay
from gainakt.train import train

from .conftest import validate_checkpoint


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9])
def test_step_weights_give_the_normalised_exponential_average(decay):
    weights = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    average = torch.zeros(3)
    for n, w in enumerate(weights, start=1):
        average.lerp_(w, average_step_weight(decay, n))
    powers = torch.tensor([decay ** (len(weights) - 1 - i) for i in range(len(weights))])
    assert torch.allclose(average, (powers[:, None] * weights).sum(0) / powers.sum())
    assert average_step_weight(decay, 1) == 1.0  # the first update copies the weights


def test_span_in_epochs_sets_the_decay_per_step():
    assert step_decay(1.0, 200) == pytest.approx(0.995)
    assert step_decay(2.0, 20) == pytest.approx(0.975)
    assert step_decay(0.0, 200) == 0.0  # the last step's weights
    assert step_decay(0.25, 2) == 0.0  # a span under one step: the last step's weights


class RecordWeights(L.Callback):
    """The training weights after every optimiser step."""

    steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        RecordWeights.steps.append({name: p.detach().clone() for name, p in pl_module.named_parameters()})


def test_validation_checkpoints_and_resume_see_the_average(tiny_config, tmp_path):
    """last.ckpt holds the average of every step's training weights (what the last validation saw)
    and keeps the training weights themselves for resuming."""
    RecordWeights.steps = []
    decay = 0.75  # a span of 2 epochs of 2 steps
    cfg = tiny_config("trainer.max_epochs=2", "callbacks.early_stopping=null", "callbacks.verification=null",
                      "callbacks.weight_average.epochs=2", f"+callbacks.record._target_={__name__}.RecordWeights")  # fmt: skip
    assert train(cfg)["status"] == "completed"
    steps = RecordWeights.steps
    assert len(steps) == 4  # 2 epochs of 2 batches
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    (state,) = [s for k, s in last["callbacks"].items() if k.startswith("WeightAverage")]
    assert state["swapped"] and state["updates"] == 4
    names = list(steps[0])  # the callback's order: the module's parameters
    powers = torch.tensor([decay ** (len(steps) - 1 - i) for i in range(len(steps))])
    moved = 0
    for name, training in zip(names, state["other"], strict=True):
        expected = sum(p * s[name] for p, s in zip(powers, steps)) / powers.sum()
        torch.testing.assert_close(last["state_dict"][name], expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(training, steps[-1][name])
        moved += not torch.equal(last["state_dict"][name], training)
    assert moved  # the average is not the last step's weights


def test_an_encoder_left_out_keeps_the_last_step_weights(tiny_config, tmp_path):
    """encoders=[enc1]: last.ckpt holds encoder 1's average and encoder 2's last training step."""
    from gainakt.model.gainakt3exp import ENCODER1_MODULES

    RecordWeights.steps = []
    decay = 0.75
    cfg = tiny_config("trainer.max_epochs=2", "callbacks.early_stopping=null", "callbacks.verification=null",
                      "callbacks.weight_average.epochs=2", "callbacks.weight_average.encoders=[enc1]",
                      f"+callbacks.record._target_={__name__}.RecordWeights")  # fmt: skip
    assert train(cfg)["status"] == "completed"
    steps = RecordWeights.steps
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    (state,) = [s for k, s in last["callbacks"].items() if k.startswith("WeightAverage")]
    enc1 = [name for name in steps[0] if name.split(".")[1] in ENCODER1_MODULES]
    assert enc1 and len(state["other"]) == len(enc1) < len(steps[0])
    powers = torch.tensor([decay ** (len(steps) - 1 - i) for i in range(len(steps))])
    for name in steps[0]:
        if name in enc1:
            expected = sum(p * s[name] for p, s in zip(powers, steps)) / powers.sum()
            torch.testing.assert_close(last["state_dict"][name], expected, rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(last["state_dict"][name], steps[-1][name]), name


@pytest.mark.parametrize("encoders", ["[enc3]", "[]", "[enc1,enc1]", "enc1"])
def test_unknown_encoders_name_the_key(tiny_config, encoders):
    from gainakt.errors import ConfigError
    from gainakt.run.config_check import check_config

    with pytest.raises(ConfigError, match=r"callbacks.weight_average.encoders=.*: expected a list of distinct encoders"):
        check_config(tiny_config(f"callbacks.weight_average.encoders={encoders}"))


def test_negative_span_names_the_key(tiny_config):
    from gainakt.errors import ConfigError
    from gainakt.run.config_check import check_config

    with pytest.raises(ConfigError, match=r"callbacks.weight_average.epochs=-1: expected a number in \[0.0, ∞\)"):
        check_config(tiny_config("callbacks.weight_average.epochs=-1"))


def test_a_span_of_zero_is_the_run_without_the_average(tiny_config, tmp_path):
    """epochs=0 averages nothing: swapping the copies in and out leaves training and every metric
    exactly as without the callback."""
    results = []
    for option in ("callbacks.weight_average.epochs=0", "callbacks.weight_average=null"):
        cfg = tiny_config("trainer.max_epochs=2", "callbacks.early_stopping=null", "callbacks.verification=null", option)
        cfg.run_dir = str(tmp_path / option.split("=")[0].replace(".", "_") / option.split("=")[1])
        summary = train(cfg)
        assert summary["status"] == "completed"
        results.append({k: v for k, v in summary.items() if k.startswith(("test/", "val/"))})
    assert results[0] == results[1] and "test/enc1_auc" in results[0]


def test_best_checkpoint_composed_per_encoder_holds_the_averaged_weights(tiny_config, tmp_path):
    """With monitor=val/per_encoder_auc, validating best.ckpt gives back each encoder's logged AUC of
    the epoch it holds: the file holds the averaged weights that were validated, not the training ones."""
    import csv

    cfg = tiny_config("trainer.max_epochs=4", "monitor=val/per_encoder_auc", "callbacks.early_stopping=null",
                      "callbacks.verification=null", "callbacks.weight_average.epochs=2")  # fmt: skip
    assert train(cfg)["status"] == "completed"
    run = tmp_path / "run"
    with open(run / "metrics.csv") as handle:
        rows = {int(r["epoch"]): r for r in csv.DictReader(handle) if r["val/enc1_auc"]}
    held = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["encoder_epochs"]
    validated = validate_checkpoint(cfg, run / "checkpoints" / "best.ckpt")
    for enc, epoch in held.items():
        assert validated[f"val/{enc}_auc"] == pytest.approx(float(rows[epoch][f"val/{enc}_auc"]), abs=1e-6), enc
