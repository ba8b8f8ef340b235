"""End-to-end tests of the training CLI: bad input, coverage, seeds, resume, corruption, NaN."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import train

# A run small enough for a test: 4 worlds x 10 steps per epoch, tiny networks.
TINY = [
    "network.hidden=[32,32]",
    "loop.num_envs=4",
    "loop.rollout_length=10",
    "loop.updates_per_epoch=4",
    "loop.batch_size=32",
    "loop.buffer_size=2000",
    "loop.prefill_steps=64",
    "loop.eval_episodes=4",
    "eval_every=2",
    "progress=false",
    "plots=false",
    "tensorboard=false",
]


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class CompileCounter:
    """Counts XLA backend compiles through JAX's monitoring events."""

    def __init__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event, duration, **kwargs):
        if "backend_compile" in event:
            self.count += 1


COMPILES = CompileCounter()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["world=nowhere"], "unknown world 'nowhere'; known: brax/ant"),
        (["algo=nothing"], "unknown algo 'nothing'; known: "),
        (["no_such_key=1"], "unknown config key 'no_such_key'"),
        (["total_steps=0"], "total_steps must be a positive integer"),
        (["total_steps=-800"], "total_steps must be a positive integer"),
        (["total_steps=1001"], "must be a multiple of loop.num_envs*loop.rollout_length"),
        (["num_seeds=0"], "num_seeds must be a positive integer"),
        (["loop.num_envs=0"], "num_envs must be positive"),
        (["loop.batch_size=512", "loop.buffer_size=100"], "buffer_size (100) must be at least batch_size (512)"),
        (["algo.objective.skill_type=weird"], "unknown skill_type 'weird'"),
        (["world.options.arena_size=-1"], "arena_size"),
        (["resume=/definitely/not/here"], "resume directory /definitely/not/here does not exist"),
        (["network.hidden=[0]"], "network.hidden must be a list of positive layer widths, got [0]"),
        (["network.hidden=[64,-1]"], "network.hidden must be a list of positive layer widths, got [64, -1]"),
        (["loop.num_envs=16.0"], "loop.num_envs must be an integer, got 16.0"),
        (["seed=abc"], "seed must be an integer >= 0, got 'abc'"),
        (["algo.learner.learning_rate=fast"], "algo.learner.learning_rate must be a number, got 'fast'"),
        (["algo.learner.gamma=-0.9"], "algo.learner.gamma must be >= 0, got -0.9"),
    ],
)
def test_bad_input_gets_one_line_error_before_any_compile(args, fragment, capsys, tmp_path):
    before = COMPILES.count
    code = train.main(args + [f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err, err
    assert fragment in err
    assert COMPILES.count == before, "bad input must be rejected before anything is compiled"
    assert not (tmp_path / "run").exists(), "bad input must write nothing"


def test_resume_of_a_directory_with_a_damaged_config_is_an_error(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    assert train.main([f"resume={tmp_path}"]) == 2
    assert "config.yaml is not a run config" in capsys.readouterr().err


def test_cli_bad_world_from_a_shell(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.train", "world=nowhere", f"run_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown world 'nowhere'" in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["metra", "lsd", "csd"])
def test_distance_family_on_point_covers_three_times_more_than_random(algo, tmp_path):
    """The family's signature: skills spread out; deterministic skill rollouts cover >= 3x random actions."""
    run_dir = tmp_path / algo
    code = train.main([f"algo={algo}", f"run_dir={run_dir}", "total_steps=32000", "eval_every=20", "progress=false"])
    assert code == 0
    last = rows(run_dir)[-1]
    assert last["step"] == 32000 and last["seed"] == 0
    assert last["eval/coverage"] >= 3 * last["eval/coverage_random"], last
    # Zero-shot goal reaching with z = (phi(g) - phi(s)) / ||.||: better than random actions.
    assert last["eval/goal_success"] > last["eval/goal_success_random"], last
    assert last["eval/goal_distance"] < last["eval/goal_distance_random"], last
    assert (run_dir / "config.yaml").is_file()
    assert sorted((run_dir / "plots").glob("skills_*.png"))
    assert list((run_dir / "tb" / "seed_0").glob("events.out.tfevents.*"))
    assert (run_dir / "checkpoints" / "40").is_dir()


def test_num_seeds_trains_independent_seeds_and_reports_each(tmp_path):
    run_dir = tmp_path / "seeds"
    assert train.main(TINY + [f"run_dir={run_dir}", "total_steps=160", "num_seeds=2", "seed=5", "tensorboard=true"]) == 0
    logged = rows(run_dir)
    assert [(r["step"], r["seed"]) for r in logged] == [(80, 5), (80, 6), (160, 5), (160, 6)]
    assert logged[-1]["loss/critic"] != logged[-2]["loss/critic"]  # different data and init per seed
    assert (run_dir / "tb" / "seed_6").is_dir()  # named by the seed itself


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state)]


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight = train.run(train.resolve_config(TINY + [f"run_dir={tmp_path / 'a'}", "total_steps=240"]))
    first = train.run(train.resolve_config(TINY + [f"run_dir={tmp_path / 'b'}", "total_steps=80"]))
    assert int(first.state.epoch[0]) == 2
    resumed = train.run(train.resolve_config([f"resume={tmp_path / 'b'}", "total_steps=240"]))
    assert int(resumed.state.epoch[0]) == 6
    for a, b in zip(_leaves(straight.state), _leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    assert rows(tmp_path / "b")[-1] == {**rows(tmp_path / "a")[-1], "time/env_steps_per_s": rows(tmp_path / "b")[-1]["time/env_steps_per_s"]}


def test_resume_rejects_changes_that_alter_the_computation(tmp_path, capsys):
    train.run(train.resolve_config(TINY + [f"run_dir={tmp_path}", "total_steps=80"]))
    assert train.main([f"resume={tmp_path}", "loop.batch_size=64"]) == 2
    assert "cannot change loop.batch_size (saved 32, given 64) when resuming" in capsys.readouterr().err
    # The command line that started the run, with resume= appended: every value equals the saved one.
    assert train.main(TINY + ["algo=metra", "world=point", f"run_dir={tmp_path}", "total_steps=80", f"resume={tmp_path}"]) == 0
    assert train.main(TINY + ["algo=lsd", f"run_dir={tmp_path}", f"resume={tmp_path}"]) == 2
    assert "cannot change algo (saved 'metra', given 'lsd')" in capsys.readouterr().err


def test_new_run_refuses_to_overwrite_an_existing_run(tmp_path, capsys):
    train.run(train.resolve_config(TINY + [f"run_dir={tmp_path}", "total_steps=80"]))
    assert train.main(TINY + [f"run_dir={tmp_path}", "total_steps=80"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def _corrupt(checkpoint_dir):
    for path in checkpoint_dir.rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")


def test_corrupt_newest_checkpoint_falls_back_to_previous_good_one(tmp_path, capsys):
    train.run(train.resolve_config(TINY + [f"run_dir={tmp_path}", "total_steps=120", "eval_every=1"]))
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [1, 2, 3]
    _corrupt(tmp_path / "checkpoints" / "3")
    capsys.readouterr()
    result = train.run(train.resolve_config([f"resume={tmp_path}", "total_steps=160"]))
    err = capsys.readouterr().err
    assert "checkpoint step 3" in err and "unreadable" in err and "resuming from step 2" in err
    assert int(result.state.epoch[0]) == 4


def test_all_checkpoints_corrupt_is_a_one_line_error(tmp_path, capsys):
    train.run(train.resolve_config(TINY + [f"run_dir={tmp_path}", "total_steps=80"]))
    _corrupt(tmp_path / "checkpoints")
    capsys.readouterr()
    assert train.main([f"resume={tmp_path}", "total_steps=160"]) == 2
    assert "every checkpoint in" in capsys.readouterr().err.splitlines()[-1]


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    from algos.sac import SAC

    original = SAC.update

    def update_that_diverges(self, params, batch, rewards, key):
        new, metrics = original(self, params, batch, rewards, key)
        # From the third epoch on (4 updates per epoch) the critic loss is NaN.
        broken = params.critic_opt.count >= 8
        metrics["loss/critic"] = jax.numpy.where(broken, jax.numpy.nan, metrics["loss/critic"])
        return new, metrics

    monkeypatch.setattr(SAC, "update", update_that_diverges)
    code = train.main(TINY + [f"run_dir={tmp_path}", "total_steps=160"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert "loss 'loss/critic' became nan at epoch 3 (seed 0)" in err
    assert "last good checkpoint: epoch 2" in err
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["2"]
    assert [r["epoch"] for r in rows(tmp_path)] == [2]  # nothing of the diverged chunk was recorded
    # The last good checkpoint resumes (here with the loss healthy again) and completes the run.
    monkeypatch.undo()
    assert train.main([f"resume={tmp_path}"]) == 0
    assert [r["epoch"] for r in rows(tmp_path)] == [2, 4]


@pytest.mark.slow
@pytest.mark.parametrize("world", ["brax/ant", "brax/humanoid", "dmc/quadruped_walk"])
def test_physics_world_short_run(tmp_path, world):
    """A few epochs of METRA on each physics family through the CLI: it trains, evaluates (task
    return included) and checkpoints, with finite losses and rewards. (dmc/walker_walk's short run
    is the pretraining half of tests/test_finetune.py::test_dmc_walker_pretrain_then_finetune.)"""
    run_dir = tmp_path / "run"
    args = TINY + [
        f"world={world}",
        f"run_dir={run_dir}",
        "world.options.episode_length=20",
        "loop.prefill_steps=40",
        "total_steps=160",
    ]
    assert train.main(args) == 0
    logged = rows(run_dir)
    assert [r["step"] for r in logged] == [80, 160]
    for r in logged:
        assert np.isfinite(r["loss/critic"]) and np.isfinite(r["loss/phi"]) and r["eval/coverage"] >= 1
        assert np.isfinite(r["eval/return"]) and np.isfinite(r["eval/return_random"])
    assert (run_dir / "checkpoints" / "4").is_dir()


def test_evaluate_cli_reproduces_the_training_evaluation(tmp_path, capsys):
    from experiments import evaluate

    train.run(train.resolve_config(TINY + [f"run_dir={tmp_path}", "total_steps=160", "plots=true"]))
    assert evaluate.main([f"run_dir={tmp_path}"]) == 0
    assert evaluate.main([f"run_dir={tmp_path}", "checkpoint=2"]) == 0
    evaluated = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    trained = {r["epoch"]: r for r in rows(tmp_path)}
    for row in evaluated:
        for key in ("eval/coverage", "eval/coverage_random", "eval/goal_success", "eval/goal_distance", "eval/goal_reached"):
            assert row[key] == trained[row["epoch"]][key], key
    assert [r["epoch"] for r in evaluated] == [4, 2]
    assert (tmp_path / "plots" / "skills_0000000080.png").is_file()
    assert evaluate.main([f"run_dir={tmp_path}", "checkpoint=3"]) == 2
    assert "no checkpoint 3" in capsys.readouterr().err
    assert evaluate.main([f"run_dir={tmp_path / 'missing'}"]) == 2
    assert evaluate.main(["bogus=1"]) == 2
