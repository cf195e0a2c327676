"""Encoder 2's response models and the encoders' recency options: the properties a reader relies on."""

from __future__ import annotations

import math

import pytest
import torch

from gainakt.errors import ConfigError
from gainakt.model.accumulation import skill_multi_hot
from gainakt.model.encoder import RECENCY, CausalAttention, monotonic_attention
from gainakt.model.gainakt3exp import CHOICES
from gainakt.model.learning_curve import guess_slip_logit, laplace_logit, recent_ability, running_ability
from gainakt.run.config import compose_config
from gainakt.run.config_check import check_values
from tests.conftest import make_net

C = 5
RESPONSES = CHOICES["response"]


def _net(response: str, **options):
    options.setdefault("response_ability", False)
    options.setdefault("skill_ability", False)
    options.setdefault("skill_recency", False)
    options.setdefault("related_skills", 0)
    options.setdefault("recent_ability", 0.0)
    options.setdefault("skill_forgetting", False)
    return make_net(num_skills=C, d_model=8, n_heads=2, n_blocks=1, d_ff=8, response=response, **options)


def _scramble(net, scale: float) -> None:
    """Curve and response parameters far from their initial values, different per skill."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        net.theta.fill_(0.3 if net.response == "threshold" else -0.8)
        net.log_temperature.fill_(math.log(0.05))
        for p in (net.guess_raw, net.slip_raw):
            if p is not None:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def _grid_probability(
    net,
    skills: torch.Tensor,
    ability: torch.Tensor | None = None,
    skill_ability: torch.Tensor | None = None,
    skill_recency: torch.Tensor | None = None,
    related: torch.Tensor | None = None,
    recent: torch.Tensor | None = None,
    forgetting: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """p on a fine grid of mastery values for questions with skill sets ``skills`` ([Q, K])."""
    m = torch.linspace(0.0, 1.0, 401)
    grid = m[:, None, None].expand(-1, *skills.shape)  # [M, Q, K]: every skill of the question at m
    ability, recent = (None if e is None else e.expand(len(m), -1) for e in (ability, recent))
    skill_ability, skill_recency, related, forgetting = (
        None if e is None else e.expand(len(m), -1, -1) for e in (skill_ability, skill_recency, related, forgetting))
    with torch.no_grad():
        p = torch.sigmoid(net.response_logit(grid, skills.expand(len(m), -1, -1), ability, skill_ability, skill_recency,
                                             related, recent, forgetting))  # fmt: skip
    return m, p


# (response, response_ability, the per-skill record: skill_ability, skill_recency, related_skills, recent_ability
# and skill_forgetting, where the student-level terms act)
FORMS = [(r, False, False, "guess_slip") for r in RESPONSES] + [
    ("guess_slip", True, skill, where) for skill in (False, True) for where in CHOICES["ability_in"]]


@pytest.mark.parametrize(("response", "response_ability", "skill_ability", "ability_in"), FORMS)
@pytest.mark.parametrize("aggregate", ["min", "mean"])
def test_probability_is_monotone_in_mastery(response, response_ability, skill_ability, ability_in, aggregate):
    net = _net(response, aggregate=aggregate, response_ability=response_ability, skill_ability=skill_ability,
               ability_in=ability_in,
               skill_recency=skill_ability, related_skills=2 if skill_ability else 0,
               recent_ability=0.1 if skill_ability else 0.0, skill_forgetting=skill_ability)  # fmt: skip
    _scramble(net, scale=3.0)
    skills = torch.tensor([[0, -1], [1, -1], [2, 3], [4, 0]])
    ability = torch.tensor([0.0, 0.0, 2.5, -3.0]) if response_ability else None
    per_skill = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.5, -4.0], [3.0, -2.0]]) if skill_ability else None
    recency = None if per_skill is None else torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, -0.5], [-1.0, 0.25]])
    related = None if per_skill is None else torch.tensor([[0.0, 0.0], [0.0, 0.0], [-2.0, 0.5], [0.7, 3.0]])
    recent = None if per_skill is None else torch.tensor([0.0, 0.0, -0.6, 0.4])
    gap = None if per_skill is None else torch.tensor([[0.0, 0.0], [0.0, 0.0], [-1.1, 0.0], [-2.3, -0.7]])
    _, p = _grid_probability(net, skills, ability, per_skill, recency, related, recent, gap)
    assert (p[1:] - p[:-1] >= -1e-6).all()
    assert (p[-1] - p[0] > 0.05).all(), "p does not depend on mastery"
    if response == "guess_slip":  # p spans (g, 1 - s): a floor and a ceiling below 1 (questions 0, 1: no evidence)
        guess, slip = net.guess[skills[:2, 0]], net.slip[skills[:2, 0]]
        assert torch.allclose(p[0, :2], guess, atol=0.02) and torch.allclose(p[-1, :2], 1 - slip, atol=0.02)


@pytest.mark.parametrize("response", RESPONSES)
def test_value_at_the_threshold_is_the_form_s(response):
    net = _net(response)
    _scramble(net, scale=2.0)
    theta = float(net.mastery_threshold)
    skills = torch.arange(C)[:, None]
    with torch.no_grad():
        p = torch.sigmoid(net.response_logit(torch.full((C, 1), theta), skills))
    if response == "threshold":
        expected = torch.full((C,), 0.5)
    else:
        guess, slip = net.guess.detach(), net.slip.detach()
        expected = guess + (1 - guess - slip) / 2  # g + (1 - g - s) * sigmoid(0)
        assert not torch.allclose(expected, torch.full((C,), 0.5), atol=1e-3)  # the test can tell the forms apart
    assert torch.allclose(p, expected, atol=1e-6)


@pytest.mark.parametrize("raw", [-30.0, 30.0])
def test_theta_guess_and_slip_stay_in_their_ranges(raw):
    net = _net("guess_slip", guess_max=0.4, slip_max=0.3)
    with torch.no_grad():
        for p in (net.theta, net.guess_raw, net.slip_raw):
            p.fill_(raw)
    theta, guess, slip = float(net.mastery_threshold), net.guess, net.slip
    assert 0.0 < theta < 1.0 or theta == pytest.approx(float(raw > 0), abs=1e-12)
    assert ((guess > 0) & (guess <= 0.4)).all() and ((slip > 0) & (slip <= 0.3)).all()
    assert (guess + slip < 1).all()
    m = torch.rand(C, 1)
    logit = net.response_logit(m, torch.arange(C)[:, None])
    assert torch.isfinite(logit).all()


def test_theta_is_never_stuck_at_a_bound():
    """The original's clamp has no gradient once theta leaves [0, 1]; the guess/slip form's logit
    parameterisation always has one, so the data can pull theta back inside."""
    skills = torch.arange(C)[:, None]
    m, target = torch.full((C, 1), 0.5), torch.zeros(C)
    for response, below in (("threshold", -0.2), ("guess_slip", -8.0)):
        net = _net(response)
        with torch.no_grad():
            net.theta.fill_(below)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net.response_logit(m, skills), target)
        loss.backward()
        stuck = net.theta.grad is None or float(net.theta.grad) == 0.0
        assert stuck == (response == "threshold"), response


@pytest.mark.parametrize(("which", "ability_in"), [
    *((which, where) for which in ("ability", "recent") for where in CHOICES["ability_in"]),
    *((which, "guess_slip") for which in ("skill_ability", "skill_recency", "related", "forgetting"))])
def test_each_record_term_raises_p_as_it_rises(which, ability_in):
    """Each piece of the student's record (overall, on the skill, the skill's last answer, on
    related skills, recent answers beyond expectation, the practice gap's -log(1 + steps since))
    raises p below and above the threshold as it rises (the guess and 1 - slip, or the logit of p
    for the student-level terms with ability_in=logit): a longer gap lowers p."""
    net = _net("guess_slip", ability_in=ability_in, response_ability=which == "ability", skill_ability=which == "skill_ability",
               skill_recency=which == "skill_recency", related_skills=2 if which == "related" else 0,
               recent_ability=0.1 if which == "recent" else 0.0, skill_forgetting=which == "forgetting")  # fmt: skip
    skills = torch.zeros(3, 1, dtype=torch.long)
    ability = torch.tensor([-1.0, 0.0, 1.0])
    given = {which: ability if which in ("ability", "recent") else ability[:, None]}
    with torch.no_grad():
        net.log_temperature.fill_(math.log(0.01))
        low = torch.sigmoid(net.response_logit(torch.zeros(3, 1), skills, **given))  # far below theta: ~ guess
        net.theta.fill_(-6.0)  # theta ~ 0: everyone mastered, p ~ 1 - slip
        high = torch.sigmoid(net.response_logit(torch.ones(3, 1), skills, **given))
    assert (low[1:] > low[:-1]).all() and (high[1:] > high[:-1]).all()
    assert torch.allclose(low[1], net.guess[0], atol=1e-3)  # ability 0 (no evidence): the skill's own guess


@pytest.mark.parametrize("ability_in", CHOICES["ability_in"])
def test_only_ability_in_logit_can_predict_a_mastered_student_in_poor_form_wrong(ability_in):
    """In the guess and slip, a student well above theta is predicted right with p >= 1 - slip_max
    = 0.5 however poor their recent form (ASSISTments 2015: such steps are right about 40 % of
    the time); added to the logit, poor enough form takes p below 0.5 at any mastery, and p stays
    monotone in mastery."""
    net = _net("guess_slip", ability_in=ability_in, response_ability=True, recent_ability=0.1)
    with torch.no_grad():
        net.theta.fill_(math.log(0.3 / 0.7))  # theta 0.3 (guess_slip learns its logit)
        net.log_temperature.fill_(math.log(0.02))  # mastery 1 is far above theta: sigmoid((m - theta)/T) ~ 1
    skills = torch.zeros(1, 1, dtype=torch.long)
    poor = torch.tensor([-6.0])  # far below the skill's expected share
    _, p = _grid_probability(net, skills, ability=poor, recent=poor)
    assert (p[1:] - p[:-1] >= -1e-6).all()
    mastered = float(p[-1, 0])
    assert (mastered < 0.5) == (ability_in == "logit"), mastered


@pytest.mark.parametrize("ability_in", CHOICES["ability_in"])
def test_record_weights_name_what_each_term_moves(ability_in):
    """parameters.json's labels: one logit weight for the student-level terms with ability_in=logit,
    a guess and a slip weight otherwise and for the per-skill terms; None where a term is off."""
    net = _net("guess_slip", ability_in=ability_in, response_ability=True, recent_ability=0.1, skill_ability=True)
    weights = net.record_weights()
    student = {"logit"} if ability_in == "logit" else {"guess", "slip"}
    assert set(weights["ability_weight"]) == set(weights["recent_ability_weight"]) == student
    assert set(weights["skill_ability_weight"]) == {"guess", "slip"} and weights["skill_recency_weight"] is None
    assert all(w > 0 for term in ("ability_weight", "recent_ability_weight") for w in weights[term].values())


def test_running_ability_counts_only_the_past_and_real_steps():
    responses = torch.tensor([[1, 1, 0, 1, 0, 0]])
    valid = torch.tensor([[True, True, True, True, False, False]])
    a = running_ability(responses, valid)
    expected = torch.tensor([[2 / 1, 3 / 1, 3 / 2, 4 / 2, 4 / 2, 4 / 2]]).log()  # (c + 1) / (wrong + 1)
    assert torch.allclose(a, expected)


def test_recent_ability_weighs_each_past_surprise_by_its_recency():
    """a_t = sum over tau <= t of rate (1 - rate)^(t - tau) x_tau, against a loop; 0 before any surprise."""
    surprise = torch.tensor([[0.0, 0.5, -0.25, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0, 0.3, -0.3]])
    rate = 0.3
    expected = torch.zeros_like(surprise)
    for t in range(surprise.shape[1]):
        for tau in range(t + 1):
            expected[:, t] += rate * (1 - rate) ** (t - tau) * surprise[:, tau]
    assert torch.allclose(recent_ability(surprise, rate), expected)
    assert recent_ability(surprise, rate)[0, 0] == 0.0


def test_recent_record_reads_answers_beyond_each_skill_expected_share_up_to_each_step():
    """Step t's surprise is its answer minus its skills' mean expected share; padding adds nothing,
    and a later answer never moves an earlier record."""
    net = _net("guess_slip", recent_ability=0.5)
    with torch.no_grad():
        net.expected_raw.copy_(torch.logit(torch.tensor([0.8, 0.4, 0.6, 0.5, 0.5])))
    skills = torch.tensor([[[0, -1], [1, 2], [0, -1], [-1, -1]]])
    responses = torch.tensor([[1, 0, 0, 1]])
    surprise = torch.tensor([[1 - 0.8, 0 - 0.5, 0 - 0.8, 0.0]])  # skills 1 and 2: mean expected share 0.5
    assert torch.allclose(net.recent_record(skills, responses), recent_ability(surprise, 0.5), atol=1e-6)
    flipped = net.recent_record(skills, torch.tensor([[1, 0, 1, 1]]))
    assert torch.allclose(flipped[0, :2], net.recent_record(skills, responses)[0, :2])
    assert (flipped[0, 2:] > net.recent_record(skills, responses)[0, 2:]).all()  # a right answer raises it


def test_skill_record_counts_only_past_answers_to_each_skill():
    """Each output t sees the answers of steps 0..t to the skills of question t+1, a multi-skill
    answer counting for each of its skills; padding and empty slots count for nothing."""
    net = _net("guess_slip", skill_ability=True)
    skills = torch.tensor([[[0, -1], [0, -1], [1, 2], [1, -1], [0, 2], [-1, -1]]])
    responses = torch.tensor([[1, 0, 1, 1, 0, 1]])
    targets = torch.cat([skills[:, 1:], torch.full_like(skills[:, :1], -1)], dim=1)
    ratio = laplace_logit(*net.skill_record(skills, responses, targets)).exp()  # (correct + 1) / (wrong + 1)
    expected = [[2 / 1, 1], [1, 1], [2 / 1, 1], [2 / 2, 2 / 1], [2 / 2, 2 / 2]]  # question t+1's skills
    assert torch.allclose(ratio[0, :5], torch.tensor(expected))


def test_related_record_reads_only_past_answers_to_the_related_skills():
    """Output t holds the running ability over steps 0..t on the skills the learned relation ties
    to the target; answers to unrelated skills, padding and empty slots add nothing."""
    net = _net("guess_slip", related_skills=C)
    with torch.no_grad():  # the relation: skill 0 reads skill 1's record, skill 2 reads skill 3's, halved
        net.related_from.copy_(torch.eye(C))
        net.related_to.zero_()
        net.related_to[0, 1] = 1.0
        net.related_to[2, 3] = 0.5
    skills = torch.tensor([[[1, -1], [0, -1], [1, 3], [4, -1], [3, -1], [-1, -1]]])
    responses = torch.tensor([[1, 1, 0, 0, 1, 1]])
    targets = torch.tensor([[[0, 2]] * 6])
    with torch.no_grad():
        record = net.related_record(skills, responses, targets)[0]
    ratio_1 = torch.tensor([2 / 1, 2 / 1, 2 / 2, 2 / 2, 2 / 2, 2 / 2])  # skill 1: (correct + 1) / (wrong + 1)
    ratio_3 = torch.tensor([1, 1, 1 / 2, 1 / 2, 2 / 2, 2 / 2])  # skill 3
    assert torch.allclose(record[:, 0], ratio_1.log()) and torch.allclose(record[:, 1], 0.5 * ratio_3.log())
    assert torch.equal(net.related_record(skills, responses, torch.full_like(targets, -1)), torch.zeros(1, 6, 2))


@pytest.mark.parametrize("num_skills", [7, 400])
def test_related_record_equals_the_dense_computation(num_skills):
    """The running sum of each step's changes equals projecting every skill's running ability
    ([B, L, C]) directly, with multi-skill steps, padding, and few or many skills (where the
    record takes its pairwise path)."""
    torch.manual_seed(1)
    net = make_net(num_skills=num_skills, d_model=8, n_heads=2, n_blocks=1, d_ff=8, related_skills=3)
    with torch.no_grad():
        net.related_to.normal_()
    first = torch.randint(0, num_skills, (3, 15))
    skills = torch.stack([first, (first + torch.randint(1, num_skills, (3, 15))) % num_skills], -1)  # two skills
    skills[:, ::3, 1] = -1
    skills[2, 10:] = -1  # padding
    responses = torch.randint(0, 2, (3, 15))
    targets = torch.randint(-1, num_skills, (3, 15, 2))
    practised = skill_multi_hot(skills, num_skills)
    ability = laplace_logit((practised * responses[..., None]).cumsum(1), practised.cumsum(1))
    dense = (net.related_to[targets.clamp_min(0)] * (ability @ net.related_from)[:, :, None, :]).sum(-1) * (targets >= 0)
    with torch.no_grad():
        assert torch.allclose(net.related_record(skills, responses, targets), dense, atol=1e-5)


def test_guess_slip_logit_is_finite_at_the_extremes():
    m = torch.tensor([0.0, 1.0])
    for z_scale in (1e-3, 1e3):
        logit = guess_slip_logit(m, torch.tensor(0.5), z_scale, torch.tensor(-40.0), torch.tensor(-40.0))
        assert torch.isfinite(logit).all()
    p = torch.sigmoid(guess_slip_logit(m, torch.tensor(0.5), 1e-3, torch.tensor(0.2).log(), torch.tensor(0.1).log()))
    assert torch.allclose(p, torch.tensor([0.2, 0.9]), atol=1e-5)


@pytest.mark.parametrize(("name", "value", "says"), [
    ("guess_init", 0.5, "model.guess_init=0.5: expected a number in (0.0, 0.5)"),
    ("slip_max", 0.6, "model.slip_max=0.6: expected a number in (0.0, 0.5]"),
    ("guess_max", 0.2, "model.guess_init=0.25 must be below model.guess_max=0.2"),
    ("response", "threshold", "model.response_ability=true needs model.response=guess_slip"),
    ("theta_init", 1.0, "model.theta_init=1.0: model.response=guess_slip learns theta strictly inside (0, 1)"),
    ("skill_ability", "yes", "model.skill_ability='yes': expected true or false"),
    ("recent_ability", 1.0, "model.recent_ability=1.0: expected a number in [0.0, 1.0)"),
])  # fmt: skip
def test_guess_and_slip_settings_are_checked(name, value, says):
    cfg = compose_config("config", [f"model.{name}={value}", "model.response_ability=true"])
    with pytest.raises(ConfigError, match=re_escape(says)):
        check_values(cfg)


@pytest.mark.parametrize(("name", "on", "off"), [("skill_ability", "true", "false"), ("skill_recency", "true", "false"),
                                               ("related_skills", "8", "0"), ("recent_ability", "0.1", "0"),
                                               ("skill_forgetting", "true", "false")])  # fmt: skip
def test_the_per_skill_record_needs_the_guess_slip_form(name, on, off):
    cfg = compose_config("config", ["model.response=threshold", "model.response_ability=false", "model.skill_ability=false",
                                    "model.skill_recency=false", "model.related_skills=0", "model.recent_ability=0",
                                    "model.skill_forgetting=false", f"model.{name}={on}"])  # fmt: skip
    says = f"model.{name}={on} needs model.response=guess_slip (it moves the guess and slip); "
    with pytest.raises(ConfigError, match=re_escape(says + f"with model.response=threshold add model.{name}={off}")):
        check_values(cfg)
    with pytest.raises(ValueError, match=re_escape(f"{name}={on} needs response=guess_slip")):
        options = dict(response_ability=False, skill_ability=False, skill_recency=False, related_skills=0, recent_ability=0.0,
                       skill_forgetting=False)  # fmt: skip
        value = int(on) if on.isdigit() else float(on) if on[0].isdigit() else True
        make_net(num_skills=C, response="threshold", **{**options, name: value})


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("recency", [r for r in RECENCY if r != "none"])
def test_recency_makes_equal_content_fade_with_distance(recency):
    """With the same content score for every past step, attention weight falls with distance."""
    block = CausalAttention(d_model=4, n_heads=2, recency=recency)
    steps = 12
    q = torch.zeros(1, 2, steps, 2)
    k = torch.zeros(1, 2, steps, 2)
    v = torch.eye(steps)[None, None].expand(1, 2, steps, steps)  # output row t = attention weights of t
    if recency == "monotonic":
        weights = monotonic_attention(q, k, v, block.decay, None)
    else:
        bias = -block.decay[:, None, None] * (torch.arange(steps)[:, None] - torch.arange(steps)[None, :]).float()
        bias = bias.masked_fill(torch.ones(steps, steps, dtype=torch.bool).triu(1), float("-inf"))
        weights = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    last = weights[0, :, -1]  # [H, L]: how the last step spreads its attention
    assert (last[:, 1:] - last[:, :-1] >= -1e-7).all()  # nearer steps weigh at least as much
    assert (last[:, -1] > last[:, 0]).all()
    assert torch.allclose(weights[0, :, 0, 1:], torch.zeros(2, steps - 1))  # causal


def test_recency_parameters_are_decay_rates_not_decayed_by_weight_decay():
    net = make_net(num_skills=C, d_model=8, n_heads=2, n_blocks=1, d_ff=8, recency_enc1="linear",
                   recency_enc2="monotonic")  # fmt: skip
    rates = [b.attention.decay_raw for enc in (net.encoder1, net.encoder2) for b in enc.blocks]
    assert all(r is not None and r.shape == (2,) for r in rates)
    decayed = {id(p) for g in net.optimizer_groups() if g["decay"] for p in g["params"]}
    assert not any(id(r) in decayed for r in rates)


@pytest.mark.parametrize("part", ["retriever", "readout", "skill_output", "recurrent"])
def test_encoder1_options_belong_to_encoder1(part):
    """Frozen with encoder 1 (w_bce = 0), and encoder 2 never sees them."""
    net = make_net(num_skills=C, d_model=8, n_heads=2, n_blocks=1, d_ff=8, retriever=True, recency_enc1="monotonic",
                   skill_readout=True, recurrent_enc1=6)  # fmt: skip
    own = {id(p) for p in getattr(net, part).parameters()}
    assert own and own <= {id(p) for p in net.encoder1_parameters()}
    assert not own & {id(p) for p in net.encoder2_parameters()}


def test_skill_readout_is_dkt_readout_of_the_next_skill():
    """The added logit is <W state_t, o_{q_{t+1}}> + b_{q_{t+1}}: zero at initialisation, then the
    next skill's own vector and bias (a multi-skill step averages its skills'). state_t is encoder
    1's context, value and LSTM states after step t."""
    torch.manual_seed(0)
    skills = torch.tensor([[[0, -1], [1, -1], [2, 3], [1, -1]]])
    responses = torch.tensor([[1, 0, 1, 1]])
    student = torch.tensor([-1])
    with_readout = make_net(num_skills=C, d_model=8, n_heads=2, n_blocks=1, d_ff=8, skill_readout=True).eval()
    without = make_net(num_skills=C, d_model=8, n_heads=2, n_blocks=1, d_ff=8, skill_readout=False).eval()
    without.load_state_dict({k: v for k, v in with_readout.state_dict().items() if not k.startswith(("readout", "skill_output"))})
    plain = without(skills, responses, student).enc1_logit
    assert torch.allclose(with_readout(skills, responses, student).enc1_logit, plain)
    torch.nn.init.normal_(with_readout.skill_output.weight)
    got = with_readout(skills, responses, student).enc1_logit - plain
    ctx, val = with_readout.encoder1(skills, responses)
    lstm = with_readout.recurrent(skills, responses)  # the default's LSTM state is part of encoder 1's
    state = with_readout.readout(torch.cat([ctx, val, lstm], -1))[0, :-1]
    out = with_readout.skill_output.weight
    expected = torch.stack([state[0] @ out[1, :-1] + out[1, -1],
                            state[1] @ (out[2, :-1] + out[3, :-1]) / 2 + (out[2, -1] + out[3, -1]) / 2,
                            state[2] @ out[1, :-1] + out[1, -1]])  # fmt: skip
    assert torch.allclose(got[0], expected, atol=1e-5)
