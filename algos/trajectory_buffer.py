"""Replay that keeps whole trajectories, for goal relabelling (contrastive RL).

The transitions of each of the ``num_envs`` worlds are kept in time order in a circular
``[num_envs, slots]`` array (``slots = capacity // num_envs``), with the ``done`` flag that ends each
episode. ``sample`` draws transitions uniformly and, for each, a goal from the *same* episode: the
state ``k >= 1`` steps later (``next_obs`` of transition ``t + k - 1``), with

    P(k) proportional to gamma^(k-1),   k = 1 .. K,

where ``K`` is the number of steps to the end of the episode (or to the newest stored step when
the episode is still running), so that a goal never crosses an episode boundary. This is the
future-state distribution of contrastive RL (Eysenbach et al. 2022), truncated at the episode end
and renormalised, as in the official code and in JaxGCRL.

Same interface as ``algos.buffer.Replay``: ``init()``, ``add(state, transitions)`` with
[time, worlds, ...] leaves, ``sample(state, key)`` -> a dict of transitions plus ``future_obs`` and
``offset``. The ``done`` leaf of the transitions marks the episode ends.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class TrajectoryState:
    data: dict  # leaves [num_envs, slots, ...]
    position: jax.Array  # next slot to write (the same for every world)
    count: jax.Array  # slots filled so far, at most ``slots``


def geometric_offsets(key, k_max, gamma):
    """Offsets k in 1..k_max with P(k) proportional to gamma^(k-1) (inverse CDF; k_max >= 1)."""
    k_max = jnp.asarray(k_max, jnp.float32)
    u = jax.random.uniform(key, k_max.shape)
    gamma = jnp.asarray(gamma, jnp.float32)
    # CDF(k) = (1 - gamma^k) / (1 - gamma^K): k = ceil(log(1 - u (1 - gamma^K)) / log gamma).
    tail = 1.0 - u * (1.0 - gamma**k_max)
    k = jnp.ceil(jnp.log(tail) / jnp.log(gamma))
    return jnp.clip(k, 1.0, k_max).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class TrajectoryReplay:
    capacity: int  # transitions in all worlds together
    batch_size: int
    example: dict  # one transition (unbatched); must hold ``done`` and ``next_obs``
    num_envs: int
    horizon: int  # longest possible episode: the goal search looks this far ahead
    gamma: float = 0.99

    def __post_init__(self):
        for name in ("done", "next_obs"):
            if name not in self.example:
                raise ValueError(f"a trajectory buffer needs {name!r} in the transitions")
        if self.capacity // self.num_envs < 1:  # samples are drawn with replacement: any batch size works
            raise ValueError(f"buffer_size ({self.capacity}) too small for {self.num_envs} worlds")
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"the relabelling discount must be in (0, 1), got {self.gamma}")

    @property
    def slots(self) -> int:
        return self.capacity // self.num_envs

    @property
    def bytes(self) -> int:
        per = sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape)) for x in jax.tree.leaves(self.example))
        return per * self.slots * self.num_envs

    def init(self) -> TrajectoryState:
        data = jax.tree.map(lambda x: jnp.zeros((self.num_envs, self.slots) + x.shape, x.dtype), self.example)
        return TrajectoryState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def add(self, state: TrajectoryState, transitions: dict) -> TrajectoryState:
        """``transitions``: leaves [T, num_envs, ...] in time order (a rollout)."""
        length = jax.tree.leaves(transitions)[0].shape[0]
        if length > self.slots:
            raise ValueError(f"a rollout of {length} steps does not fit in {self.slots} slots per world")
        index = (state.position + jnp.arange(length)) % self.slots
        data = jax.tree.map(lambda d, x: d.at[:, index].set(jnp.swapaxes(x, 0, 1).astype(d.dtype)), state.data, transitions)
        return TrajectoryState(
            data, (state.position + length) % self.slots, jnp.minimum(state.count + length, self.slots)
        )

    def sample(self, state: TrajectoryState, key) -> dict:
        b, slots = self.batch_size, self.slots
        k_env, k_time, k_offset = jax.random.split(key, 3)
        env = jax.random.randint(k_env, (b,), 0, self.num_envs)
        age = jax.random.randint(k_time, (b,), 0, jnp.maximum(state.count, 1))  # 0 = oldest stored
        oldest = (state.position - state.count) % slots
        t = (oldest + age) % slots
        # Steps to the episode end: the first done at or after t, within the stored data.
        window = min(self.horizon, slots)
        ahead = jnp.arange(window)
        done = state.data["done"][env[:, None], (t[:, None] + ahead) % slots] > 0  # [B, window]
        stored = age[:, None] + ahead < state.count
        ends = done & stored
        first_end = jnp.where(jnp.any(ends, -1), jnp.argmax(ends, -1), jnp.sum(stored, -1) - 1)
        k_max = first_end + 1
        offset = geometric_offsets(k_offset, k_max, self.gamma)
        future = (t + offset - 1) % slots
        batch = jax.tree.map(lambda d: d[env, t], state.data)
        batch["future_obs"] = state.data["next_obs"][env, future]
        batch["offset"] = offset
        return batch
