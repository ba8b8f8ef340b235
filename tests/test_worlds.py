"""Worlds: the point world, the wrappers, type stability of reset/step, the registry, Brax smoke."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import worlds
from worlds.base import State, WorldSpec
from worlds.point import PointWorld
from worlds.wrappers import AutoReset, Batched, TimeLimit, wrap_for_eval, wrap_for_training


def _at(world, xy) -> State:
    """A point-world state placed at ``xy``."""
    state = world.reset(jax.random.PRNGKey(0))
    pos = jnp.asarray(xy, jnp.float32)
    return state.replace(obs=pos, physics=pos)


def _assert_step(world, start, action, expected):
    """One step of ``world`` from ``start`` with ``action`` ends at ``expected``."""
    nxt = world.step(_at(world, start), jnp.array(action))
    np.testing.assert_allclose(np.asarray(nxt.obs), expected, rtol=1e-6)


def _types(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), tree)


def _assert_same_types(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert _types(a) == _types(b)


# ---- a tiny world that terminates on its own ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TerminatingWorld:
    """A 1-D counter that terminates (done = 1) once it has taken ``terminate_at`` steps."""

    terminate_at: int
    episode_length: int = 100

    @property
    def spec(self):
        return WorldSpec(
            "terminating", obs_size=2, action_size=2, episode_length=self.episode_length, position_size=2, coverage_cell=1.0
        )

    def reset(self, key):
        obs = jax.random.uniform(key, (2,))
        return State(obs=obs, reward=jnp.zeros(()), done=jnp.zeros(()), physics=jnp.zeros((), jnp.int32))

    def step(self, state, action):
        count = state.physics + 1
        done = (count >= self.terminate_at).astype(jnp.float32)
        return state.replace(obs=state.obs + action, physics=count, done=done)

    def position(self, state):
        return state.obs


# ---- point world ----------------------------------------------------------------------------


def test_point_reset_and_step_shapes():
    world = PointWorld()
    state = world.reset(jax.random.PRNGKey(0))
    assert state.obs.shape == (2,) and state.reward.shape == () and state.done.shape == ()
    np.testing.assert_array_equal(np.asarray(state.obs), 0.0)  # start_noise 0: the origin
    nxt = world.step(state, jnp.array([1.0, -1.0]))
    assert nxt.obs.shape == (2,) and nxt.reward.shape == () and nxt.done.shape == ()
    assert world.position(nxt).shape == (world.spec.position_size,)
    assert world.spec.obs_size == 2 and world.spec.action_size == 2


def test_point_velocity_scaling_and_action_clip():
    world = PointWorld(max_speed=0.2)
    state = _at(world, [1.0, 2.0])
    nxt = world.step(state, jnp.array([0.5, -3.0]))  # the second component is clipped to -1
    np.testing.assert_allclose(np.asarray(nxt.obs), [1.0 + 0.2 * 0.5, 2.0 - 0.2], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(world.position(nxt)), np.asarray(nxt.obs))
    world = PointWorld(max_speed=0.7)
    _assert_step(world, [0.0, 0.0], [1.0, 0.25], [0.7, 0.175])


def test_point_arena_is_bounded():
    world = PointWorld(arena_size=10.0, max_speed=0.2)
    _assert_step(world, [9.95, -9.9], [1.0, -1.0], [10.0, -10.0])
    state = _at(world, [0.0, 0.0])
    step = jax.jit(world.step)
    for _ in range(80):  # 16 units of travel in a box of half-width 10
        state = step(state, jnp.array([1.0, 1.0]))
    np.testing.assert_allclose(np.asarray(state.obs), [10.0, 10.0], rtol=1e-6)


def test_u_maze_walls_block_and_slide():
    world = PointWorld(maze="u", max_speed=0.2)
    # Straight down into the bottom wall (y in [-6, -5]): blocked, stays put.
    _assert_step(world, [0.0, -4.9], [0.0, -1.0], [0.0, -4.9])
    # Diagonally into the bottom wall: slides along x.
    _assert_step(world, [0.0, -4.9], [1.0, -1.0], [0.2, -4.9])
    # Diagonally into the right wall (x in [5, 6]): slides along y.
    _assert_step(world, [4.9, 0.0], [1.0, 1.0], [4.9, 0.2])
    # Free space inside the U: the full move.
    _assert_step(world, [0.0, 0.0], [1.0, 1.0], [0.2, 0.2])
    # The open maze lets the same move into the wall's area through.
    open_world = PointWorld(maze="open", max_speed=0.2)
    _assert_step(open_world, [0.0, -4.9], [0.0, -1.0], [0.0, -5.1])


def test_u_maze_agent_cannot_leave_through_the_bottom():
    world = PointWorld(maze="u", max_speed=0.2)
    state = world.reset(jax.random.PRNGKey(0))
    step = jax.jit(world.step)
    for _ in range(60):
        state = step(state, jnp.array([0.3, -1.0]))
    x, y = np.asarray(state.obs)
    assert y > -5.0  # still above the bottom wall
    assert x > 1.0  # but it slid sideways


def test_substeps_move_a_whole_corridor_per_step_without_tunnelling():
    """max_speed 2 across a 1-thick wall needs substeps: each of the 4 quarter moves is checked, so
    the agent stops at the wall (and slides along it) instead of jumping through."""
    with pytest.raises(ValueError, match="raise substeps"):
        PointWorld(maze="u", max_speed=2.0)
    world = PointWorld(maze="u", max_speed=2.0, substeps=4)
    # Straight down from y = -3.9: quarter moves reach -4.4, -4.9; the next (-5.4) is inside the wall.
    _assert_step(world, [0.0, -3.9], [0.0, -1.0], [0.0, -4.9])
    # Diagonally: two full quarter moves, then two that keep only their x part along the wall.
    _assert_step(world, [0.0, -3.9], [1.0, -1.0], [2.0, -4.9])
    # In free space the substeps add up to one full move.
    _assert_step(world, [0.0, 0.0], [0.5, 1.0], [1.0, 2.0])
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="substeps"):
            PointWorld(substeps=bad)


def test_point_bad_options():
    with pytest.raises(ValueError, match="maze"):
        PointWorld(maze="nope")
    for bad in [dict(arena_size=0.0), dict(max_speed=-1.0), dict(episode_length=0)]:
        with pytest.raises(ValueError):
            PointWorld(**bad)


# ---- type stability (the weak-type trap) ----------------------------------------------------


@pytest.mark.parametrize(
    "make_env",
    [
        lambda: PointWorld(),
        lambda: PointWorld(maze="u", start_noise=1.0),
        lambda: TimeLimit(PointWorld()),
        lambda: AutoReset(TimeLimit(PointWorld(start_noise=1.0))),
        lambda: wrap_for_training(PointWorld(), 3),
        lambda: wrap_for_eval(PointWorld(), 3),
    ],
    ids=["point", "point-u", "timelimit", "autoreset", "training-stack", "eval-stack"],
)
def test_reset_and_step_have_identical_types(make_env):
    env = make_env()
    reset = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    action = jax.ShapeDtypeStruct(reset.obs.shape[:-1] + (env.spec.action_size,), jnp.float32)
    stepped = jax.eval_shape(env.step, reset, action)
    _assert_same_types(reset, stepped)
    # No leaf of the carry is weakly typed (a Python scalar leaking in would be).
    assert not any(leaf.weak_type for leaf in jax.tree.leaves(reset))


# ---- wrappers -------------------------------------------------------------------------------


def test_time_limit_truncates():
    env = TimeLimit(PointWorld(), episode_length=5)
    state = env.reset(jax.random.PRNGKey(0))
    assert float(state.info["truncation"]) == 0 and int(state.info["steps"]) == 0
    for t in range(1, 6):
        state = env.step(state, jnp.array([0.5, 0.0]))
        assert int(state.info["steps"]) == t
        assert float(state.done) == float(t == 5)
        assert float(state.info["truncation"]) == float(t == 5)
    np.testing.assert_allclose(np.asarray(state.obs), [0.5, 0.0], rtol=1e-6)  # no auto-reset here


def test_time_limit_uses_spec_length_by_default():
    assert TimeLimit(PointWorld(episode_length=7)).episode_length == 7


@pytest.mark.parametrize("terminate_at,limit", [(3, 10), (5, 5)])
def test_termination_is_not_truncation(terminate_at, limit):
    """A world that ends on its own is done but not truncated, even on the time limit's last step."""
    env = TimeLimit(TerminatingWorld(terminate_at), episode_length=limit)
    state = env.reset(jax.random.PRNGKey(0))
    for t in range(1, terminate_at + 1):
        state = env.step(state, jnp.zeros(2))
        assert float(state.done) == float(t == terminate_at)
        assert float(state.info["truncation"]) == 0.0


@pytest.mark.parametrize("conditional", [False, True], ids=["select", "cond"])
def test_auto_reset_starts_fresh_episodes(conditional):
    length, n_episodes = 3, 5
    env = AutoReset(TimeLimit(PointWorld(start_noise=1.0), episode_length=length), conditional=conditional)
    state = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    action = jnp.array([0.5, -0.25])  # moves by (0.1, -0.05) per step
    starts = [np.asarray(state.obs)]
    for episode in range(n_episodes):
        start = starts[-1]
        for t in range(1, length + 1):
            state = step(state, action)
            expected_last = start + t * np.array([0.1, -0.05])
            np.testing.assert_allclose(np.asarray(state.info["final_obs"]), expected_last, rtol=1e-5, atol=1e-6)
            if t < length:
                assert float(state.done) == 0.0
                np.testing.assert_allclose(np.asarray(state.obs), expected_last, rtol=1e-5, atol=1e-6)
        # The last step: done, truncated, and obs is already the next episode's first observation.
        assert float(state.done) == 1.0 and float(state.info["truncation"]) == 1.0
        assert int(state.info["steps"]) == 0
        np.testing.assert_array_equal(np.asarray(state.physics), np.asarray(state.obs))
        starts.append(np.asarray(state.obs))
    starts = np.stack(starts)
    assert np.all(np.abs(starts) <= 1.0)  # within start_noise of the origin
    # Every episode starts somewhere new: fresh resets with fresh keys, not a cached state.
    dists = np.linalg.norm(starts[:, None] - starts[None], axis=-1)
    assert np.all(dists[~np.eye(len(starts), dtype=bool)] > 1e-3)


@pytest.mark.parametrize("conditional", [False, True], ids=["select", "cond"])
def test_auto_reset_passes_through_termination(conditional):
    env = AutoReset(TimeLimit(TerminatingWorld(2), episode_length=10), conditional=conditional)
    state = env.reset(jax.random.PRNGKey(0))
    first = np.asarray(state.obs)
    state = env.step(state, jnp.ones(2))
    state = env.step(state, jnp.ones(2))
    assert float(state.done) == 1.0 and float(state.info["truncation"]) == 0.0
    np.testing.assert_allclose(np.asarray(state.info["final_obs"]), first + 2, rtol=1e-6)
    assert int(state.physics) == 0  # the inner world was reset too
    state = env.step(state, jnp.ones(2))
    assert float(state.done) == 0.0  # the new episode does not inherit the old done flag


class _CountingResets(PointWorld):
    """A point world whose reset reports, from inside compiled code, each time it really runs."""

    def __init__(self, counter: list, **kw):
        super().__init__(**kw)
        self.counter = counter

    def reset(self, key):
        jax.debug.callback(lambda: self.counter.append(1))
        return super().reset(key)


def test_conditional_auto_reset_runs_reset_only_when_an_episode_ends():
    length, steps, n = 4, 12, 3
    counter = []
    env = wrap_for_training(_CountingResets(counter, episode_length=length), n, conditional_reset=True)

    def rollout(key):
        step = lambda s, _: (env.step(s, jnp.full((n, 2), 0.1)), None)
        return jax.lax.scan(step, env.reset(key), None, steps)[0]

    final = jax.block_until_ready(jax.jit(rollout)(jax.random.PRNGKey(0)))
    jax.effects_barrier()
    # One reset at the start plus one per ending: all worlds end together, on steps 4, 8 and 12.
    assert len(counter) == 1 + steps // length
    assert float(jnp.sum(final.info["steps"])) == 0.0  # just restarted


@pytest.mark.parametrize("sync_axis,stays_cond", [("members", True), (None, False)])
def test_conditional_auto_reset_stays_a_cond_under_a_members_vmap(sync_axis, stays_cond):
    """Under vmap a cond on a batched predicate becomes a select that resets on every step (219x
    slower on dmc/cheetah_run); reducing the predicate over the member axis keeps the cond."""
    env = wrap_for_training(PointWorld(episode_length=4), 3, sync_axis=sync_axis, conditional_reset=True)
    step = lambda s: env.step(s, jnp.zeros((3, 2)))
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    jaxpr = str(jax.make_jaxpr(jax.vmap(step, axis_name="members"))(states))
    assert ("cond[" in jaxpr) == stays_cond


def test_batched_shapes_and_independence():
    n = 5
    env = Batched(PointWorld(start_noise=1.0), n)
    state = env.reset(jax.random.PRNGKey(0))
    assert state.obs.shape == (n, 2) and state.reward.shape == (n,) and state.done.shape == (n,)
    assert len(np.unique(np.asarray(state.obs)[:, 0])) == n  # each copy has its own reset key
    actions = jnp.linspace(-1, 1, 2 * n).reshape(n, 2)
    nxt = env.step(state, actions)
    assert nxt.obs.shape == (n, 2) and env.position(nxt).shape == (n, 2)
    np.testing.assert_allclose(np.asarray(nxt.obs - state.obs), 0.2 * np.asarray(actions), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        Batched(PointWorld(), 0)


def test_training_stack_shapes():
    env = wrap_for_training(PointWorld(episode_length=4), 3)
    state = env.reset(jax.random.PRNGKey(0))
    assert state.info["final_obs"].shape == (3, 2) and state.info["truncation"].shape == (3,)
    assert env.spec == PointWorld(episode_length=4).spec
    assert isinstance(env.unwrapped, PointWorld)


# ---- registry -------------------------------------------------------------------------------


def test_make_point_with_overrides():
    world = worlds.make("point", maze="u", episode_length=50)
    assert isinstance(world, PointWorld) and world.maze == "u" and world.spec.episode_length == 50
    assert "point" in worlds.names() and "brax/ant" in worlds.names()


def test_make_unknown_world_lists_known_names():
    with pytest.raises(ValueError) as err:
        worlds.make("no-such-world")
    message = str(err.value)
    assert "no-such-world" in message
    for name in worlds.names():
        assert name in message


def test_make_bad_override():
    with pytest.raises(ValueError, match="point"):
        worlds.make("point", not_an_option=1)
    with pytest.raises(ValueError):
        worlds.make("point", maze="nope")


# ---- Brax (slow) ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name,position_size", [("brax/ant", 2), ("brax/halfcheetah", 1)])
def test_brax_world_smoke(name, position_size):
    world = worlds.make(name, episode_length=10)
    spec = world.spec
    assert spec.position_size == position_size and spec.name == name

    # Types first (tracing only, no compile): the weak-type trap.
    reset = jax.eval_shape(world.reset, jax.random.PRNGKey(0))
    stepped = jax.eval_shape(world.step, reset, jax.ShapeDtypeStruct((spec.action_size,), jnp.float32))
    _assert_same_types(reset, stepped)
    assert reset.obs.shape == (spec.obs_size,)

    # One compile: reset and a few random steps.
    @jax.jit
    def run(key):
        k_reset, k_act = jax.random.split(key)
        state = world.reset(k_reset)

        def step(state, k):
            state = world.step(state, jax.random.uniform(k, (spec.action_size,), minval=-1, maxval=1))
            return state, (state.obs, world.position(state))

        final, (obs, pos) = jax.lax.scan(step, state, jax.random.split(k_act, 5))
        return world.position(state), final, obs, pos

    start, final, obs, pos = run(jax.random.PRNGKey(0))
    assert start.shape == (position_size,) and pos.shape == (5, position_size)
    assert obs.shape == (5, spec.obs_size)
    for leaf in jax.tree.leaves((start, final, obs, pos)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert np.all(np.isfinite(np.asarray(leaf)))
    assert np.any(np.abs(np.asarray(pos[-1] - start)) > 1e-6)  # the body moved


def test_point_task_reward_is_negative_scaled_distance_to_the_corner():
    world = worlds.make("point", task="reach_top_right")
    state = world.step(world.reset(jax.random.PRNGKey(0)), jnp.array([1.0, 0.5]))
    pos = np.asarray(state.obs)
    np.testing.assert_allclose(pos, [0.2, 0.1], atol=1e-6)
    want = -np.linalg.norm(pos - np.array([7.0, 7.0])) / 10.0
    np.testing.assert_allclose(float(state.reward), want, rtol=1e-6)
    assert float(worlds.make("point").step(state, jnp.ones(2)).reward) == 0.0  # reward-free by default
    with pytest.raises(ValueError, match="unknown task"):
        worlds.make("point", task="fly")
