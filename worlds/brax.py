"""Adapters from ``brax.envs`` to the World protocol.

Skill-discovery papers (LSD, CSD, METRA) use locomotion worlds that *see* their own xy and never
terminate, so the adapters turn on ``exclude_current_positions_from_observation=False`` and
``terminate_when_unhealthy=False`` by default; both stay overridable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from worlds import xla_cpu
from worlds.base import State, World, WorldSpec, strong_types

# name -> (brax env name, number of position coordinates used for coverage, default kwargs)
BRAX_WORLDS = {
    "ant": ("ant", 2, dict(exclude_current_positions_from_observation=False, terminate_when_unhealthy=False)),
    "halfcheetah": ("halfcheetah", 1, dict(exclude_current_positions_from_observation=False)),
    "humanoid": ("humanoid", 2, dict(exclude_current_positions_from_observation=False, terminate_when_unhealthy=False)),
}


class BraxWorld(World):
    def __init__(
        self,
        name: str,
        backend: str = "mjx",
        episode_length: int = 200,
        coverage_cell: float = 1.0,
        goal_radius: float = 5.0,
        goal_threshold: float = 1.0,
        **kwargs,
    ):
        from brax import envs  # imported here: Brax is slow to import and only these worlds need it

        if name not in BRAX_WORLDS:
            raise ValueError(f"unknown brax world {name!r}; known: {sorted(BRAX_WORLDS)}")
        xla_cpu.install()  # MJX's batched Cholesky would deadlock XLA:CPU (worlds/xla_cpu.py)
        env_name, self._n_pos, defaults = BRAX_WORLDS[name]
        self.env = envs.get_environment(env_name, backend=backend, **{**defaults, **kwargs})
        self._spec = WorldSpec(
            name=f"brax/{name}",
            obs_size=int(self.env.observation_size),
            action_size=int(self.env.action_size),
            episode_length=int(episode_length),
            position_size=self._n_pos,
            coverage_cell=float(coverage_cell),
            # Brax puts qpos first in the observation, so xy (x for HalfCheetah) lead it.
            goal_radius=float(goal_radius),
            goal_threshold=float(goal_threshold),
        )

    @property
    def spec(self) -> WorldSpec:
        return self._spec

    def _wrap(self, bstate, info) -> State:
        # Brax's reset and step return leaves of different weak types; cast both the same way so
        # a jitted rollout compiles once (the trap described in DESIGN.md).
        bstate = strong_types(bstate)
        return State(
            obs=bstate.obs,
            reward=bstate.reward,
            done=bstate.done,
            metrics=dict(bstate.metrics),
            info=info,
            physics=bstate,
        )

    def reset(self, key) -> State:
        return self._wrap(self.env.reset(key), {})

    def step(self, state: State, action) -> State:
        bstate = self.env.step(state.physics, jnp.clip(action, -1.0, 1.0))
        return self._wrap(bstate, state.info)

    def position(self, state: State) -> jax.Array:
        return state.physics.pipeline_state.q[: self._n_pos]
