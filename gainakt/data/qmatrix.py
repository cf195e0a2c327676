"""The Q-matrix (which skills each problem exercises) and the folding of rows repeated per skill.

Some sources list a multi-skill answer once per skill, in consecutive rows. Scoring each copy
would let the model read the answer off its twin, so such rows become one interaction carrying
the skill set; encoder 2's accumulation then credits every skill of the set.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gainakt.data.interactions import InteractionData


def skill_sets(group: np.ndarray, skill: np.ndarray, num_groups: int) -> np.ndarray:
    """[num_groups, K] skill sets (-1 padded, ascending) from (group, skill) pairs; repeats count once."""
    pairs = np.unique(np.stack([group, skill], axis=1), axis=0) if len(group) else np.empty((0, 2), np.int64)
    per_group = np.bincount(pairs[:, 0], minlength=num_groups)
    rank = np.arange(len(pairs)) - np.repeat(np.cumsum(per_group) - per_group, per_group)
    sets = np.full((num_groups, max(int(per_group.max(initial=0)), 1)), -1, dtype=np.int32)
    sets[pairs[:, 0], rank] = pairs[:, 1]
    return sets


def q_matrix(data: InteractionData) -> np.ndarray:
    """[P, C] bool: skills seen with each problem; without problems each skill is its own question."""
    if data.problems is None:
        return np.eye(data.num_skills, dtype=bool)
    q = np.zeros((data.num_problems, data.num_skills), dtype=bool)
    rows, slots = np.nonzero(data.skills >= 0)
    q[data.problems[rows], data.skills[rows, slots]] = True
    return q


def merge_skill_rows(data: InteractionData) -> InteractionData:
    """Fold consecutive rows of one student with the same problem and response but another skill.

    Those are one answer listed once per skill (the AKT ``_pid`` files keep them); the merged
    interaction carries the union of their skills. A skill seen again starts a new interaction, so
    a repeated answer to the same problem stays two answers. Only single-skill rows are merged (a
    source with skill sets has no copies to fold). The number of rows folded away is recorded in
    ``adjusted['skill_rows_merged']``.
    """
    if data.problems is None or data.skills.shape[1] != 1:
        return data
    skill = data.skills[:, 0].astype(np.int64)
    student = np.repeat(np.arange(data.num_students), data.lengths)
    joins = np.zeros(data.num_interactions, dtype=bool)
    joins[1:] = (
        (student[1:] == student[:-1])
        & (data.problems[1:] == data.problems[:-1])
        & (data.responses[1:] == data.responses[:-1])
        & (skill[1:] != skill[:-1])
    )
    while True:  # split a group at its first repeated skill until no group repeats one
        group = np.cumsum(~joins) - 1
        _, first_of_key = np.unique(group * (data.num_skills + 1) + skill, return_index=True)
        repeat = np.ones(len(skill), dtype=bool)
        repeat[first_of_key] = False
        repeat &= joins
        if not repeat.any():
            break
        _, first_repeat = np.unique(group[repeat], return_index=True)
        joins[np.flatnonzero(repeat)[first_repeat]] = False
    first = np.flatnonzero(~joins)
    return InteractionData(
        offsets=np.concatenate([[0], np.cumsum(np.bincount(student[first], minlength=data.num_students))]),
        skills=skill_sets(group, skill, len(first)),
        responses=data.responses[first],
        fold=data.fold,
        num_skills=data.num_skills,
        student_ids=data.student_ids,
        problems=data.problems[first],
        num_problems=data.num_problems,
        truth=data.truth,
        skill_ids=data.skill_ids,
        problem_ids=data.problem_ids,
        rotating_test=data.rotating_test,
        adjusted={**data.adjusted, "skill_rows_merged": int(joins.sum())},
    )


def skills_from_problems(data: InteractionData) -> InteractionData:
    """Give every interaction the full skill set of its problem, as read off the data (its Q-matrix row).

    For sources that name one skill per row although a problem exercises several (the AKT and
    DTransformer files), this lets encoder 2 credit all of a problem's skills at every answer.
    """
    if data.problems is None:
        return data
    rows, slots = np.nonzero(data.skills >= 0)
    sets = skill_sets(data.problems[rows].astype(np.int64), data.skills[rows, slots].astype(np.int64), data.num_problems)
    return replace(data, skills=sets[data.problems])
