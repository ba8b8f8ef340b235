"""The World protocol and the State every world returns.

The convention is Brax's / MuJoCo Playground's: a world is a pair of pure functions
``reset(key) -> State`` and ``step(state, action) -> State``; a ``State`` is a pytree, so a whole
rollout can live inside ``lax.scan`` and be vmapped over worlds and seeds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array


@struct.dataclass
class State:
    """One world state. ``done`` is termination *or* truncation; ``info['truncation']`` tells them
    apart (set by the time-limit wrapper) so that learners bootstrap through time limits."""

    obs: Array
    reward: Array
    done: Array
    metrics: dict[str, Array] = struct.field(default_factory=dict)
    info: dict[str, Any] = struct.field(default_factory=dict)
    physics: Any = None


@dataclasses.dataclass(frozen=True)
class WorldSpec:
    """Static facts about a world, known before anything is traced."""

    name: str
    obs_size: int
    action_size: int
    episode_length: int
    position_size: int  # size of ``position(state)``: 2 for xy worlds, 1 for HalfCheetah's x
    coverage_cell: float  # cell edge for the coverage metric (METRA: 1.0 for locomotion)
    n_agents: int = 1
    # Zero-shot goal reaching: goals on a ring of this radius around the start (0: no goal set).
    # A goal observation is the start observation with its first ``position_size`` entries set to
    # the goal, so worlds with goals keep their position at the front of the observation.
    goal_radius: float = 0.0
    goal_threshold: float = 1.0  # success: final distance to the goal below this


class World(Protocol):
    spec: WorldSpec

    def reset(self, key: Array) -> State: ...

    def step(self, state: State, action: Array) -> State: ...

    def position(self, state: State) -> Array: ...


def strong_types(tree):
    """Cast every leaf to a committed (non-weak) dtype.

    ``reset`` and ``step`` must return pytrees of identical types, or a jitted rollout compiles
    twice (once for the reset state, once for the stepped one). Python scalars become weakly
    typed arrays; this strips that.
    """
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)) if _is_array(x) else x, tree)


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, float, int, bool)) or hasattr(x, "dtype")


def goal_positions(spec: WorldSpec, n_goals: int = 8):
    """The fixed goal set of a world: ``n_goals`` points evenly on a ring (two points for 1-D)."""
    import numpy as np

    if spec.goal_radius <= 0:
        return np.zeros((0, spec.position_size), np.float32)
    if spec.position_size == 1:
        return np.array([[-spec.goal_radius], [spec.goal_radius]], np.float32)
    angles = 2 * np.pi * np.arange(n_goals) / n_goals
    ring = spec.goal_radius * np.stack([np.cos(angles), np.sin(angles)], -1)
    return np.pad(ring, ((0, 0), (0, spec.position_size - 2))).astype(np.float32)
