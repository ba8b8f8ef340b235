"""DIAYN (skills/diayn.py): reward and loss against hand-written numpy, and skills that a
discriminator tells apart on the point world after a short run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import skills
from tests.specs import spec_of
from skills.diayn import DIAYN, DIAYNConfig
from tests.test_train import TINY

OBS = 4
K = 5
HIDDEN = (32, 32)


def _batch(key, n: int = 32, k: int = K) -> dict:
    k_obs, k_next, k_skill = jax.random.split(key, 3)
    return {
        "obs": jax.random.normal(k_obs, (n, OBS)),
        "next_obs": jax.random.normal(k_next, (n, OBS)),
        "skill": jax.nn.one_hot(jax.random.randint(k_skill, (n,), 0, k), k),
        "action": jnp.zeros((n, 2)),
        "terminal": jnp.zeros((n,)),
    }


def _np_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


@pytest.mark.parametrize("descriptor_size", [None, 2])
def test_reward_loss_and_accuracy_match_numpy(descriptor_size):
    diayn = DIAYN(DIAYNConfig(skill_dim=K, hidden=HIDDEN, descriptor_size=descriptor_size), OBS)
    params = diayn.init(jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1))
    n = OBS if descriptor_size is None else descriptor_size
    logits = np.asarray(diayn.net.apply(params.discriminator, batch["next_obs"][:, :n]))
    log_q = _np_log_softmax(logits)
    z = np.argmax(np.asarray(batch["skill"]), -1)
    own = log_q[np.arange(len(z)), z]

    r = np.asarray(diayn.reward(params, batch))
    assert r.shape == (32, 1) and diayn.n_rewards == 1 and diayn.skill_size == K
    np.testing.assert_allclose(r[:, 0], own - np.log(1.0 / K), rtol=1e-5, atol=1e-5)
    assert np.std(own) > 1e-3  # not a comparison of constants

    _, metrics = jax.jit(diayn.update)(params, batch, jax.random.PRNGKey(2))
    np.testing.assert_allclose(float(metrics["loss/discriminator"]), -own.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["diayn/accuracy"]), np.mean(logits.argmax(-1) == z), rtol=1e-6)


def test_reward_reads_only_the_descriptor_of_the_next_observation():
    diayn = DIAYN(DIAYNConfig(skill_dim=K, hidden=HIDDEN, descriptor_size=2), OBS)
    params = diayn.init(jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1))
    r = diayn.reward(params, batch)
    moved = {**batch, "obs": batch["obs"] + 5.0, "next_obs": batch["next_obs"].at[:, 2:].add(5.0)}
    np.testing.assert_array_equal(np.asarray(diayn.reward(params, moved)), np.asarray(r))
    shifted = {**batch, "next_obs": batch["next_obs"].at[:, :2].add(1.0)}
    assert not np.allclose(np.asarray(diayn.reward(params, shifted)), np.asarray(r))


def test_reward_is_zero_for_a_discriminator_at_chance():
    """log q(z|s') - log p(z) = log(1/K) + log K = 0 when q is uniform."""
    diayn = DIAYN(DIAYNConfig(skill_dim=K, hidden=HIDDEN), OBS)
    params = diayn.init(jax.random.PRNGKey(0))
    flat = jax.tree.map(jnp.zeros_like, params.discriminator)
    r = diayn.reward(params.replace(discriminator=flat), _batch(jax.random.PRNGKey(1)))
    np.testing.assert_allclose(np.asarray(r), 0.0, atol=1e-6)


def test_update_learns_to_tell_separable_skills_apart():
    """Each skill's next states sit around its own centre: the discriminator gets to ~100% and the
    reward approaches its maximum log K."""
    diayn = DIAYN(DIAYNConfig(skill_dim=K, hidden=HIDDEN, learning_rate=3e-3), OBS)
    params = diayn.init(jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1), n=128)
    centres = 3.0 * jax.random.normal(jax.random.PRNGKey(2), (K, OBS))
    batch["next_obs"] = batch["skill"] @ centres + 0.1 * batch["next_obs"]
    update = jax.jit(diayn.update)
    _, first = update(params, batch, jax.random.PRNGKey(0))
    for i in range(150):
        params, metrics = update(params, batch, jax.random.PRNGKey(i))
    assert float(first["diayn/accuracy"]) < 0.6
    assert float(metrics["diayn/accuracy"]) == 1.0
    assert float(metrics["loss/discriminator"]) < 0.1 * float(first["loss/discriminator"])
    assert float(jnp.mean(diayn.reward(params, batch))) > np.log(K) - 0.1


def test_registry_and_bad_options():
    obj = skills.make("diayn", {"skill_dim": 8, "hidden": [32], "descriptor_size": 2}, spec_of(6))
    assert isinstance(obj, DIAYN) and obj.skill_size == 8 and obj.descriptor_size == 2
    assert DIAYNConfig().skill_dim == 16
    for bad in [{"skill_dim": 1}, {"descriptor_size": 7}, {"descriptor_size": 0}]:
        with pytest.raises(ValueError):
            skills.make("diayn", bad, spec_of(6))
    z = np.asarray(obj.sample(jax.random.PRNGKey(0), 4000))
    np.testing.assert_array_equal(z.sum(-1), 1.0)
    np.testing.assert_allclose(z.mean(0), 1 / 8, atol=0.02)


def test_sweepable_learning_rate_reaches_the_optimizer():
    diayn = DIAYN(DIAYNConfig(skill_dim=K, hidden=HIDDEN), OBS)
    params = diayn.init(jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1))
    frozen, _ = diayn.update(diayn.sweepable()["learning_rate"](params, 0.0), batch, jax.random.PRNGKey(2))
    moved, _ = diayn.update(params, batch, jax.random.PRNGKey(2))
    same = jax.tree.map(np.array_equal, frozen.discriminator, params.discriminator)
    assert all(jax.tree.leaves(same))
    assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, moved.discriminator, params.discriminator)))


# ---- through the training loop ------------------------------------------------------------------


def test_vmapped_seeds_through_the_cli(tmp_path):
    from experiments import train

    result = train.run(train.resolve_config(TINY + ["algo=diayn", f"run_dir={tmp_path}", "total_steps=80", "num_seeds=2"]))
    a, b = result.rows
    for row in (a, b):
        assert np.isfinite(row["loss/discriminator"]) and 0.0 <= row["diayn/accuracy"] <= 1.0
    assert a["loss/discriminator"] != b["loss/discriminator"]  # each seed its own data and nets
    kernels = np.asarray(result.state.objective.discriminator["params"]["Dense_0"]["kernel"])
    assert kernels.shape == (2, 2, 32)  # [seeds, xy, hidden]
    assert not np.allclose(kernels[0], kernels[1])


def _eval_accuracy(trainer, state, key, episodes: int):
    """q(z|s')'s accuracy on deterministic rollouts of random skills from the trained policy.

    On the point world the observation is the position, so every visited s' (after the shared
    start) can be scored."""
    learner = jax.tree.map(lambda x: x[0], state.learner)
    objective = jax.tree.map(lambda x: x[0], state.objective)
    trajectories, z = jax.jit(trainer.eval_positions, static_argnums=2)(learner, key, episodes)
    visited = trajectories["position"][1:]  # [T, n, 2]
    guess = jnp.argmax(trainer.objective.log_q(objective, visited), -1)
    return float(jnp.mean(guess == jnp.argmax(z, -1)[None]))


@pytest.mark.slow
def test_diayn_on_point_learns_skills_a_discriminator_tells_apart(tmp_path):
    from algos.loop import make_train
    from experiments import train
    from experiments.config import build

    cfg = train.resolve_config(
        ["algo=diayn", f"run_dir={tmp_path}", "total_steps=32000", "eval_every=20", "progress=false", "plots=false"]
    )
    result = train.run(cfg)
    world, objective, learner, loop = build(cfg)
    assert world.spec.obs_size == world.spec.position_size == 2  # positions are observations
    trainer = make_train(loop, world, objective, learner)
    k = objective.skill_size
    accuracy = _eval_accuracy(trainer, result.state, jax.random.PRNGKey(7), 4 * k)
    assert accuracy > 3.0 / k, f"eval accuracy {accuracy:.3f}, chance {1 / k:.3f}"
    last = result.rows[-1]
    assert last["eval/coverage"] > last["eval/coverage_random"], last
