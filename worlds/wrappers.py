"""World wrappers: time limit, auto-reset and batching.

Stack them as ``AutoReset(Batched(TimeLimit(world), n))``. Each keeps the World protocol, so the
training loop never knows how many wrappers it talks to.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp

from worlds.base import State, World, WorldSpec


class Wrapper(World):
    """A world around a world: every hook goes to the inner world unless the wrapper changes it."""

    def __init__(self, world):
        self.world = world

    @property
    def spec(self) -> WorldSpec:
        return self.world.spec

    def reset(self, key):
        return self.world.reset(key)

    def step(self, state, action):
        return self.world.step(state, action)

    def position(self, state):
        return self.world.position(state)

    def object_position(self, state):
        return self.world.object_position(state)

    def agent_positions(self, state):
        return self.world.agent_positions(state)

    def reward_terms(self, state):
        return self.world.reward_terms(state)

    @property
    def walls(self):
        return self.world.walls

    def init_params(self, key):
        return self.world.init_params(key)

    def bind(self, params):
        """This wrapper around the inner world bound to ``params`` (a shallow copy: wrappers hold
        only their options and the inner world)."""
        bound = copy.copy(self)
        bound.world = self.world.bind(params)
        return bound

    @property
    def unwrapped(self):
        return self.world.unwrapped if isinstance(self.world, Wrapper) else self.world


class TimeLimit(Wrapper):
    """Ends episodes after ``episode_length`` steps.

    ``info['truncation']`` is 1 when the episode ended only because time ran out, so a learner can
    bootstrap from the last state; ``done`` is termination or truncation.
    """

    def __init__(self, world, episode_length: int | None = None):
        super().__init__(world)
        self.episode_length = world.spec.episode_length if episode_length is None else episode_length
        if self.episode_length <= 0:
            raise ValueError(f"episode_length must be positive, got {self.episode_length}")

    def reset(self, key):
        state = self.world.reset(key)
        info = dict(state.info, steps=jnp.zeros((), jnp.int32), truncation=jnp.zeros((), jnp.float32))
        return state.replace(info=info)

    def step(self, state, action):
        state = self.world.step(state, action)
        steps = state.info["steps"] + 1
        out_of_time = steps >= self.episode_length
        terminated = state.done > 0
        truncation = jnp.where(out_of_time & ~terminated, 1.0, 0.0).astype(jnp.float32)
        done = jnp.where(out_of_time | terminated, 1.0, 0.0).astype(state.done.dtype)
        return state.replace(done=done, info=dict(state.info, steps=steps, truncation=truncation))


class AutoReset(Wrapper):
    """Starts a new episode, from a *fresh* reset with its own key, when one ends.

    The state returned on the last step of an episode already holds the next episode's first
    observation in ``obs``, with ``done == 1``; the true last observation of the finished episode
    is kept in ``info['final_obs']`` for the replay buffer. The key for the next reset lives in
    ``info['reset_key']`` so that resets differ from episode to episode.

    Put it *outside* ``Batched`` (``wrap_for_training`` does), so one reset serves the batch.

    ``conditional=True`` (default) runs the reset under a ``lax.cond`` only on steps where some
    world is done (README's design notes have the measured gain). Under ``vmap`` a cond with
    a batched predicate becomes a select that runs both branches, so when the caller vmaps over
    run members with ``axis_name=sync_axis`` the predicate is reduced over that axis and stays a
    real cond. ``conditional=False`` computes a fresh batch reset on every step and selects it
    where a world is done: no control flow, but a reset per step (costly where a reset settles the
    physics for many steps, as dm_control's cheetah does).
    """

    def __init__(self, world, sync_axis: str | None = None, conditional: bool = True):
        super().__init__(world)
        self.sync_axis = sync_axis
        self.conditional = conditional

    def reset(self, key):
        key, reset_key = jax.random.split(key)
        state = self.world.reset(reset_key)
        return state.replace(info=dict(state.info, final_obs=state.obs, reset_key=key))

    OWN_INFO = ("final_obs", "reset_key")

    def _inner(self, state):
        """The state without our own info entries: they stay out of the inner world (``reset_key``
        is one key for the batch, not one per world, so the inner ``Batched`` could not map it)."""
        return state.replace(info={k: v for k, v in state.info.items() if k not in self.OWN_INFO})

    def position(self, state):
        return self.world.position(self._inner(state))

    def object_position(self, state):
        return self.world.object_position(self._inner(state))

    def agent_positions(self, state):
        return self.world.agent_positions(self._inner(state))

    def reward_terms(self, state):
        return self.world.reward_terms(self._inner(state))

    def step(self, state, action):
        # Steps must start from a not-done flag, or the wrapped TimeLimit sees stale flags.
        stepped = self.world.step(self._inner(state).replace(done=jnp.zeros_like(state.done)), action)
        key, reset_key = jax.random.split(state.info["reset_key"])
        stepped = stepped.replace(info=dict(stepped.info, final_obs=stepped.obs, reset_key=key))
        done = stepped.done > 0

        def start_new_episodes(stepped):
            fresh = self.world.reset(reset_key)

            def pick(new, old):
                return jnp.where(jnp.reshape(done, done.shape + (1,) * (old.ndim - done.ndim)), new, old)

            # Observation, physics and the world's own info come from the fresh episode; reward,
            # done, metrics, truncation and final_obs stay those of the step that ended.
            info = {k: pick(fresh.info[k], v) if k in fresh.info and k != "truncation" else v for k, v in stepped.info.items()}
            physics = jax.tree.map(pick, fresh.physics, stepped.physics)
            return stepped.replace(obs=pick(fresh.obs, stepped.obs), physics=physics, info=info)

        if not self.conditional:
            return start_new_episodes(stepped)
        return jax.lax.cond(_any_across(done, self.sync_axis), start_new_episodes, lambda s: s, stepped)


def _any_across(done, axis_name):
    """True when any world is done: over the batch and, when bound, over a vmapped member axis."""
    any_done = jnp.any(done)
    if axis_name is None:
        return any_done
    try:
        return jax.lax.pmax(any_done, axis_name)  # unbatched result: the cond stays a cond
    except NameError:  # called outside the members vmap (e.g. one run, or a test)
        return any_done


class Batched(Wrapper):
    """Runs ``batch_size`` independent copies of a world with ``vmap``."""

    def __init__(self, world, batch_size: int):
        super().__init__(world)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size

    def reset(self, key):
        return jax.vmap(self.world.reset)(jax.random.split(key, self.batch_size))

    def step(self, state, action):
        return jax.vmap(self.world.step)(state, action)

    def position(self, state):
        return jax.vmap(self.world.position)(state)

    def object_position(self, state):
        return jax.vmap(self.world.object_position)(state)

    def agent_positions(self, state):
        return jax.vmap(self.world.agent_positions)(state)

    def reward_terms(self, state):
        return jax.vmap(self.world.reward_terms)(state)


def wrap_for_training(
    world, num_envs: int, episode_length: int | None = None, sync_axis: str | None = None, conditional_reset: bool = True
):
    """The standard stack the training loop uses; see ``AutoReset`` for the last two options."""
    return AutoReset(Batched(TimeLimit(world, episode_length), num_envs), sync_axis, conditional_reset)


def wrap_for_eval(world, num_envs: int, episode_length: int | None = None):
    """Fixed-length episodes with no reset: eval rollouts see exactly one episode each."""
    return Batched(TimeLimit(world, episode_length), num_envs)
