"""Run analysis: loading runs, curves with confidence bands, URLB normalisation, rliable aggregation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from experiments import analysis


def _fake_run(path, algo, world, values, seeds=(0, 1)):
    path.mkdir()
    (path / "config.yaml").write_text(f"algo: {{name: {algo}}}\nworld: {{name: {world}}}\n")
    with open(path / "metrics.jsonl", "w") as f:
        for step, value in enumerate(values, 1):
            for s in seeds:
                f.write(json.dumps({"step": step * 100, "seed": s, "eval/return": value + s, "eval/coverage": value}) + "\n")


def test_curves_have_mean_and_a_95_band_over_seeds(tmp_path):
    _fake_run(tmp_path / "a", "metra", "point", [1.0, 3.0])
    runs = analysis.load_runs([tmp_path / "a"])
    curve = analysis.learning_curves(runs, "eval/return").set_index("step")
    # seeds give value and value + 1: mean +0.5, std 1/sqrt(2), band 1.96 * std / sqrt(2) = 0.98
    assert curve.loc[200, "mean"] == pytest.approx(3.5)
    assert curve.loc[200, "high"] - curve.loc[200, "mean"] == pytest.approx(0.98)
    table = analysis.final_table(runs, ["eval/return"])
    assert table.loc[("metra", "point"), ("eval/return", "mean")] == pytest.approx(3.5)
    with pytest.raises(FileNotFoundError):
        analysis.load_runs([tmp_path / "nothing"])


def test_urlb_normalisation_divides_by_the_expert_score(tmp_path):
    _fake_run(tmp_path / "w", "cic", "dmc/walker_walk", [100.0, 485.5])
    last = analysis.urlb_normalized(analysis.load_runs([tmp_path / "w"]))
    np.testing.assert_allclose(sorted(last["normalized"]), [485.5 / 971, 486.5 / 971])
    _fake_run(tmp_path / "p", "cic", "point", [1.0])
    with pytest.raises(ValueError, match="no URLB expert score for point"):
        analysis.urlb_normalized(analysis.load_runs([tmp_path / "p"]))


def test_aggregate_gives_iqm_and_bootstrap_intervals():
    scores = {"a": np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]), "b": np.full((4, 2), 0.5)}
    table = analysis.aggregate(scores, reps=200)
    # IQM of the 8 scores of "a": the middle 4 (0.3..0.6) -> 0.45; a constant has a zero-width CI.
    assert table.loc["a", "iqm"] == pytest.approx(0.45)
    assert table.loc["a", "iqm_low"] <= 0.45 <= table.loc["a", "iqm_high"]
    assert table.loc["b", "iqm_low"] == pytest.approx(0.5) and table.loc["b", "iqm_high"] == pytest.approx(0.5)
    assert isinstance(table, pd.DataFrame)
