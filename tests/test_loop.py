"""The jitted training loop (algos/loop.py) and the replay buffer (algos/buffer.py)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.base import Learner
from algos.buffer import Replay
from algos.loop import LoopConfig, make_train
from algos.sac import SAC, SACConfig
from skills.distance import DistanceSkills, MetraConfig
from worlds.base import World
from worlds.point import PointWorld

HIDDEN = (64, 64)
SMALL = LoopConfig(num_envs=4, rollout_length=8, updates_per_epoch=3, batch_size=32, buffer_size=1000, prefill_steps=64)


def _parts(world, skill_dim: int = 2):
    objective = DistanceSkills(MetraConfig(skill_dim=skill_dim, hidden=HIDDEN), world.spec.obs_size)
    learner = SAC(SACConfig(hidden=HIDDEN), world.spec.obs_size, world.spec.action_size, skill_size=objective.skill_size)
    return objective, learner


# ---- trace counting -------------------------------------------------------------------------


class CountingWorld(World):
    """Counts how often ``step`` and ``reset`` run in Python, i.e. how often they are traced."""

    def __init__(self, world):
        self.world = world
        self.spec = world.spec
        self.steps = 0
        self.resets = 0

    def reset(self, key):
        self.resets += 1
        return self.world.reset(key)

    def step(self, state, action):
        self.steps += 1
        return self.world.step(state, action)

    def position(self, state):
        return self.world.position(state)


class CountingLearner(Learner):
    def __init__(self, learner):
        self.learner = learner
        self.obs_size, self.skill_size, self.action_size = learner.obs_size, learner.skill_size, learner.action_size
        self.n_rewards = learner.n_rewards
        self.updates = 0

    def init(self, key):
        return self.learner.init(key)

    def act(self, params, obs, skill, key, deterministic=False):
        return self.learner.act(params, obs, skill, key, deterministic)

    def update(self, params, batch, rewards, key):
        self.updates += 1
        return self.learner.update(params, batch, rewards, key)


@pytest.mark.parametrize("prefill_steps", [64, 0])
def test_epoch_compiles_once(prefill_steps):
    """Without a prefill, the first epoch sees the world state straight from ``reset``: this is
    where a reset/step type mismatch would cost a second compile."""
    config = dataclasses.replace(SMALL, prefill_steps=prefill_steps)
    world = CountingWorld(PointWorld(episode_length=5, start_noise=1.0))
    objective, sac = _parts(world)
    learner = CountingLearner(sac)
    trainer = make_train(config, world, objective, learner)

    state = trainer.init(jax.random.PRNGKey(0))  # eager; a prefill rollout traces step once
    after_init = (world.steps, learner.updates)
    assert after_init == (int(prefill_steps > 0), 0)

    epoch = jax.jit(trainer.epoch)
    counts = []
    for _ in range(5):
        state, metrics = epoch(state)
        counts.append((world.steps, learner.updates))
    jax.block_until_ready(state)

    # The first call traces the world's step once (inside the rollout scan) and the learner's
    # update once (inside the updates scan); later calls reuse that compile: the state that init
    # returns and the state that epoch returns have identical types.
    assert counts[0] == (after_init[0] + 1, 1)
    assert counts[-1] == counts[0], counts
    if hasattr(epoch, "_cache_size"):  # a private jax API: a second check, not the main one
        assert epoch._cache_size() == 1
    assert int(state.epoch) == 5
    assert int(state.env_steps) == config.prefill_rollout_length * config.num_envs + 5 * config.steps_per_epoch
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_init_and_epoch_states_have_identical_types():
    world = PointWorld(episode_length=5)
    trainer = make_train(SMALL, world, *_parts(world))
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    nxt, _ = jax.eval_shape(trainer.epoch, state)
    assert jax.tree.structure(state) == jax.tree.structure(nxt)
    types = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), t)  # noqa: E731
    assert types(state) == types(nxt)


# ---- replay ---------------------------------------------------------------------------------

EXAMPLE = {"x": jnp.zeros((3,), jnp.float32), "t": jnp.zeros((), jnp.float32), "i": jnp.zeros((2,), jnp.int32)}


def _transitions(start: int, t: int, n: int) -> dict:
    """[t, n, ...] transitions numbered start, start+1, ... in time-major order."""
    ids = start + jnp.arange(t * n, dtype=jnp.float32).reshape(t, n)
    return {"x": jnp.stack([ids, 2 * ids, 3 * ids], -1), "t": ids, "i": jnp.stack([ids, -ids], -1).astype(jnp.int32)}


def test_replay_adds_wraps_and_samples():
    replay = Replay(capacity=10, batch_size=4, example=EXAMPLE)
    state = replay.init()
    state = replay.add(state, _transitions(1, 2, 3))  # 6 transitions, ids 1..6 (empty slots hold 0)
    stored = np.asarray(state.experience["t"]).reshape(-1)
    np.testing.assert_array_equal(stored, [1, 2, 3, 4, 5, 6, 0, 0, 0, 0])
    assert not bool(state.is_full)
    partial = np.concatenate([np.asarray(replay.sample(state, k)["t"]) for k in jax.random.split(jax.random.PRNGKey(2), 30)])
    assert set(partial.tolist()) == set(range(1, 7))  # only stored items, never the empty slots
    state = replay.add(state, _transitions(7, 2, 3))  # 12 in all: the two oldest are overwritten
    stored = np.asarray(state.experience["t"]).reshape(-1)
    np.testing.assert_array_equal(stored, [11, 12, 3, 4, 5, 6, 7, 8, 9, 10])
    assert bool(state.is_full)

    batch = replay.sample(state, jax.random.PRNGKey(0))
    assert jax.tree.map(lambda x: (x.shape, x.dtype), batch) == {
        "x": ((4, 3), jnp.float32),
        "t": ((4,), jnp.float32),
        "i": ((4, 2), jnp.int32),
    }
    ids = np.asarray(batch["t"])
    assert set(ids.tolist()) <= set(range(3, 13))
    # Fields of one transition stay together.
    np.testing.assert_array_equal(np.asarray(batch["x"]), np.stack([ids, 2 * ids, 3 * ids], -1))
    np.testing.assert_array_equal(np.asarray(batch["i"]), np.stack([ids, -ids], -1))

    # Many samples cover the whole (wrapped) buffer and never return overwritten items.
    many = np.concatenate([np.asarray(replay.sample(state, k)["t"]) for k in jax.random.split(jax.random.PRNGKey(1), 50)])
    assert set(many.tolist()) == set(range(3, 13))


def test_replay_adds_flat_batches_too():
    replay = Replay(capacity=10, batch_size=4, example=EXAMPLE)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), _transitions(0, 2, 3))
    state = replay.add(replay.init(), flat)
    np.testing.assert_array_equal(np.asarray(state.experience["t"]).reshape(-1)[:6], np.arange(6))


def test_replay_bytes():
    replay = Replay(capacity=10, batch_size=4, example=EXAMPLE)
    assert replay.bytes == 10 * (3 * 4 + 4 + 2 * 4)
    held = sum(x.nbytes for x in jax.tree.leaves(replay.init().experience))
    assert replay.bytes == held


def test_replay_capacity_below_batch_raises():
    with pytest.raises(ValueError, match="batch_size"):
        Replay(capacity=3, batch_size=4, example=EXAMPLE)


# ---- config validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["num_envs", "rollout_length", "updates_per_epoch", "batch_size", "buffer_size", "eval_episodes"]
)
@pytest.mark.parametrize("value", [0, -1])
def test_validate_rejects_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(SMALL, **{field: value}).validate()


def test_validate_rejects_bad_combinations():
    SMALL.validate()
    LoopConfig().validate()
    with pytest.raises(ValueError, match="buffer_size"):
        dataclasses.replace(SMALL, buffer_size=16).validate()  # below batch_size 32
    with pytest.raises(ValueError, match="prefill_steps"):
        dataclasses.replace(SMALL, prefill_steps=-1).validate()
    with pytest.raises(ValueError):  # nothing to sample the first batch from
        dataclasses.replace(SMALL, prefill_steps=0, rollout_length=4).validate()
    with pytest.raises(ValueError):  # one epoch does not fit in the buffer
        dataclasses.replace(SMALL, num_envs=64, rollout_length=32).validate()
    with pytest.raises(ValueError, match="prefill"):  # the prefill does not fit in the buffer
        dataclasses.replace(SMALL, prefill_steps=2000).validate()
    with pytest.raises(ValueError, match="prefill"):  # ... once rounded up to whole rollouts (3 * 334)
        dataclasses.replace(SMALL, num_envs=3, prefill_steps=1000).validate()
    dataclasses.replace(SMALL, prefill_steps=1000).validate()  # exactly full is fine
    with pytest.raises(ValueError):  # make_train validates too
        make_train(dataclasses.replace(SMALL, batch_size=0), PointWorld(), *_parts(PointWorld()))


# ---- seeds as a vmap axis -------------------------------------------------------------------


def test_vmapped_seeds_equal_separate_runs():
    world = PointWorld(episode_length=5, start_noise=1.0)
    trainer = make_train(SMALL, world, *_parts(world))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)

    both, both_metrics = jax.jit(jax.vmap(trainer.epoch))(jax.jit(jax.vmap(trainer.init))(keys))
    # The seeds really differ: every weight matrix of the actor, the critics and phi, and the worlds.
    params = (both.learner.actor, both.learner.critic, both.objective.phi)
    kernels = [x for path, x in jax.tree.leaves_with_path(params) if "kernel" in jax.tree_util.keystr(path)]
    assert len(kernels) == 3 + 3 + 3
    for kernel in kernels:
        assert not np.allclose(np.asarray(kernel[0]), np.asarray(kernel[1]))
    assert not np.allclose(np.asarray(both.world.obs[0]), np.asarray(both.world.obs[1]))

    epoch, init = jax.jit(trainer.epoch), jax.jit(trainer.init)
    for i in range(2):
        alone, alone_metrics = epoch(init(keys[i]))
        mine = jax.tree.map(lambda x: x[i], both)
        for path_leaf_a, leaf_b in zip(jax.tree.leaves_with_path(mine), jax.tree.leaves(alone)):
            path, leaf_a = path_leaf_a
            np.testing.assert_allclose(
                np.asarray(leaf_a), np.asarray(leaf_b), atol=1e-5, rtol=1e-5, err_msg=jax.tree_util.keystr(path)
            )
        for name, value in alone_metrics.items():
            np.testing.assert_allclose(float(both_metrics[name][i]), float(value), atol=1e-5, rtol=1e-4, err_msg=name)


# ---- terminal flags in stored transitions ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TerminatingPoint(World):
    """The point world, but an episode terminates (not truncates) after ``terminate_at`` steps."""

    terminate_at: int
    episode_length: int = 100

    @property
    def spec(self):
        return dataclasses.replace(PointWorld(episode_length=self.episode_length).spec, name="terminating-point")

    def reset(self, key):
        state = PointWorld().reset(key)
        return state.replace(info={"count": jnp.zeros((), jnp.int32)})

    def step(self, state, action):
        state = PointWorld().step(state, action)
        count = state.info["count"] + 1
        return state.replace(done=(count >= self.terminate_at).astype(jnp.float32), info={**state.info, "count": count})

    def position(self, state):
        return state.physics


def _rollout(world, length):
    trainer = make_train(SMALL, world, *_parts(world))
    state = trainer.init(jax.random.PRNGKey(0))
    # Line up all worlds on an episode start by starting from a fresh reset.
    state = state.replace(world=trainer.env.reset(jax.random.PRNGKey(1)))
    _, transitions = jax.jit(lambda s: trainer.rollout(s, length))(state)
    return jax.tree.map(np.asarray, transitions)


def test_time_limit_is_not_terminal():
    """Episodes of 5 steps cut by the time limit: stored terminal flags stay 0, and next_obs is the
    finished episode's last obs, not the next episode's first."""
    tr = _rollout(PointWorld(episode_length=5), 12)
    assert tr["terminal"].shape == (12, SMALL.num_envs)
    np.testing.assert_array_equal(tr["terminal"], 0.0)
    # Steps 0..4 are episode 1, step 5 starts episode 2 at the origin (start_noise 0).
    np.testing.assert_array_equal(tr["obs"][5], 0.0)
    np.testing.assert_array_equal(tr["obs"][10], 0.0)
    assert np.all(np.abs(tr["next_obs"][4]).sum(-1) > 0)  # the last obs of episode 1, not a reset
    # Inside an episode next_obs is the following obs.
    inside = [t for t in range(11) if t not in (4, 9)]
    np.testing.assert_allclose(tr["next_obs"][inside], tr["obs"][[t + 1 for t in inside]])
    np.testing.assert_allclose(tr["next_obs"], np.clip(tr["obs"] + 0.2 * np.clip(tr["action"], -1, 1), -10, 10), atol=1e-6)
    # A new skill is drawn at each episode boundary, and kept within an episode.
    np.testing.assert_array_equal(tr["skill"][1:5], np.broadcast_to(tr["skill"][0], tr["skill"][1:5].shape))
    assert not np.allclose(tr["skill"][4], tr["skill"][5])


def test_termination_is_terminal():
    """A world that really terminates after 3 steps (time limit 5): terminal = 1 exactly there."""
    tr = _rollout(TerminatingPoint(terminate_at=3, episode_length=5), 9)
    expected = np.zeros((9, SMALL.num_envs))
    expected[[2, 5, 8]] = 1.0
    np.testing.assert_array_equal(tr["terminal"], expected)
