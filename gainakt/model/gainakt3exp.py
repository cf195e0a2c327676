"""GainAKT3Exp: a free transformer (encoder 1) and a gains -> mastery -> prediction path (encoder 2).

Notation: C skills, L steps; position t holds interaction (q_t, r_t); outputs at position t predict
r_{t+1}, so every output has L - 1 steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gainakt.model.accumulation import (
    accumulate_dense,
    accumulate_dense_at,
    accumulate_practised,
    last_practice,
    practice_gap,
    scatter_gains,
)
from gainakt.model.dropout import Dropout
from gainakt.model.encoder import RECENCY, CausalAttention, DualStreamEncoder, RecurrentState, embed_skill_sets
from gainakt.model.learning_curve import (
    aggregate_skills,
    guess_slip_logit,
    laplace_logit,
    mastery,
    recent_ability,
    running_ability,
    threshold_logit,
)
from gainakt.model.losses import readout_waviness

CHOICES = {
    "gains": ("per_skill", "scalar"),
    "gains_head": ("linear", "mlp"),
    "gains_init": ("default", "small"),
    "attention_bias": ("none", "skill_aware"),
    "accumulate": ("practiced", "all"),
    "im_target": ("next", "current"),
    "aggregate": ("min", "mean"),
    "response": ("threshold", "guess_slip"),
    "ability_in": ("guess_slip", "logit"),
    "recency_enc1": RECENCY,
    "recency_enc2": RECENCY,
}

# Encoder 1's submodules; everything else belongs to encoder 2. The encoders share no parameter, so
# a state dict may hold each at a different epoch (per-encoder checkpoint selection).
ENCODER1_MODULES = (
    "encoder1", "skill_embedding", "retriever", "history", "recurrent", "enc1_head", "readout", "skill_output",
)  # fmt: skip

CURVE_PARAMETERS = (
    "beta_raw", "saturation_raw", "gamma_raw", "theta", "offset", "log_temperature", "guess_raw", "slip_raw",
    "ability_weight_raw", "skill_ability_weight_raw", "skill_recency_weight_raw", "related_weight_raw",
    "recent_ability_weight_raw", "expected_raw", "skill_forgetting_weight_raw",
)  # fmt: skip

# The (w_guess, w_slip) properties of the record terms ((w_logit,) for the student-level ones with
# ability_in=logit), in the order parameters.json and verification.md list them (None where off).
RECORD_WEIGHTS = ("ability_weight", "skill_ability_weight", "skill_recency_weight", "related_weight",
                  "recent_ability_weight", "skill_forgetting_weight")


HISTORY_FEATURES = ("skill_ability", "ability", "skill_answered", "answered")


def history_features(
    correct: torch.Tensor, answered: torch.Tensor, ability: torch.Tensor, skills: torch.Tensor
) -> torch.Tensor:
    """Encoder 1's exact record of a student before question t+1: [B, L-1, len(HISTORY_FEATURES)].

    ``correct``/``answered`` ([B, L, J]) count the answers of steps 0..t to question t+1's skills;
    ``ability`` [B, L-1] is ``running_ability`` before question t+1, ``skills`` [B, L, K]. Laplace
    logits (averaged over the question's skills), and counts as log(1 + n).
    """
    valid = skills[:, 1:] >= 0
    n = valid.sum(-1).clamp_min(1)
    skill_ability = (laplace_logit(correct, answered)[:, :-1] * valid).sum(-1) / n
    skill_answered = (torch.log1p(answered[:, :-1]) * valid).sum(-1) / n
    steps = (skills[..., 0] >= 0).float().cumsum(-1)[:, :-1]
    return torch.stack([skill_ability, ability, skill_answered, torch.log1p(steps)], -1)


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def _positive(raw: torch.Tensor | None) -> torch.Tensor | None:
    """A parameter kept > 0 through softplus, or None where its option built none."""
    return None if raw is None else nn.functional.softplus(raw)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass
class ModelOutput:
    enc1_logit: torch.Tensor  # [B, L-1] logit of r_{t+1}, encoder 1
    enc2_logit: torch.Tensor  # [B, L-1] logit of r_{t+1}, encoder 2
    gain: torch.Tensor  # [B, L, K] gain applied at t to each practised skill of q_t
    gains_all: torch.Tensor | None  # [B, L, C] every skill's gain, when asked for
    waviness: torch.Tensor | None = None  # [B, L-2] encoder 1's readout_waviness between states t and t+1 (training, with the read-out)
    mastery_logit: torch.Tensor | None = None  # [B, L-1] encoder 2's logit from mastery alone, no record term (training, mastery_output)


class GainAKT3Exp(nn.Module):
    """Dual-encoder knowledge-tracing model; see SPEC.md "Model" for the maths.

    Every option is a required keyword: its default lives in ``conf/model/gainakt.yaml`` only.
    ``mastery_output`` is the module's (``mastery_weight != 0``): training also returns
    :attr:`ModelOutput.mastery_logit`, the prediction from mastery alone, only when a loss reads it.
    """

    def __init__(
        self,
        num_skills: int,
        num_students: int,
        *,
        d_model: int,
        n_heads: int,
        n_blocks: int,
        d_ff: int,
        dropout: float,
        max_len: int,
        gains: str,
        gains_head: str,
        gains_init: str,
        attention_bias: str,
        accumulate: str,
        im_target: str,
        aggregate: str,
        response: str,
        recency_enc1: str,
        recency_enc2: str,
        retriever: bool,
        skill_readout: bool,
        student_gamma: bool,
        beta_init: float,
        saturation_init: float,
        gamma_init: float,
        offset: float,
        learn_offset: bool,
        theta_init: float,
        temperature: float,
        learn_temperature: bool,
        guess_init: float,
        slip_init: float,
        guess_max: float,
        slip_max: float,
        response_ability: bool,
        ability_in: str,
        skill_ability: bool,
        skill_recency: bool,
        related_skills: int,
        recent_ability: float,
        skill_forgetting: bool,
        history_enc1: bool,
        recurrent_enc1: int,
        mastery_output: bool,
    ) -> None:
        super().__init__()
        settings = dict(gains=gains, gains_head=gains_head, gains_init=gains_init, attention_bias=attention_bias,
                        accumulate=accumulate, im_target=im_target, aggregate=aggregate, response=response,
                        ability_in=ability_in,
                        recency_enc1=recency_enc1, recency_enc2=recency_enc2)  # fmt: skip
        for key, value in settings.items():
            if value not in CHOICES[key]:
                raise ValueError(f"model.{key}={value!r}; expected one of {', '.join(CHOICES[key])}")
        if response == "guess_slip" and not (0.0 < guess_init < guess_max <= 0.5 and 0.0 < slip_init < slip_max <= 0.5
                                             and 0.0 < theta_init < 1.0):  # fmt: skip
            raise ValueError(
                f"guess_init={guess_init}, guess_max={guess_max}, slip_init={slip_init}, slip_max={slip_max}, "
                f"theta_init={theta_init}: expected 0 < init < max <= 0.5 for guess and slip (g + s < 1 keeps p "
                "monotone in mastery) and theta_init strictly inside (0, 1)"
            )
        if d_model % n_heads:
            raise ValueError(f"model.d_model={d_model} is not divisible by model.n_heads={n_heads}")
        if im_target == "current":
            warnings.warn(
                "model.im_target=current scores m_t[q_t] against r_t, which the token x_t already holds: "
                "a label leak kept only to reproduce the original numbers",
                stacklevel=2,
            )
        self.num_skills = num_skills
        self.gains = gains
        self.accumulate = accumulate
        self.im_target = im_target
        self.aggregate = aggregate
        self.response = response
        self.ability_in = ability_in
        self.mastery_output = mastery_output

        enc = dict(num_skills=num_skills, d_model=d_model, n_heads=n_heads, n_blocks=n_blocks, d_ff=d_ff,
                   dropout=dropout, max_len=max_len)  # fmt: skip
        # Encoder 1: performance.
        self.encoder1 = DualStreamEncoder(**enc, recency=recency_enc1)
        self.skill_embedding = nn.Embedding(num_skills, d_model)
        # AKT's knowledge retriever: the next question asks the past states what they say about it.
        self.retriever = CausalAttention(d_model, n_heads, recency_enc1) if retriever else None
        # The student's record, counted exactly: attention can weigh past steps but not count them.
        self.history = nn.Linear(len(HISTORY_FEATURES), d_model) if history_enc1 else None
        self.recurrent = RecurrentState(num_skills, d_model, recurrent_enc1, dropout) if recurrent_enc1 else None
        width = 2 * d_model + recurrent_enc1  # encoder 1's state: context, value and the LSTM's
        inputs = width + (1 + retriever + history_enc1) * d_model  # + the next skill, retriever, record
        self.enc1_head = nn.Sequential(
            nn.Linear(inputs, d_model), nn.ReLU(), Dropout(dropout), nn.Linear(d_model, 1)
        )
        # DKT's read-out: the state's projection dotted with the next skill's own output vector, plus
        # that skill's bias. An MLP on [state, skill embedding] has to learn this product through one
        # ReLU layer; DKT gets it from its per-skill output layer. Zero-initialised output vectors
        # start the model exactly where the MLP alone starts.
        self.readout = nn.Linear(width, d_model) if skill_readout else None
        self.skill_output = nn.Embedding(num_skills, d_model + 1) if skill_readout else None
        if self.skill_output is not None:
            nn.init.zeros_(self.skill_output.weight)
        # Encoder 2: interpretable gains and learning curves. Only its value stream is read, so its last
        # block's context feed-forward weights never train (they stay, so checkpoints keep their layout).
        self.encoder2 = DualStreamEncoder(**enc, recency=recency_enc2)
        self.skill_bias = nn.Parameter(torch.zeros(num_skills, num_skills)) if attention_bias == "skill_aware" else None
        body: nn.Module = nn.Identity()
        if gains_head == "mlp":
            body = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), Dropout(0.1))
        self.gains_body = body
        self.gains_out = nn.Linear(d_model, num_skills) if gains == "per_skill" else None
        if gains_init == "small" and self.gains_out is not None:
            nn.init.normal_(self.gains_out.weight, mean=0.0, std=0.01)
            nn.init.zeros_(self.gains_out.bias)
        self.beta_raw = nn.Parameter(torch.full((num_skills,), _softplus_inverse(beta_init)))
        self.saturation_raw = nn.Parameter(torch.full((num_skills,), _logit(saturation_init)))
        self.gamma_raw = (
            nn.Parameter(torch.full((max(num_students, 1),), _softplus_inverse(gamma_init))) if student_gamma else None
        )
        # threshold: theta itself, clamped to [0, 1] (the original); guess_slip: its logit, so theta
        # stays strictly inside (0, 1) and never sticks at a bound where the clamp has no gradient.
        self.theta = nn.Parameter(torch.tensor(float(theta_init) if response == "threshold" else _logit(theta_init)))
        self.guess_max, self.slip_max = guess_max, slip_max
        self.guess_raw = self.slip_raw = None
        if response == "guess_slip":  # per skill: g_s = guess_max * sigmoid(raw), s_s likewise
            self.guess_raw = nn.Parameter(torch.full((num_skills,), _logit(guess_init / guess_max)))
            self.slip_raw = nn.Parameter(torch.full((num_skills,), _logit(slip_init / slip_max)))
        if not 0.0 <= recent_ability < 1.0:
            raise ValueError(f"recent_ability={recent_ability}: expected a recency weight in [0, 1) (0: off)")
        for name, on in (("response_ability", response_ability), ("skill_ability", skill_ability),
                         ("skill_recency", skill_recency), ("related_skills", related_skills),
                         ("recent_ability", recent_ability), ("skill_forgetting", skill_forgetting)):  # fmt: skip
            if on and response != "guess_slip":
                shown = "true" if on is True else on
                raise ValueError(f"{name}={shown} needs response=guess_slip (it moves the guess and slip)")
        # (w_guess, w_slip) >= 0: how far a student's running ability raises the guess and lowers the slip,
        # over all answers so far, over the answers to each of the question's own skills, and by the last
        # answer to each of them weighted by how recent it was. The student-level terms (the running
        # ability over all answers, the recent form) take one weight on the logit instead with
        # ability_in=logit: in the guess and slip, slip <= slip_max keeps p >= (1 - slip_max) sigmoid(z)
        # for a student above theta however poor their form.
        student_size, student_init = (1, 1.0) if ability_in == "logit" else (2, 0.5)
        self.ability_weight_raw = (nn.Parameter(torch.full((student_size,), _softplus_inverse(student_init)))
                                   if response_ability else None)  # fmt: skip
        self.skill_ability_weight_raw = nn.Parameter(torch.full((2,), _softplus_inverse(0.5))) if skill_ability else None
        self.skill_recency_weight_raw = nn.Parameter(torch.full((2,), _softplus_inverse(0.5))) if skill_recency else None
        # The recent answers beyond each skill's expected share (sigmoid(expected_raw), learned per
        # skill, starting at 0.5), weighted by recency `recent_ability`: a student's current form,
        # which the running share over the whole window moves too slowly to show.
        self.recent_ability = recent_ability
        self.recent_ability_weight_raw = self.expected_raw = None
        if recent_ability:
            self.recent_ability_weight_raw = nn.Parameter(torch.full((student_size,), _softplus_inverse(student_init)))
            self.expected_raw = nn.Parameter(torch.zeros(num_skills))
        # Forgetting of what was shown, not of what was learned: a skill practised before, with other
        # questions since, is answered right less often than its mastery says (ASSISTments 2015: 0.65
        # right where encoder 2 predicted 0.75). Mastery stays monotone; the gap moves guess and slip.
        self.skill_forgetting_weight_raw = (nn.Parameter(torch.full((2,), _softplus_inverse(0.5)))
                                            if skill_forgetting else None)  # fmt: skip
        offsets = torch.full((num_skills,), float(offset))
        if learn_offset:
            self.offset = nn.Parameter(offsets)
        else:
            self.register_buffer("offset", offsets)
        log_temperature = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_temperature)
        else:
            self.register_buffer("log_temperature", log_temperature)
        # The record on related skills: every skill's running ability, projected on `related_skills`
        # learned factors (related_from) and read by the question's skill (related_to). The relation
        # has either sign: a >= 0 one lost the gain (docs/results.md section 21). The read starts at
        # 0, so training starts where it does without it; the factors are drawn from the run's seed
        # by their own generator, leaving the global random stream (dropout) as it was.
        self.related_from = self.related_to = self.related_weight_raw = None
        if related_skills:
            draw = torch.Generator().manual_seed(torch.initial_seed())
            self.related_from = nn.Parameter(0.1 * torch.randn(num_skills, related_skills, generator=draw))
            self.related_to = nn.Parameter(torch.zeros(num_skills, related_skills))
            self.related_weight_raw = nn.Parameter(torch.full((2,), _softplus_inverse(0.5)))

    # -- parameter groups (the optimiser and the loss-weight freezing need them) --------------------
    def encoder1_parameters(self) -> list[nn.Parameter]:
        modules = [getattr(self, name) for name in ENCODER1_MODULES]
        return [p for m in modules if m is not None for p in m.parameters()]

    def gains_head_parameters(self) -> list[nn.Parameter]:
        head = [*self.gains_body.parameters()]
        return head + ([*self.gains_out.parameters()] if self.gains_out is not None else [])

    def curve_parameters(self) -> list[nn.Parameter]:
        """The learning-curve scalars (beta, M_sat, gamma, theta, and offset/T when learned)."""
        return [p for name, p in self.named_parameters() if name in CURVE_PARAMETERS]

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """Every parameter once, as ``{"name", "params", "decay"}``, by learning-rate group.

        Learning-rate groups: ``gains`` (encoder 2's gains head), ``curve`` (the learning-curve
        scalars) and ``base`` (the rest). Weight decay belongs on weight matrices and embeddings
        only: decaying biases, norms or the interpretable scalars (theta, offset, T, beta, M_sat,
        gamma, the skill-pair bias) would pull the very numbers a researcher reads toward 0.
        """
        head, curve = self.gains_head_parameters(), self.curve_parameters()
        special = {id(p) for p in head + curve}
        interpretable = {id(p) for p in curve} | ({id(self.skill_bias)} if self.skill_bias is not None else set())
        groups = []
        for name, params in (("base", [p for p in self.parameters() if id(p) not in special]),
                             ("gains", head), ("curve", curve)):  # fmt: skip
            for decay in (True, False):
                chosen = [p for p in params if (p.ndim >= 2 and id(p) not in interpretable) == decay]
                if chosen:
                    groups.append({"name": name, "params": chosen, "decay": decay})
        return groups

    def encoder2_parameters(self) -> list[nn.Parameter]:
        own = {id(p) for p in self.encoder1_parameters()}
        return [p for p in self.parameters() if id(p) not in own]

    # -- learned curve parameters -----------------------------------------------------------------
    @property
    def beta(self) -> torch.Tensor:
        return nn.functional.softplus(self.beta_raw)

    @property
    def saturation(self) -> torch.Tensor:
        return torch.sigmoid(self.saturation_raw)

    @property
    def temperature(self) -> torch.Tensor:
        """T of encoder 2's logit. Learned, it frees the probability from the (0.27, 0.73) band that
        T = 1 allows (mastery and theta lie in [0, 1]), which on data with ~73 % correct answers
        pushes every gain to saturation."""
        return self.log_temperature.exp()

    @property
    def mastery_threshold(self) -> torch.Tensor:
        """theta in [0, 1]: "mastered" <=> mastery >= theta."""
        return self.theta.clamp(0.0, 1.0) if self.response == "threshold" else torch.sigmoid(self.theta)

    @property
    def guess(self) -> torch.Tensor | None:
        """Per-skill guess g_s in (0, guess_max): P(correct) well below the threshold (guess_slip only)."""
        return None if self.guess_raw is None else self.guess_max * torch.sigmoid(self.guess_raw)

    @property
    def slip(self) -> torch.Tensor | None:
        """Per-skill slip s_s in (0, slip_max): P(wrong) well above the threshold (guess_slip only)."""
        return None if self.slip_raw is None else self.slip_max * torch.sigmoid(self.slip_raw)

    @property
    def ability_weight(self) -> torch.Tensor | None:
        """(w_guess, w_slip) >= 0 (``ability_in=logit``: (w_logit,)), or None without ``response_ability``."""
        return _positive(self.ability_weight_raw)

    @property
    def skill_ability_weight(self) -> torch.Tensor | None:
        """(w_guess, w_slip) >= 0 of the per-skill running ability, or None without ``skill_ability``."""
        return _positive(self.skill_ability_weight_raw)

    @property
    def skill_recency_weight(self) -> torch.Tensor | None:
        """(w_guess, w_slip) >= 0 of the last answer to each skill, or None without ``skill_recency``."""
        return _positive(self.skill_recency_weight_raw)

    @property
    def related_weight(self) -> torch.Tensor | None:
        """(w_guess, w_slip) >= 0 of the record on related skills, or None without ``related_skills``."""
        return _positive(self.related_weight_raw)

    @property
    def recent_ability_weight(self) -> torch.Tensor | None:
        """(w_guess, w_slip) >= 0 of the recent answers beyond expectation (``ability_in=logit``: (w_logit,)),
        or None without ``recent_ability``."""
        return _positive(self.recent_ability_weight_raw)

    @property
    def skill_forgetting_weight(self) -> torch.Tensor | None:
        """(w_guess, w_slip) >= 0 of the practice gap of each skill, or None without ``skill_forgetting``."""
        return _positive(self.skill_forgetting_weight_raw)

    def record_weights(self) -> dict[str, dict[str, float] | None]:
        """Each record term's weights by what they move, {"guess": w, "slip": w} or {"logit": w}
        (the student-level terms with ``ability_in=logit``); None where the option is off."""
        out: dict[str, dict[str, float] | None] = {}
        for name in RECORD_WEIGHTS:
            weight = getattr(self, name)
            labels = ("logit",) if weight is not None and weight.numel() == 1 else ("guess", "slip")
            out[name] = None if weight is None else dict(zip(labels, weight.detach().tolist()))
        return out

    @property
    def expected(self) -> torch.Tensor | None:
        """Per skill, the share of right answers the recent record is measured from (``recent_ability``)."""
        return None if self.expected_raw is None else torch.sigmoid(self.expected_raw)

    def recent_record(self, skills: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """[B, L]: :func:`recent_ability` of each answer minus its skills' mean expected share, over steps 0..t."""
        valid = skills >= 0
        expected = aggregate_skills(self.expected[skills.clamp_min(0)], valid, "mean")
        return recent_ability((responses.float() - expected) * valid[..., 0], self.recent_ability)

    def related_record(self, skills: torch.Tensor, responses: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The student's record on skills related to each ``targets`` skill ([B, L, J], -1 empty),
        [B, L, J]: the running ability on every skill over steps 0..t (0 where unanswered), through
        the learned relation related_to[target] . related_from[skill]. A skill the student has not
        answered, or one unrelated to the target, adds nothing."""
        # Step tau changes only its own skills' abilities: sum each change into the factors and take a
        # running sum over time, never building a [B, L, C] tensor (many skills stay cheap).
        valid = (skills >= 0).float()
        correct, answered = self.skill_record(skills, responses, skills)  # own skills, steps 0..tau
        right = responses[..., None].float() * valid
        change = (laplace_logit(correct, answered) - laplace_logit(correct - right, answered - valid)) * valid
        factors = (self.related_from[skills.clamp_min(0)] * change[..., None]).sum(2).cumsum(1)  # [B, L, r]
        return (self.related_to[targets.clamp_min(0)] * factors[:, :, None, :]).sum(-1) * (targets >= 0)

    def skill_record(
        self, skills: torch.Tensor, responses: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(correct, answered): the student's answers so far (steps 0..t) to each ``targets`` skill
        ([B, L, J], -1 empty), each [B, L, J]. A multi-skill answer counts for each of its skills."""
        slot = (skills >= 0).float()
        counts = torch.cat([responses[..., None].float() * slot, slot])  # correct, answered: [2B, L, K]
        correct, answered = accumulate_practised(counts, skills.repeat(2, 1, 1), targets.repeat(2, 1, 1),
                                                 self.num_skills).chunk(2)  # fmt: skip
        return correct, answered

    def response_logit(
        self,
        skill_mastery: torch.Tensor,
        skills: torch.Tensor,
        ability: torch.Tensor | None = None,
        skill_ability: torch.Tensor | None = None,
        skill_recency: torch.Tensor | None = None,
        related: torch.Tensor | None = None,
        recent: torch.Tensor | None = None,
        forgetting: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logit of a correct answer to a question with skill ids ``skills`` ([..., K], -1 empty)
        from its skills' mastery ([..., K]): aggregated (``aggregate``), then the response model.

        guess_slip takes the mean guess and slip over the question's skills; with
        ``response_ability`` they move with ``ability`` ([...], the student's running ability
        before the answer; None counts as no evidence, 0): g = guess_max * sigmoid(raw_s + w_g * a),
        s = slip_max * sigmoid(raw_s - w_s * a); with ``skill_ability`` each skill's also moves with
        ``skill_ability`` ([..., K], the running ability on that skill) by its own two weights; with
        ``skill_recency`` also with ``skill_recency`` ([..., K], the last answer to that skill, +1 or
        -1, times 1 / (1 + steps since); 0 if none), by two more; with ``related_skills`` also with
        ``related`` ([..., K], the record on related skills, :meth:`related_record`), by two more;
        with ``recent_ability`` also with ``recent`` ([...], :meth:`recent_record`), by two more;
        with ``skill_forgetting`` also with ``forgetting`` ([..., K], :func:`practice_gap`, <= 0: a
        longer gap lowers p), by two more. With ``ability_in=logit`` the two student-level terms,
        ``ability`` and ``recent``, instead add w * value to the logit of p (one weight each): they
        move the whole curve, so a student in poor form can be predicted wrong at any mastery.
        Mastery alone still decides "mastered" and p stays monotone in it: the guess/slip terms leave
        p crossing its midpoint between g and 1 - s at theta; the logit terms slide that curve up or down.
        """
        valid = skills >= 0
        m = aggregate_skills(skill_mastery, valid, self.aggregate)
        if self.response == "threshold":
            return threshold_logit(m, self.mastery_threshold, self.temperature)
        ids = skills.clamp_min(0)
        guess_raw, slip_raw = self.guess_raw[ids], self.slip_raw[ids]
        shift: torch.Tensor | float = 0.0  # the student-level terms' move of the logit (ability_in=logit)
        for weight, evidence in ((self.ability_weight, ability), (self.recent_ability_weight, recent)):
            if weight is None or evidence is None:
                continue
            if self.ability_in == "logit":
                shift = shift + weight[0] * evidence
            else:  # one value per step, for each of its skills
                guess_raw = guess_raw + weight[0] * evidence[..., None]
                slip_raw = slip_raw - weight[1] * evidence[..., None]
        for weight, evidence in ((self.skill_ability_weight, skill_ability), (self.skill_recency_weight, skill_recency),
                                 (self.related_weight, related), (self.skill_forgetting_weight, forgetting)):  # fmt: skip
            if weight is not None and evidence is not None:
                guess_raw = guess_raw + weight[0] * evidence
                slip_raw = slip_raw - weight[1] * evidence
        guess = aggregate_skills(self.guess_max * torch.sigmoid(guess_raw), valid, "mean").clamp_min(1e-12)
        slip = aggregate_skills(self.slip_max * torch.sigmoid(slip_raw), valid, "mean").clamp_min(1e-12)
        return guess_slip_logit(m, self.mastery_threshold, self.temperature, guess.log(), slip.log()) + shift

    @property
    def gamma(self) -> torch.Tensor | None:
        return _positive(self.gamma_raw)

    def student_gamma(self, student: torch.Tensor) -> torch.Tensor:
        """gamma per batch row: learned for training students, their mean for unseen ones (-1)."""
        gamma = self.gamma
        if gamma is None:
            return torch.ones(student.shape, device=student.device)
        return torch.where(student >= 0, gamma[student.clamp_min(0)], gamma.mean())

    # -- forward ------------------------------------------------------------------------------------
    def _attention_bias(self, skills: torch.Tensor) -> torch.Tensor | None:
        """Learned skill-to-skill scores (mean over skill pairs) plus the causal mask: [B, 1, L, L]."""
        if self.skill_bias is None:
            return None
        valid = skills >= 0
        pair = skills.clamp_min(0)[:, :, None, :, None] * self.num_skills + skills.clamp_min(0)[:, None, :, None, :]
        both = valid[:, :, None, :, None] & valid[:, None, :, None, :]
        scores = self.skill_bias.flatten()[pair] * both
        scores = scores.sum((-1, -2)) / both.sum((-1, -2)).clamp_min(1)
        steps = skills.shape[1]
        future = torch.ones(steps, steps, dtype=torch.bool, device=skills.device).triu(1)
        return scores.masked_fill(future, float("-inf")).unsqueeze(1)

    def _gains(self, val2: torch.Tensor, skills: torch.Tensor, dense: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Gains at the practised skills [B, L, K] and, if ``dense``, at every skill [B, L, C]."""
        if self.gains_out is None:  # V0: one scalar per step for the practised skills
            scalar = torch.sigmoid(torch.relu(val2).mean(-1, keepdim=True))
            return scalar.expand(skills.shape), scalar.expand(*skills.shape[:2], self.num_skills) if dense else None
        hidden = self.gains_body(val2)
        ids = skills.clamp_min(0)
        at_skills = torch.sigmoid(
            torch.einsum("bld,blkd->blk", hidden, self.gains_out.weight[ids]) + self.gains_out.bias[ids]
        )
        return at_skills, torch.sigmoid(self.gains_out(hidden)) if dense else None

    def effective_practice(
        self, gain: torch.Tensor, gains_all: torch.Tensor | None, skills: torch.Tensor, targets: torch.Tensor,
        inclusive: bool,
    ) -> torch.Tensor:  # fmt: skip
        """EP_t (or EP_{t-1} when not ``inclusive``) at ``targets`` skill ids: [B, L, J]."""
        if self.accumulate == "practiced":
            return accumulate_practised(gain, skills, targets, self.num_skills, inclusive)
        assert gains_all is not None
        return accumulate_dense_at(gains_all, targets, inclusive)

    def skill_mastery(self, ep: torch.Tensor, targets: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        ids = targets.clamp_min(0)
        gamma = self.student_gamma(student)[:, None, None]
        return mastery(ep, self.beta[ids], gamma, self.saturation[ids], self.offset[ids])

    def encode2(self, skills: torch.Tensor, responses: torch.Tensor, need_all_gains: bool):
        """Encoder 2 up to the gains: (gain at practised skills, gains of all skills or None)."""
        _, val2 = self.encoder2(skills, responses, self._attention_bias(skills), context=False)
        dense = need_all_gains or self.accumulate == "all"
        return self._gains(val2, skills, dense)

    def forward(
        self, skills: torch.Tensor, responses: torch.Tensor, student: torch.Tensor, need_all_gains: bool = False
    ) -> ModelOutput:
        """Predict r_{t+1} for t = 0..L-2 with both encoders.

        Args:
            skills: [B, L, K] skill ids, -1 for empty slots and padding.
            responses: [B, L] 0/1.
            student: [B] training-student slot for gamma, -1 for unseen students.
            need_all_gains: also return every skill's gain (for the variance loss).
        """
        ctx1, val1 = self.encoder1(skills, responses)
        nxt = skills[:, 1:]
        next_targets = torch.cat([nxt, torch.full_like(skills[:, :1], -1)], dim=1)
        # The student's record before question t+1, read by both encoders and counted once (no
        # parameter): (correct, answered) of steps 0..t at its skills, and the overall running ability.
        record = ability = None
        if self.history is not None or self.skill_ability_weight_raw is not None:
            record = self.skill_record(skills, responses, next_targets)
        if self.history is not None or self.ability_weight_raw is not None:
            ability = running_ability(responses, skills[..., 0] >= 0)[:, :-1]
        next_skill = embed_skill_sets(self.skill_embedding, nxt, nxt >= 0)
        states = [ctx1[:, :-1], val1[:, :-1]]
        if self.recurrent is not None:
            states.append(self.recurrent(skills, responses)[:, :-1])
        features = [*states, next_skill]
        if self.retriever is not None:  # output t (question t+1) attends to steps 0..t
            features.append(self.retriever(next_skill, ctx1[:, :-1], val1[:, :-1]))
        if self.history is not None:
            features.append(self.history(history_features(*record, ability, skills)))
        enc1_logit = self.enc1_head(torch.cat(features, -1)).squeeze(-1)
        waviness = None
        if self.readout is not None:
            out = embed_skill_sets(self.skill_output, nxt, nxt >= 0)  # [B, L-1, d + 1]: vector and bias
            state = self.readout(torch.cat(states, -1))
            enc1_logit = enc1_logit + (state * out[..., :-1]).sum(-1) + out[..., -1]
            if self.training:  # only training adds it to the loss: evaluation skips the work
                waviness = readout_waviness(state, self.skill_output.weight[:, :-1])

        gain, gains_all = self.encode2(skills, responses, need_all_gains)
        if self.im_target == "next":
            ep = self.effective_practice(gain, gains_all, skills, next_targets, inclusive=True)[:, :-1]
        else:  # the original's leaky target: mastery after seeing r_{t+1}
            targets = skills
            ep = self.effective_practice(gain, gains_all, skills, targets, inclusive=True)[:, 1:]
        m = self.skill_mastery(ep, nxt, student)
        skill_ability = None if self.skill_ability_weight_raw is None else laplace_logit(*record)[:, :-1]
        skill_recency = forgetting = None
        if self.skill_recency_weight_raw is not None or self.skill_forgetting_weight_raw is not None:
            last, recency = last_practice(skills, responses, next_targets, self.num_skills)
            if self.skill_recency_weight_raw is not None:
                skill_recency = (last * recency)[:, :-1]
            if self.skill_forgetting_weight_raw is not None:
                forgetting = practice_gap(recency)[:, :-1]
        related = None if self.related_to is None else self.related_record(skills, responses, next_targets)[:, :-1]
        recent = None if self.expected_raw is None else self.recent_record(skills, responses)[:, :-1]
        enc2_logit = self.response_logit(m, nxt, ability, skill_ability, skill_recency, related, recent, forgetting)
        mastery_logit = self.response_logit(m, nxt) if self.training and self.mastery_output else None
        return ModelOutput(enc1_logit=enc1_logit, enc2_logit=enc2_logit, gain=gain, gains_all=gains_all,
                           waviness=waviness, mastery_logit=mastery_logit)

    @torch.no_grad()
    def mastery_all_skills(
        self, gain: torch.Tensor, gains_all: torch.Tensor | None, skills: torch.Tensor, student: torch.Tensor
    ) -> torch.Tensor:
        """Mastery of every skill after each step, m_t[s]: [B, L, C] (for checks, not training).

        Takes the gains of a forward pass (``ModelOutput.gain``/``gains_all``), so a check reuses
        the validation step's encoder-2 pass instead of running its own.
        """
        if self.accumulate == "practiced":
            ep = accumulate_dense(scatter_gains(gain, skills, self.num_skills))
        else:
            assert gains_all is not None, "accumulate=all: forward returns every skill's gain"
            ep = accumulate_dense(gains_all)
        gamma = self.student_gamma(student)[:, None, None]
        return mastery(ep, self.beta, gamma, self.saturation, self.offset)

    @torch.no_grad()
    def practised_mastery(
        self, gain: torch.Tensor, gains_all: torch.Tensor | None, skills: torch.Tensor, student: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Per step, mastery of the interaction's own skills before and after its gain ([B, L, K]),
        from the gains of a forward pass (``ModelOutput.gain``/``gains_all``)."""
        before = self.effective_practice(gain, gains_all, skills, skills, inclusive=False)
        after = self.effective_practice(gain, gains_all, skills, skills, inclusive=True)
        return {
            "mastery_before": self.skill_mastery(before, skills, student),
            "mastery_after": self.skill_mastery(after, skills, student),
        }
