"""Sweeps in one program: seeds x hyperparameter grid as one vmapped (and sharded) axis."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import train
from experiments.runs import load_trainer
from tests.test_train import TINY

GRID = "sweep={algo.learner.learning_rate: [1e-4, 1e-3], algo.objective.init_lambda: [10, 100]}"


def _member(state, i):
    return jax.tree.map(lambda x: np.asarray(x[i]), state)


def test_each_sweep_member_equals_its_own_single_run(tmp_path):
    swept = train.run(train.resolve_config(TINY + [f"run_dir={tmp_path / 'grid'}", "total_steps=80", "num_seeds=2", "tensorboard=true", GRID]))
    # Members are grid-major: (1e-4, 10) x seeds 0, 1; (1e-4, 100) x 2; (1e-3, 10) x 2; (1e-3, 100) x 2.
    learner = swept.state.learner
    rates = np.asarray(learner.actor_opt.hyperparams["learning_rate"])
    np.testing.assert_allclose(rates, [1e-4] * 4 + [1e-3] * 4, rtol=1e-6)
    lambdas = np.exp(np.asarray(swept.state.objective.log_lambda))
    np.testing.assert_allclose(lambdas[[0, 1, 4, 5]], 10, rtol=0.05)  # a few dual steps from the start
    np.testing.assert_allclose(lambdas[[2, 3, 6, 7]], 100, rtol=0.05)

    single = train.run(
        train.resolve_config(
            TINY
            + [f"run_dir={tmp_path / 'one'}", "total_steps=80"]
            + ["algo.learner.learning_rate=1e-3", "algo.objective.init_lambda=100"]
        )
    )
    alone = jax.tree.leaves(_member(single.state.learner, 0))
    # vmapped and single programs round differently: equal up to float noise ...
    for a, b in zip(jax.tree.leaves(_member(swept.state.learner, 6)), alone):  # seed 0, lr 1e-3, lambda 100
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-4)
    # ... which is far below the effect of the swept value itself (member 2: lr 1e-4).
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(_member(swept.state.learner, 2)), alone))
    assert gap > 1e-2

    rows = [json.loads(line) for line in (tmp_path / "grid" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-8:]
    assert [r["member"] for r in last][:2] == [
        "seed_0-learning_rate=0.0001-init_lambda=10",
        "seed_1-learning_rate=0.0001-init_lambda=10",
    ]
    assert last[7]["sweep/algo.learner.learning_rate"] == 1e-3 and last[7]["seed"] == 1
    assert len(list((tmp_path / "grid" / "tb").iterdir())) == 8


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("sweep={network.hidden: [32, 64]}", "cannot sweep network.hidden: it is static"),
        ("sweep={algo.learner.hidden: [32, 64]}", "cannot sweep algo.learner.hidden: it is static"),
        ("sweep={algo.learner.nothing: [1, 2]}", "no such config key"),
        ("sweep={algo.learner.gamma: []}", "needs a non-empty list"),
    ],
)
def test_bad_sweeps_are_rejected_before_compile(override, fragment, tmp_path, capsys):
    from tests.test_train import COMPILES

    before = COMPILES.count
    assert train.main(TINY + [f"run_dir={tmp_path}", override]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err
    assert COMPILES.count == before


def _two_device_run(args, cwd):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd
    )


@pytest.mark.slow
def test_sharded_sweep_over_two_devices_equals_one_device(tmp_path):
    args = TINY + ["total_steps=80", "num_seeds=2", "sweep={algo.learner.learning_rate: [1e-4, 1e-3]}"]
    out = _two_device_run(args + [f"run_dir={tmp_path / 'two'}"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "CpuDevice(id=1)" in out.stdout  # really ran with two devices
    one = train.run(train.resolve_config(args + [f"run_dir={tmp_path / 'one'}"]))
    _, two_state, _, _ = load_trainer(tmp_path / "two")
    for a, b in zip(jax.tree.leaves(one.state), jax.tree.leaves(two_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_members_that_do_not_divide_over_devices_are_an_error(tmp_path):
    out = _two_device_run(TINY + [f"run_dir={tmp_path}", "num_seeds=3"], tmp_path)
    assert out.returncode == 2
    assert "3 members (num_seeds x sweep grid) do not divide over 2 devices" in out.stderr
