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
    learner = SAC(SACConfig(hidden=(32, 32)), world.spec.obs_size, world.spec.action_size, skill_size=objective.skill_size)
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


# ---- suites (experiments/bench_suite.py) ------------------------------------------------------------
from experiments import bench_suite  # noqa: E402

TINY_OVERRIDES = [
    "network.hidden=[32,32]",
    "loop.num_envs=4",
    "loop.rollout_length=10",
    "loop.updates_per_epoch=3",
    "loop.batch_size=32",
    "loop.buffer_size=512",
    "loop.prefill_steps=64",
    "loop.eval_episodes=4",
]


def _positive(results: dict, keys) -> None:
    for key in keys:
        value = results[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def _check_seeds(results: dict, epochs: int) -> None:
    _positive(results, bench_suite.SEEDS_KEYS)
    assert results["seeds_vmapped_speedup"] == pytest.approx(results["seeds_sequential_s"] / results["seeds_vmapped_s"])
    assert results["devices_speedup"] == pytest.approx(
        results["devices_2_env_steps_per_s"] / results["devices_1_env_steps_per_s"]
    )
    config = results["config"]
    steps = 8 * epochs * config["steps_per_epoch"]
    assert config["world"] == "point" and config["seeds"] == 8 and config["epochs_per_call"] == epochs
    assert results["seeds_env_steps_per_s_vmapped"] == pytest.approx(steps / results["seeds_vmapped_s"])
    assert results["devices"]["1"]["device_count"] == 1 and results["devices"]["2"]["device_count"] == 2


@pytest.fixture
def tiny_reference(monkeypatch):
    monkeypatch.setattr(bench, "REFERENCE_HIDDEN", (32, 32))
    monkeypatch.setattr(bench, "REFERENCE_BATCH", 32)
    monkeypatch.setattr(bench, "REFERENCE_UPDATES", 2)
    monkeypatch.setattr(bench, "MATMUL_SIZE", 128)


def test_seeds_suite_in_process(monkeypatch, tmp_path, capsys):
    """The whole seeds suite with the 2-device worker run in-process (the subprocess is the slow test)."""
    calls = []

    def fake_subprocess(overrides, n_members, epochs, reps, devices):
        calls.append(devices)
        return {**bench_suite.devices_worker(overrides, n_members, epochs, reps), "device_count": devices}

    monkeypatch.setattr(bench_suite, "devices_subprocess", fake_subprocess)
    out = tmp_path / "seeds.json"
    results = bench.main(["suite=seeds", "reps=1", "epochs=1", f"out={out}", *TINY_OVERRIDES])
    _check_seeds(results, epochs=1)
    assert calls == [2] and results["devices"]["1"]["where"] == "in-process"
    assert results["config"]["overrides"][:2] == ["world=point", "algo=metra"]
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_seeds_suite_two_devices_in_a_subprocess():
    results = bench.main(["seeds_vs_sequential=true", "reps=1", "epochs=1", *TINY_OVERRIDES])
    _check_seeds(results, epochs=1)
    assert results["devices"]["2"]["where"] == "subprocess"


def test_algos_suite(monkeypatch, tiny_reference, tmp_path):
    monkeypatch.setattr(bench_suite, "algo_names", lambda: ["diayn", "nope", "sgcrl"])
    monkeypatch.setattr(bench_suite, "EXTRA_RUNS", (("diayn", "point_block"), ("absent", "brax/ant")))
    monkeypatch.setattr(bench_suite, "ALGO_WORLDS", {"sgcrl": "point_maze_u"})
    out = tmp_path / "algos.json"
    results = bench.main(["suite=algos", "reps=1", f"out={out}", *TINY_OVERRIDES])

    assert set(results) == {"diayn", "nope", "sgcrl@point_maze_u", "diayn@point_block", "_suite"}
    for name, world in (("diayn", "point"), ("diayn@point_block", "point_block"), ("sgcrl@point_maze_u", "point_maze_u")):
        figures = results[name]
        _positive(figures, bench.CONTRACT_KEYS)
        assert figures["loop_overhead"] == pytest.approx(figures["epoch_s"] / (figures["rollout_s"] + figures["updates_s"]))
        assert figures["config"]["world_config"] == world and figures["config"]["algo"] == name.split("@")[0]
    assert "error" in results["nope"]  # a broken algo is reported, the suite goes on
    assert any("absent@brax/ant skipped" in note for note in results["_suite"]["notes"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))


def test_mujoco_c_probe_on_walker():
    figures = bench_suite.mujoco_c_probe("walker", "walk", steps=300)
    _positive(figures, ("mujoco_c_steps_per_s", "mujoco_c_s"))
    assert figures["mujoco_c_steps_per_s"] == pytest.approx(300 / figures["mujoco_c_s"])
    assert figures["mujoco_c_substeps"] >= 1


def test_dmc_suite_without_the_mjx_worlds(monkeypatch):
    import worlds

    monkeypatch.setattr(worlds, "names", lambda: ["point"])
    monkeypatch.setattr(bench_suite, "MUJOCO_C_STEPS", 200)
    results = bench_suite.dmc_bench([], reps=1, worlds_=("dmc/walker_walk",))
    entry = results["dmc/walker_walk"]
    _positive(entry, ("mujoco_c_steps_per_s",))
    assert "waits" in entry["note"] and "mjx_over_mujoco_c" not in entry


@pytest.mark.parametrize("argv", [["suite=nope"], ["seeds_vs_sequential=maybe"], ["epochs=0"],
                                  ["suite=algos", "seeds_vs_sequential=true"], ["suite=seeds", "bogus=1"]])  # fmt: skip
def test_bad_suite_arguments_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error:") and "\n" not in err, err
