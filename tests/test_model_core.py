"""The model's maths: accumulation against the step-by-step reference, monotone mastery, causality."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest
import torch
import torch.nn.functional as F

from gainakt.errors import ConfigError
from gainakt.model.accumulation import (
    accumulate_dense,
    accumulate_gathered,
    accumulate_practised,
    accumulate_reference,
    accumulate_scattered,
    last_practice,
    practice_gap,
    scatter_gains,
    skill_multi_hot,
)
from gainakt.model.dropout import Dropout
from gainakt.model.encoder import biased_attention
from gainakt.model.gainakt3exp import HISTORY_FEATURES, history_features
from gainakt.model.learning_curve import running_ability
from gainakt.model.losses import masked_bce, masked_mean, readout_waviness, teacher_target
from gainakt.run.config import compose_config
from gainakt.run.config_check import check_values
from tests.conftest import make_net

C = 7


def _batch(b: int = 3, steps: int = 12, k: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    skills = torch.randint(0, C, (b, steps, k), generator=g)
    skills[..., 1:][torch.rand(b, steps, k - 1, generator=g) < 0.6] = -1  # some multi-skill steps
    lengths = torch.tensor([steps, steps - 3, 5])[:b]
    mask = torch.arange(steps)[None] < lengths[:, None]
    skills[~mask] = -1
    responses = torch.randint(0, 2, (b, steps), generator=g) * mask
    return skills, responses, mask


def test_dense_accumulation_equals_reference():
    skills, _, _ = _batch()
    gains = torch.rand(*skills.shape[:2], C)
    practiced = skill_multi_hot(skills, C)
    assert torch.allclose(accumulate_dense(gains, practiced), accumulate_reference(gains, practiced))
    assert torch.allclose(accumulate_dense(gains), accumulate_reference(gains))


@pytest.mark.parametrize("inclusive", [True, False])
def test_gathered_accumulation_equals_reference(inclusive):
    skills, _, _ = _batch()
    gains = torch.rand(skills.shape)
    targets = torch.randint(-1, C, (*skills.shape[:2], 3))
    ep = accumulate_reference(scatter_gains(gains, skills, C))
    if not inclusive:
        ep = torch.cat([torch.zeros_like(ep[:, :1]), ep[:, :-1]], dim=1)
    expected = ep.gather(-1, targets.clamp_min(0)) * (targets >= 0)
    assert torch.allclose(accumulate_gathered(gains, skills, targets, inclusive), expected, atol=1e-6)
    assert torch.allclose(accumulate_scattered(gains, skills, targets, C, inclusive), expected, atol=1e-6)


@pytest.mark.parametrize("num_skills", [2, 500])  # the cumulative sum, then the pairwise comparison
def test_practised_accumulation_paths_agree_in_values_and_gradients(num_skills):
    skills, _, _ = _batch()
    skills = skills % num_skills * (skills >= 0) - (skills < 0).long()
    targets = torch.randint(-1, num_skills, (*skills.shape[:2], 2))
    grads = []
    for path in (lambda g: accumulate_gathered(g, skills, targets),
                 lambda g: accumulate_scattered(g, skills, targets, num_skills),
                 lambda g: accumulate_practised(g, skills, targets, num_skills)):  # fmt: skip
        gains = torch.rand(skills.shape, generator=torch.Generator().manual_seed(1)).requires_grad_()
        out = path(gains)
        out.pow(2).sum().backward()
        grads.append((out.detach(), gains.grad))
    for out, grad in grads[1:]:
        assert torch.allclose(grads[0][0], out, atol=1e-5)
        assert torch.allclose(grads[0][1], grad, atol=1e-5)


@pytest.mark.parametrize("num_skills", [C, 500])  # the running max over skills, then the pairwise comparison
def test_last_practice_finds_the_latest_past_answer_to_each_skill(num_skills):
    skills, responses, _ = _batch()
    targets = torch.randint(-1, C, (*skills.shape[:2], 2), generator=torch.Generator().manual_seed(2))
    last, recency = last_practice(skills, responses, targets, num_skills)
    expected_last, expected_recency = torch.zeros(targets.shape), torch.zeros(targets.shape)
    for b, t, j in zip(*torch.nonzero(targets >= 0, as_tuple=True)):
        seen = [tau for tau in range(t + 1) if (skills[b, tau] == targets[b, t, j]).any()]
        if seen:
            expected_last[b, t, j] = 2 * responses[b, seen[-1]] - 1
            expected_recency[b, t, j] = 1 / (1 + t - seen[-1])
    assert (expected_last != 0).any() and (expected_recency < 1).any() and (expected_recency > 0).any()
    assert torch.equal(last, expected_last)
    assert torch.allclose(recency, expected_recency)


def test_practice_gap_is_minus_log_one_plus_the_steps_since():
    skills = torch.tensor([[[0], [1], [1], [2], [0], [-1]]])
    responses = torch.tensor([[1, 0, 1, 1, 0, 0]])
    targets = torch.tensor([[[1], [1], [0], [0], [0], [3]]])  # the skill of each step's next question
    _, recency = last_practice(skills, responses, targets, 4)
    # step 0: skill 1 never practised (0); 1: practised at step 1 (0 steps since); 2: skill 0 last at
    # step 0 (2 since); 3: 3 since; 4: practised at step 4 (0 since); 5: skill 3 never practised
    expected = -torch.tensor([[[0.0], [0.0], [math.log(3)], [math.log(4)], [0.0], [0.0]]])
    assert torch.allclose(practice_gap(recency), expected)


@pytest.mark.parametrize("accumulate", ["practiced", "all"])
@pytest.mark.parametrize("gains", ["per_skill", "scalar"])
def test_mastery_is_monotone_for_every_skill(accumulate, gains):
    torch.manual_seed(0)
    net = make_net(num_skills=C, num_students=3, d_model=16, n_heads=2, n_blocks=1, d_ff=16,
                      accumulate=accumulate, gains=gains, student_gamma=True).eval()  # fmt: skip
    with torch.no_grad():  # make the curve parameters diverse, incl. beta and gamma far from init
        net.beta_raw.normal_(0.0, 2.0)
        net.gamma_raw.normal_(0.0, 2.0)
    skills, responses, _ = _batch()
    out = net(skills, responses, torch.tensor([0, 1, -1]))
    m = net.mastery_all_skills(out.gain, out.gains_all, skills, torch.tensor([0, 1, -1]))
    assert m.shape == (3, skills.shape[1], C)
    assert (m[:, 1:] - m[:, :-1] >= 0).all()
    trace = net.practised_mastery(out.gain, out.gains_all, skills, torch.tensor([0, 1, -1]))
    assert (trace["mastery_after"] >= trace["mastery_before"]).all()


@pytest.mark.parametrize(
    ("accumulate", "attention_bias", "recency_enc1", "recency_enc2", "response", "response_ability"),
    [("practiced", "none", "none", "none", "threshold", False), ("all", "none", "none", "none", "guess_slip", True),
     ("practiced", "skill_aware", "none", "none", "guess_slip", False), ("all", "skill_aware", "none", "none", "threshold", False),
     ("practiced", "none", "linear", "linear", "guess_slip", True), ("practiced", "skill_aware", "linear", "monotonic", "threshold", False),
     ("all", "none", "monotonic", "monotonic", "guess_slip", False), ("practiced", "skill_aware", "monotonic", "linear", "guess_slip", True),
     ("practiced", "skill_aware", "alibi", "alibi", "guess_slip", True), ("all", "none", "alibi", "none", "threshold", False)],
)  # fmt: skip
def test_predictions_never_see_future_responses(accumulate, attention_bias, recency_enc1, recency_enc2, response,
                                                response_ability):  # fmt: skip
    torch.manual_seed(0)
    net = make_net(num_skills=C, num_students=3, d_model=16, n_heads=2, n_blocks=2, d_ff=16, accumulate=accumulate,
                   attention_bias=attention_bias, recency_enc1=recency_enc1, recency_enc2=recency_enc2, response=response,
                   response_ability=response_ability, skill_ability=response_ability, retriever=response_ability,
                   skill_recency=response_ability, history_enc1=response_ability,
                   related_skills=3 if response_ability else 0, recent_ability=0.2 if response_ability else 0.0,
                   skill_forgetting=response_ability, recurrent_enc1=8 if response_ability else 0, skill_readout=accumulate == "practiced").eval()  # fmt: skip
    _assert_causal(net)


def test_predictions_never_see_future_responses_with_many_skills():
    """With many skills the student's record takes the pairwise path (accumulate_practised and
    last_practice compare skill ids instead of a running sum over every skill): causal too. Here the
    student-level terms act on the logit (real data's default); the test above has them in the guess
    and slip (the model's default)."""
    torch.manual_seed(0)
    net = make_net(num_skills=500, num_students=3, d_model=16, n_heads=2, n_blocks=1, d_ff=16,
                   history_enc1=True, skill_ability=True, skill_recency=True, related_skills=3,
                   recent_ability=0.2, skill_forgetting=True, ability_in="logit").eval()  # fmt: skip
    _assert_causal(net)


def _assert_causal(net) -> None:
    """Outputs 0..t-1 (predicting r_1..r_t) must not move when responses t.. change, on a random
    batch and on one where every step practises the same skill."""
    for zero_initialised in (net.skill_bias, net.skill_output.weight if net.skill_output is not None else None,
                             net.related_to):
        if zero_initialised is not None:
            torch.nn.init.normal_(zero_initialised)
    skills, responses, _ = _batch()
    one_skill = torch.where(skills[..., :1] >= 0, 1, -1).expand_as(skills).clone()
    one_skill[..., 1:] = -1  # every step practises skill 1: a count that reads one answer ahead shows
    student = torch.tensor([0, 1, -1])
    t = 6  # outputs 0..t-1 predict r_1..r_t and may use r_0..r_{t-1} only
    changed = responses.clone()
    changed[:, t:] = 1 - changed[:, t:]
    for steps in (skills, one_skill):
        base, other = net(steps, responses, student), net(steps, changed, student)
        for name in ("enc1_logit", "enc2_logit"):
            before, after = getattr(base, name), getattr(other, name)
            assert torch.allclose(before[:, :t], after[:, :t], atol=1e-6), name
            assert not torch.allclose(before[:, t:], after[:, t:]), f"{name} ignores responses entirely"


def test_history_features_count_the_record_before_each_question():
    """Encoder 1's record before question t+1: answers 0..t to its skills (averaged over a
    multi-skill question's skills) and overall, as Laplace logits and log(1 + count)."""
    net = make_net(num_skills=C, d_model=8, n_heads=2, n_blocks=1, d_ff=8, history_enc1=True)
    skills = torch.tensor([[[0, -1], [0, -1], [1, 2], [1, -1], [0, -1], [-1, -1]]])
    responses = torch.tensor([[1, 0, 1, 1, 0, 0]])
    targets = torch.cat([skills[:, 1:], torch.full_like(skills[:, :1], -1)], dim=1)
    ability = running_ability(responses, skills[..., 0] >= 0)[:, :-1]
    features = history_features(*net.skill_record(skills, responses, targets), ability, skills)
    assert features.shape == (1, 5, len(HISTORY_FEATURES))
    log = torch.log
    expected = [  # skill ability, ability, log(1 + answers to the skills), log(1 + steps)
        [log(torch.tensor(2.0)), log(torch.tensor(2.0)), log(torch.tensor(2.0)), log(torch.tensor(2.0))],
        [0.0, 0.0, 0.0, log(torch.tensor(3.0))],  # question 2's skills 1 and 2 never answered
        [log(torch.tensor(2.0)), log(torch.tensor(3 / 2)), log(torch.tensor(2.0)), log(torch.tensor(4.0))],
        [0.0, log(torch.tensor(4 / 2)), log(torch.tensor(3.0)), log(torch.tensor(5.0))],  # skill 0: 1 right, 1 wrong
    ]
    assert torch.allclose(features[0, :4], torch.tensor(expected))


def test_output_shapes():
    net = make_net(num_skills=C, d_model=16, n_heads=2, n_blocks=1, d_ff=16)
    skills, responses, _ = _batch()
    out = net(skills, responses, torch.full((3,), -1), need_all_gains=True)
    assert out.enc1_logit.shape == out.enc2_logit.shape == (3, skills.shape[1] - 1)
    assert out.gain.shape == skills.shape
    assert out.gains_all.shape == (3, skills.shape[1], C)
    assert ((out.gain > 0) & (out.gain < 1)).all()


@pytest.mark.parametrize("learn", [True, False])
def test_temperature_is_learned_only_when_asked(learn):
    net = make_net(num_skills=C, d_model=16, n_heads=2, n_blocks=1, d_ff=16, temperature=0.5,
                      learn_temperature=learn)  # fmt: skip
    assert float(net.temperature) == pytest.approx(0.5)
    learned = any(p is net.log_temperature for p in net.encoder2_parameters())
    assert learned == learn
    skills, responses, mask = _batch()
    out = net(skills, responses, torch.full((3,), -1))
    out.enc2_logit[mask[:, 1:]].sum().backward()
    assert (net.log_temperature.grad is not None) == learn


def _configured_module(*overrides: str):
    from gainakt.run.config import build, build_model

    cfg = compose_config("config", ["model.d_model=16", "model.n_heads=2", "model.n_blocks=1", "model.d_ff=16", *overrides])
    return build_model(cfg, num_skills=C, num_students=3, schedule=build(cfg.schedule)), cfg


@pytest.mark.parametrize("optim", ["adam", "adamw"])
def test_optimizer_is_configured_with_the_model_groups(optim):
    module, cfg = _configured_module(f"optim={optim}", "optim.lr=2e-3", "optim.gains_lr_mult=3", "optim.curve_lr_mult=20",
                                     "model.attention_bias=skill_aware", "model.student_gamma=true")  # fmt: skip
    optimizer = module.configure_optimizers()
    assert type(optimizer) is {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optim]
    groups = optimizer.param_groups
    lr = {g["name"]: g["lr"] for g in groups}
    assert lr["base"] == pytest.approx(2e-3) and lr["gains"] == pytest.approx(6e-3) and lr["curve"] == pytest.approx(4e-2)
    net = module.net
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert cfg.optim.weight_decay > 0 and decayed
    never = [net.beta_raw, net.saturation_raw, net.gamma_raw, net.theta, net.offset, net.log_temperature, net.skill_bias,
             net.gains_out.bias, net.encoder1.blocks[0].norm_attn.weight, net.encoder1.blocks[0].attention.query.bias]  # fmt: skip
    assert not any(id(p) in decayed for p in never)
    assert id(net.encoder1.blocks[0].attention.query.weight) in decayed and id(net.gains_out.weight) in decayed
    curve = {id(p) for g in groups if g["name"] == "curve" for p in g["params"]}
    assert curve == {id(p) for p in net.curve_parameters()}
    counted = [id(p) for g in groups for p in g["params"]]
    assert sorted(counted) == sorted(id(p) for p in module.parameters())  # every parameter in exactly one group


def test_module_refuses_to_train_without_a_schedule_or_optimizer():
    from gainakt.errors import ConfigError
    from gainakt.model.module import GainAKTModule

    module, _ = _configured_module()
    bare = GainAKTModule(**{k: v for k, v in module.hparams.items()})  # as evaluation loads it
    with pytest.raises(ConfigError, match="schedule"):
        bare.on_fit_start()
    with pytest.raises(ConfigError, match="optim"):
        bare.configure_optimizers()


def test_teacher_target_mixes_the_answer_with_the_detached_teacher():
    answers = torch.tensor([1.0, 0.0, 1.0])
    teacher = torch.tensor([2.0, -1.0, 0.0], requires_grad=True)
    assert teacher_target(answers, teacher, 0.0) is answers
    mixed = teacher_target(answers, teacher, 0.25)
    assert torch.allclose(mixed, 0.75 * answers + 0.25 * torch.sigmoid(teacher.detach()))
    assert torch.allclose(teacher_target(answers, teacher, 1.0), torch.sigmoid(teacher.detach()))
    assert not mixed.requires_grad  # nothing flows back into the teacher


def _im_loss(module, batch, split: str, bce: float):
    """One step of ``split`` at weights (bce, 1), backpropagated: (its logged IM loss, its output)."""
    module.set_loss_weights(bce, 1.0)
    module.zero_grad()
    total, out = module._step(batch, split)
    total.backward()
    return module.losses[f"{split}_im"].compute(), out


def _module_pair(option: str, value: float):
    """(with, without, batch): the same module with ``model.<option>=value`` and with it at 0, and a batch."""
    skills, responses, mask = _batch()
    batch = {"skills": skills, "responses": responses, "student": torch.full((3,), -1), "mask": mask}
    on, _ = _configured_module(f"model.{option}={value}", "model.dropout=0")
    off, _ = _configured_module(f"model.{option}=0", "model.dropout=0")
    off.load_state_dict(on.state_dict())
    return on, off, batch


def _same_grads(a: Iterable[torch.nn.Parameter], b: Iterable[torch.nn.Parameter]) -> bool:
    """Whether two modules' matching parameters got the same gradients (or none on both)."""
    return all(x.grad is y.grad is None or torch.equal(x.grad, y.grad) for x, y in zip(a, b))


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_teacher_share_trains_encoder2_on_encoder1s_prediction_and_leaves_encoder1_alone(share):
    """model.teacher_share: encoder 2's training loss is against (1 - a) r + a p_enc1 while encoder 1
    trains; against the answers when encoder 1 is frozen and on validation; encoder 1's gradients are
    those without a teacher."""
    taught, plain, batch = _module_pair("teacher_share", share)
    target, scored = batch["responses"][:, 1:], batch["mask"][:, 1:]

    im, out = _im_loss(taught, batch, "train", bce=1.0)
    expected = masked_bce(out.enc2_logit, (1 - share) * target + share * torch.sigmoid(out.enc1_logit), scored)
    assert im.item() == pytest.approx(expected.item(), rel=1e-5)
    assert im.item() != pytest.approx(masked_bce(out.enc2_logit, target, scored).item(), rel=1e-3)
    grads = [p.grad.clone() for p in taught.net.encoder1_parameters()]
    _im_loss(plain, batch, "train", bce=1.0)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, plain.net.encoder1_parameters()))

    for split, bce in (("val", 1.0), ("train", 0.0)):  # validation, and a frozen (untrained) encoder 1
        taught.losses[f"{split}_im"].reset()
        im, out = _im_loss(taught, batch, split, bce)
        assert im.item() == pytest.approx(masked_bce(out.enc2_logit, target, scored).item(), rel=1e-5)


@pytest.mark.parametrize("num_skills", [C, 300])
def test_readout_waviness_is_the_mean_squared_change_of_every_skills_logit(num_skills):
    """The Gram-matrix form equals the dense one: every skill's read-out logit at each step, its
    change to the next step, squared and averaged over skills (the biases cancel)."""
    g = torch.Generator().manual_seed(1)
    state = torch.randn(3, 9, 5, generator=g, dtype=torch.float64)
    vectors = torch.randn(num_skills, 5, generator=g, dtype=torch.float64)
    dense = ((state @ vectors.t()).diff(dim=1) ** 2).mean(-1)
    assert torch.allclose(readout_waviness(state, vectors), dense)
    assert readout_waviness(state[:, :1].expand(3, 9, 5), vectors).abs().max() == 0  # a constant state: none


def test_waviness_weight_smooths_encoder1_while_it_trains_and_leaves_encoder2_alone():
    """model.waviness_weight adds weight x the waviness over real step pairs to the training loss,
    scaled by encoder 1's weight (off while encoder 1 is frozen, and on validation); encoder 2's
    gradients are those without it."""
    smooth, plain, batch = _module_pair("waviness_weight", 0.5)
    skills, mask = batch["skills"], batch["mask"]
    torch.nn.init.normal_(smooth.net.skill_output.weight)  # zero-initialised output vectors: no waviness yet
    plain.net.skill_output.weight.data.copy_(smooth.net.skill_output.weight)
    for module in (smooth, plain):
        module.set_loss_weights(1.0, 1.0)
        module.zero_grad()
    total, out = smooth._step(batch, "train")
    plain_total, _ = plain._step(batch, "train")
    waviness = masked_mean(out.waviness, mask[:, 1:-1])
    assert waviness > 0 and out.waviness.shape == (3, skills.shape[1] - 2)
    assert total.item() == pytest.approx(plain_total.item() + 0.5 * waviness.item(), rel=1e-5)
    assert smooth.losses["train_waviness"].compute().item() == pytest.approx(waviness.item(), rel=1e-5)
    total.backward()
    plain_total.backward()
    assert _same_grads(smooth.net.encoder2_parameters(), plain.net.encoder2_parameters())
    assert not _same_grads(smooth.net.encoder1_parameters(), plain.net.encoder1_parameters())
    smooth.set_loss_weights(0.0, 1.0)  # encoder 1 frozen: no waviness term
    assert smooth.loss_weights["waviness"] == 0.0
    smooth.set_loss_weights(1.0, 1.0)
    smooth._step(batch, "val")
    assert smooth.losses["val_waviness"].update_count == 0


def test_mastery_weight_asks_mastery_alone_to_explain_the_answers():
    """model.mastery_weight adds weight x w_im x the BCE of the prediction from mastery alone (the
    per-skill guess and slip, no record term) to the training loss; it trains encoder 2 only, and
    neither validation nor a frozen encoder 2 computes it; without it training never computes it."""
    asked, plain, batch = _module_pair("mastery_weight", 0.5)
    skills, responses, mask = batch["skills"], batch["responses"], batch["mask"]
    for module in (asked, plain):
        module.set_loss_weights(1.0, 2.0)
        module.zero_grad()
    total, out = asked._step(batch, "train")
    plain_total, plain_out = plain._step(batch, "train")
    assert plain_out.mastery_logit is None  # no loss reads it: not computed

    net = asked.net
    target, scored = responses[:, 1:], mask[:, 1:]
    nxt = skills[:, 1:]
    ep = net.effective_practice(out.gain, out.gains_all, skills, torch.cat([nxt, torch.full_like(skills[:, :1], -1)], 1),
                                inclusive=True)[:, :-1]  # fmt: skip
    alone = net.response_logit(net.skill_mastery(ep, nxt, batch["student"]), nxt)
    assert torch.allclose(out.mastery_logit, alone)
    assert not torch.allclose(out.mastery_logit, out.enc2_logit)  # the record terms are left out
    mastery = masked_bce(alone, target, scored)
    assert total.item() == pytest.approx(plain_total.item() + 0.5 * 2.0 * mastery.item(), rel=1e-5)
    assert asked.losses["train_mastery"].compute().item() == pytest.approx(mastery.item(), rel=1e-5)
    total.backward()
    plain_total.backward()
    assert _same_grads(asked.net.encoder1_parameters(), plain.net.encoder1_parameters())
    assert not _same_grads(asked.net.encoder2_parameters(), plain.net.encoder2_parameters())
    asked.set_loss_weights(1.0, 0.0)  # encoder 2 frozen: no mastery term
    assert asked.loss_weights["mastery"] == 0.0
    asked.set_loss_weights(1.0, 1.0)
    asked._step(batch, "val")
    assert asked.losses["val_mastery"].update_count == 0
    asked.eval()
    assert asked(batch).mastery_logit is None


def test_mastery_weight_needs_the_guess_slip_response():
    cfg = compose_config("config", ["model.response=threshold", "model.mastery_weight=0.3", "model.response_ability=false",
                                    "model.skill_ability=false", "model.skill_recency=false", "model.recent_ability=0",
                                    "model.skill_forgetting=false"])  # fmt: skip
    with pytest.raises(ConfigError, match="model.mastery_weight=0.3 adds a loss on encoder 2's prediction from mastery "
                                          "alone, which model.response=threshold already is: add model.mastery_weight=0"):
        check_values(cfg)


def test_waviness_needs_the_per_skill_readout():
    cfg = compose_config("config", ["model.skill_readout=false", "model.waviness_weight=0.1"])
    with pytest.raises(ConfigError, match="model.waviness_weight=0.1 smooths encoder 1's per-skill read-out, which "
                                          "model.skill_readout=false leaves out: add model.waviness_weight=0"):
        check_values(cfg)
    with pytest.raises(ValueError, match="waviness_weight=0.1 smooths the per-skill read-out"):
        _configured_module("model.skill_readout=false", "model.waviness_weight=0.1")


# -- the CPU dropout mask and attention: cheaper operations, the same quantities ----------------------
@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_dropout_drops_p_of_elements_independently_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    layer = Dropout(p).train()
    x = torch.ones(1000, 1001, requires_grad=True)  # an odd count: the last 64-bit word is cut
    y = layer(x)
    dropped = y == 0
    share, n = dropped.float().mean().item(), x.numel()
    assert abs(share - p) < 5 * (p * (1 - p) / n) ** 0.5
    assert torch.allclose(y[~dropped], torch.tensor(1 / (1 - round(p * 65536) / 65536)))
    assert abs(y.mean().item() - 1.0) < 5 * (p / (1 - p) / n) ** 0.5
    # neighbours (slices of one random word, and across words) are dropped independently
    both = (dropped[:, 1:] & dropped[:, :-1]).float().mean().item()
    assert abs(both - p * p) < 5 * (p * p * (1 - p * p) / n) ** 0.5
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask)/dx = mask


def test_dropout_is_the_identity_in_eval_mode_and_reproducible_per_seed():
    x = torch.randn(64, 30, 16)
    assert Dropout(0.3).eval()(x) is x and Dropout(0.0).train()(x) is x
    masks = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        masks.append(Dropout(0.3).train()(x) == 0)
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)


def test_cpu_biased_attention_equals_torch_attention_with_its_gradients():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 9, 4, requires_grad=True) for _ in range(3))
    slope = torch.tensor([0.5, 0.1], requires_grad=True)
    distance = (torch.arange(9)[:, None] - torch.arange(9)[None, :]).float()
    results = []
    for attend in (biased_attention, lambda *a: F.scaled_dot_product_attention(*a[:3], attn_mask=a[3])):
        bias = (-slope[:, None, None] * distance).masked_fill(distance < 0, float("-inf"))
        out = attend(q, k, v, bias)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum(), (q, k, v, slope))
        results.append((out, *grads))
    for mine, theirs in zip(*results):
        assert torch.allclose(mine, theirs, atol=1e-5)
