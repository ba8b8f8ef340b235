"""The World contract and the State every world returns.

The convention is Brax's / MuJoCo Playground's: a world is a pair of pure functions
``reset(key) -> State`` and ``step(state, action) -> State``; a ``State`` is a pytree, so a whole
rollout can live inside ``lax.scan`` and be vmapped over worlds and seeds.

A world may have learnable parameters (a learned model): ``init_params(key)`` gives them, the
TrainState holds them, and the loop steps ``world.bind(params)`` inside the jitted epoch. Physics
worlds have none: ``init_params`` is ``{}`` and ``bind`` returns the world itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

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
    # Zero-shot goal reaching: goals on a ring of this radius around the start (0: no goal set).
    # A goal observation is the start observation with its first ``position_size`` entries set to
    # the goal, so worlds with goals keep their position at the front of the observation.
    goal_radius: float = 0.0
    goal_threshold: float = 1.0  # success: final distance to the goal below this
    object_size: int = 0  # size of ``object_position(state)`` (0: no object to cover)
    # Named reward terms beyond the task reward (e.g. costs), reported by ``reward_terms(state)``
    # and stored with every transition as ``terms``; an objective may use them as reward heads.
    reward_terms: tuple[str, ...] = ()
    # Multi-agent blocks: the observation is ``n_agents`` blocks of ``agent_obs_size`` (each block
    # starting with the agent's own state, ``agent_state_size`` entries), the action
    # ``n_agents`` blocks of ``agent_action_size``. 0 means "the whole", for single-agent worlds.
    n_agents: int = 1
    agent_obs_size: int = 0
    agent_action_size: int = 0
    agent_state_size: int = 0

    def __post_init__(self):
        for name, whole in (("agent_obs_size", self.obs_size), ("agent_action_size", self.action_size), ("agent_state_size", self.obs_size)):
            if getattr(self, name) == 0:
                if self.n_agents != 1:
                    raise ValueError(f"world {self.name}: {self.n_agents} agents need {name}")
                object.__setattr__(self, name, whole)
        if self.n_agents < 1:
            raise ValueError(f"world {self.name}: n_agents must be >= 1, got {self.n_agents}")
        if self.n_agents * self.agent_obs_size != self.obs_size or self.n_agents * self.agent_action_size != self.action_size:
            raise ValueError(
                f"world {self.name}: {self.n_agents} agents x (obs {self.agent_obs_size}, action {self.agent_action_size}) "
                f"do not make obs_size {self.obs_size} and action_size {self.action_size}"
            )
        if not 0 < self.agent_state_size <= self.agent_obs_size:
            raise ValueError(f"world {self.name}: agent_state_size must be in 1..{self.agent_obs_size}")
        object.__setattr__(self, "reward_terms", tuple(self.reward_terms))


class World:
    """What the loop and evaluation ask of a world. Subclasses define ``spec``, ``reset``, ``step``
    and ``position``; the other hooks have defaults for a single-agent physics world."""

    spec: WorldSpec
    walls = None  # maze walls [n, 4] (x_min, y_min, x_max, y_max) for figures; None: no walls

    def reset(self, key: Array) -> State:
        raise TypeError(f"{type(self).__name__} must define reset(key)")

    def step(self, state: State, action: Array) -> State:
        raise TypeError(f"{type(self).__name__} must define step(state, action)")

    def position(self, state: State) -> Array:
        """Coordinates for the coverage metric ([position_size], e.g. the torso's xy)."""
        raise TypeError(f"{type(self).__name__} must define position(state)")

    def object_position(self, state: State) -> Array:
        """Coordinates of a movable object ([spec.object_size]; empty for worlds without one)."""
        del state
        return jnp.zeros((self.spec.object_size,), jnp.float32)

    def agent_positions(self, state: State) -> Array:
        """Each agent's coordinates, [n_agents, position_size] (figures of multi-agent worlds)."""
        return self.position(state)[None]

    def reward_terms(self, state: State) -> Array:
        """The named reward terms of the step that produced ``state`` ([len(spec.reward_terms)]).
        Keep them in ``state.metrics``: auto-reset keeps the ending step's metrics, not its info."""
        del state
        return jnp.zeros((len(self.spec.reward_terms),), jnp.float32)

    def init_params(self, key: Array) -> Any:
        """Learnable parameters the TrainState holds for this world (none for physics)."""
        del key
        return {}

    def bind(self, params: Any) -> "World":
        """The world stepped with ``params`` (called inside the jitted epoch)."""
        del params
        return self


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
