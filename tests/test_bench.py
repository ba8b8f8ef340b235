"""The benchmark CLI: every contract figure present, finite and positive; no wall-clock thresholds."""

from __future__ import annotations

import json
import math

import pytest

from experiments import bench


def _tiny_build(overrides):
    """The point world with networks and loop sizes small enough for a test."""
    from algos.loop import LoopConfig
    from algos.sac import SAC, SACConfig
    from skills.distance import DistanceSkills, MetraConfig
    from worlds.point import PointWorld

    world = PointWorld(episode_length=20)
    objective = DistanceSkills(MetraConfig(hidden=(32, 32)), world.spec.obs_size)
    learner = SAC(SACConfig(hidden=(32, 32)), world.spec.obs_size + objective.skill_size, world.spec.action_size)
    loop = LoopConfig(
        num_envs=4, rollout_length=10, updates_per_epoch=3, batch_size=32, buffer_size=512, prefill_steps=64
    )
    return world, objective, learner, loop


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(bench, "_build", _tiny_build)
    monkeypatch.setattr(bench, "REFERENCE_HIDDEN", (32, 32))
    monkeypatch.setattr(bench, "REFERENCE_BATCH", 32)
    monkeypatch.setattr(bench, "REFERENCE_UPDATES", 2)
    monkeypatch.setattr(bench, "MATMUL_SIZE", 128)


def test_bench_reports_every_contract_figure(tiny, tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    results = bench.main(["world=point", f"out={out}", "reps=1"])

    for key in bench.CONTRACT_KEYS:
        value = results[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert results["loop_overhead"] == pytest.approx(results["epoch_s"] / (results["rollout_s"] + results["updates_s"]))
    assert results["learner_peak_fraction"] == pytest.approx(results["learner_gflops"] / results["matmul_peak_gflops"])
    assert results["learner_2x1024_peak_fraction"] == pytest.approx(
        results["learner_2x1024_gflops"] / results["matmul_peak_gflops"]
    )
    assert results["env_steps_per_s_train"] == pytest.approx(4 * 10 / results["epoch_s"])
    assert results["updates_per_s"] == pytest.approx(3 / results["updates_s"])

    config = results["config"]
    assert config["world"] == "point" and config["algo"] == "metra"
    sizes = ("num_envs", "rollout_length", "updates_per_epoch", "batch_size")
    assert tuple(config[k] for k in sizes) == (4, 10, 3, 32)
    assert config["hidden"] == {"learner": [32, 32], "objective": [32, 32]}
    assert results["jax_version"] and results["device_kind"]

    # Printed and written as the same JSON.
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    assert json.loads(capsys.readouterr().out) == json.loads(out.read_text())


@pytest.mark.parametrize(
    "argv", [["bogus=1"], ["world=point", "nonsense"], ["reps=zero"], ["reps=0"], ["world=nowhere"]]
)
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error:") and "\n" not in err, err
