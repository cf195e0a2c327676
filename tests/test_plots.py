"""Plots from hand-made trajectories and metrics, with and without the optional inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gainakt.verification.plots import mastery_curves_figure, training_curves_figure, write_plots


def _rows(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "split": "test", "student": np.repeat(["a", "b", "c"], n // 3), "window": np.repeat([0, 1, 0], n // 3),
        "step": np.tile(np.arange(1, n // 3 + 1), 3), "skill": rng.choice(["0", "1", "2|1"], n),
        "response": rng.integers(0, 2, n), "enc1_prob": rng.random(n), "enc2_prob": rng.random(n),
        "mastery_before": np.linspace(0.1, 0.7, n), "mastery_after": np.linspace(0.12, 0.72, n),
        "gain": rng.random(n), "gain_other": 0.0,
    })  # fmt: skip


def test_all_plots_with_gain_std_and_truth(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,val/gain_std,val/enc1_auc,val/enc2_auc\n0,0.01,0.6,0.55\n1,0.03,0.65,0.6\n")
    written = write_plots(_rows(), {"beta": [1.0, 2.0, 3.0]}, tmp_path / "plots", metrics_csv=metrics,
                          truth={"beta": np.array([0.5, 1.0, 1.5])})  # fmt: skip
    names = sorted(p.name for p in written)
    assert names == ["gain_by_response.png", "gain_distribution.png", "learned_vs_true_rates.png",
                     "mastery_curves.png", "training_curves.png"]  # fmt: skip
    assert all(p.stat().st_size > 1000 for p in written)


def test_plots_without_optional_inputs(tmp_path):
    written = write_plots(_rows(), {"beta": [1.0, 2.0, 3.0]}, tmp_path / "plots", metrics_csv=tmp_path / "absent.csv")
    assert sorted(p.name for p in written) == ["gain_by_response.png", "gain_distribution.png", "mastery_curves.png"]
    assert write_plots(_rows().iloc[:0], {"beta": []}, tmp_path / "empty") == []


def test_one_epoch_training_curves_tick_whole_epochs_only():
    frame = pd.DataFrame([{"epoch": 0, "val/enc1_auc": 0.6, "val/enc2_auc": 0.55, "val/gain_std": 0.02}])
    fig = training_curves_figure(frame, gain_std_threshold=0.05)
    for ax in fig.axes:
        low, high = ax.get_xlim()
        shown = [tick for tick in ax.get_xticks() if low <= tick <= high]
        assert shown == [0.0], shown


def test_mastery_caption_mentions_window_lines_only_when_drawn():
    rows = _rows()  # one window per student
    assert "dotted" not in mastery_curves_figure(rows).axes[-1].get_xlabel()
    rows.loc[(rows["student"] == "a") & (rows["step"] > 10), "window"] = 1  # student a's second window
    assert "dotted: a new window starts" in mastery_curves_figure(rows).axes[-1].get_xlabel()
