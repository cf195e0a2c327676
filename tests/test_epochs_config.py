"""How a run trains is chosen by its dataset: the synthetic demo is short, real data trains as the field does."""

from __future__ import annotations

import pytest

from gainakt.run.config import compose_config


@pytest.mark.parametrize(
    ("overrides", "max_epochs", "patience"),
    [
        ([], 10, 3),  # the embedded demo stays short
        (["data=assist2015"], 200, 10),
        (["data=assist2009"], 200, 10),
        (["data=algebra2005"], 200, 10),
        (["data=custom"], 200, 10),
        (["data=assist2015", "trainer=gpu"], 200, 10),  # the trainer preset does not reset it
        (["experiment=v3_inverse_warmup"], 30, 10),  # a preset's own length wins
        (["data=assist2015", "trainer.max_epochs=7", "callbacks.early_stopping.patience=2"], 7, 2),  # the command line wins
        (["data=assist2015", "epochs=synthetic"], 10, 3),
    ],
)
def test_training_length_follows_the_dataset(overrides, max_epochs, patience):
    cfg = compose_config("config", overrides)
    assert cfg.trainer.max_epochs == max_epochs
    assert cfg.callbacks.early_stopping.patience == patience
    assert cfg.schedule.max_epochs == max_epochs


@pytest.mark.parametrize(
    ("overrides", "lr"),
    [
        ([], 1e-3),  # the short demo
        (["data=assist2015"], 5e-4),  # real data trains longer at a smaller step
        (["data=custom", "optim=adamw"], 5e-4),  # whichever optimiser
        (["data=assist2015", "experiment=v3_inverse_warmup"], 1.74e-4),  # a preset's own rate wins
        (["data=assist2015", "optim.lr=2e-3"], 2e-3),  # the command line wins
    ],
)
def test_learning_rate_follows_the_dataset(overrides, lr):
    assert compose_config("config", overrides).optim.lr == pytest.approx(lr)


@pytest.mark.parametrize(
    ("overrides", "ability_in"),
    [
        ([], "guess_slip"),  # the demo: its simulator's answers follow mastery
        (["data=assist2015"], "logit"),  # real data: a student in poor form can be predicted wrong at any mastery
        (["data=custom"], "logit"),
        (["data=assist2015", "model.ability_in=guess_slip"], "guess_slip"),  # the command line wins
    ],
)
def test_where_the_student_terms_act_follows_the_dataset(overrides, ability_in):
    assert compose_config("config", overrides).model.ability_in == ability_in


def test_checkpoint_and_early_stopping_share_the_monitor():
    cfg = compose_config("config", ["monitor=val/enc2_auc"])
    assert cfg.callbacks.checkpoint.monitor == cfg.callbacks.early_stopping.monitor == "val/enc2_auc"
    assert compose_config("config", []).callbacks.checkpoint.monitor == "val/per_encoder_auc"
