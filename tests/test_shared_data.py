"""The real datasets in ../shared/data: counts match each folder's PROVENANCE.md, the three
ASSISTments 2015 forms hold the same interactions, and a real folder trains through the config."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from gainakt.data.interactions import InteractionData
from gainakt.data.loading import detect_format, load_dataset
from gainakt.train import train
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real datasets not present at {SHARED_DATA} (see README, 'Datasets')"
)

# folder -> (format auto-detected, students, interactions, skills, problems, correct rate) from PROVENANCE.md
PROVENANCE = {
    "assist2015/pykt": ("pykt", 19_093, 682_797, 100, 0, 0.7325),
    "assist2015/akt_5fold": ("akt", 19_840, 683_801, 100, 0, 0.7318),
    "assist2015/dkvmn": ("three_line", 19_840, 683_801, 100, 0, 0.7318),
    "assist2009/akt_pid_5fold": ("akt", 4_150, 325_589, 110, 16_891, 0.6585),
    "assist2009/dkvmn": ("three_line", 4_151, 325_637, 110, 0, 0.6585),
    "assist2009/dkt_original": ("three_line", 4_217, 525_534, 124, 0, 0.6795),
    "algebra2005/dtransformer_subset": ("dtransformer", 715, 74_575, 138, 1_084, 0.8020),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("shared_cache")


@pytest.mark.parametrize("folder", sorted(PROVENANCE))
def test_counts_match_provenance(folder: str, cache) -> None:
    format, students, interactions, skills, problems, correct = PROVENANCE[folder]
    root = SHARED_DATA / folder
    assert detect_format(root) == format
    data = load_dataset("auto", str(root), {"merge_skill_rows": False}, cache)
    assert (data.num_students, data.num_interactions, data.num_skills, data.num_problems) == (
        students, interactions, skills, problems,
    )
    assert round(float(data.responses.mean()), 4) == correct


def test_merging_skill_rows_keeps_every_row_accounted_for(cache) -> None:
    data = load_dataset("akt", str(SHARED_DATA / "assist2009/akt_pid_5fold"), {"merge_skill_rows": True}, cache)
    assert data.num_interactions + data.adjusted["skill_rows_merged"] == 325_589
    assert data.skills.shape[1] > 1 and data.num_interactions < 325_589


def _by_original_ids(data: InteractionData) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    skills = data.skill_ids[data.skills[:, 0]]
    return {
        str(sid): (tuple(skills[a:b]), tuple(data.responses[a:b].tolist()))
        for sid, a, b in zip(data.student_ids, data.offsets[:-1], data.offsets[1:])
    }


def _canonical(data: InteractionData) -> Counter:
    """Sequences with skills relabelled by first appearance: equal across forms that number skills differently."""
    out = Counter()
    for a, b in zip(data.offsets[:-1], data.offsets[1:]):
        seen: dict[int, int] = {}
        relabelled = tuple(seen.setdefault(int(s), len(seen)) for s in data.skills[a:b, 0])
        out[(relabelled, data.responses[a:b].tobytes())] += 1
    return out


def test_the_three_assist2015_forms_hold_the_same_interactions(cache) -> None:
    root = SHARED_DATA / "assist2015"
    forms = {name: load_dataset("auto", str(root / name), {}, cache) for name in ("pykt", "akt_5fold", "dkvmn")}
    pykt, akt = _by_original_ids(forms["pykt"]), _by_original_ids(forms["akt_5fold"])
    # pykt dropped students with fewer than 3 interactions; every other student is identical, in original ids
    assert len(pykt) == 19_093 and set(pykt) <= set(akt)
    assert all(pykt[s] == akt[s] for s in pykt)
    assert all(len(seq[1]) < 3 for s, seq in akt.items() if s not in pykt)
    # DKVMN has no user ids and numbers skills its own way: same sequences up to skill names
    assert _canonical(forms["dkvmn"]) == _canonical(forms["akt_5fold"])
    assert np.array_equal(np.sort(forms["dkvmn"].lengths), np.sort(forms["akt_5fold"].lengths))
    keys = json.loads((root / "pykt" / "keyid2idx.json").read_text())
    assert sorted(forms["pykt"].skill_ids.tolist()) == sorted(keys["concepts"])


def test_a_real_folder_trains_with_only_data_and_root(tiny_config) -> None:
    root = SHARED_DATA / "algebra2005" / "dtransformer_subset"
    summary = train(tiny_config("data=algebra2005", f"data.root={root}"))
    assert summary["status"] == "completed", summary
    assert 0.0 <= summary["test/enc1_auc"] <= 1.0
