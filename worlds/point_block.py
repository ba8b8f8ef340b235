"""The point agent plus a square block it can push, in pure JAX.

The cheap world where controllability matters: moving the agent is easy, moving the block takes
walking into it on purpose and keeping going, so a method that only spreads the agent out covers
few block cells, and a controllability-aware one (CSD) has something to find.

- Agent: exactly :class:`~worlds.point.PointWorld` (velocity control, bounded arena, optional
  maze); this world subclasses it, takes its options, and lets its ``step`` propose each move.
- Block: an axis-aligned square of edge ``block_size``, starting at ``block_start``. The agent is
  a point and may not enter the block.
- Contact (kinematic push, no friction): if the agent's proposed position lies inside the block,
  the *contact face* is the one its straight move entered the block through (swept test per axis).
  The block is pushed along that face's axis by the penetration depth, so agent and block end in
  contact, and the agent moves its full step with the block in front of it. Along the face the
  agent slides freely. If the block cannot move as far (arena edge or maze wall), the block moves
  as far as it may and the agent stops at contact. Only pushes along an axis are stable: walking
  diagonally into a face pushes with the normal component and slides off with the other.

``obs = concat(agent xy, block xy)``; ``position(state)`` is the agent's xy (``eval/coverage``);
``object_position(state)`` is the block's xy (for an ``eval/object_coverage`` metric), and
``spec.object_size`` its size. The spec is the point world's otherwise (goals included: a goal
observation sets the agent's xy, which leads the observation, and leaves the block at its start).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from worlds.base import State, WorldSpec, strong_types
from worlds.point import PointWorld


@dataclasses.dataclass(frozen=True)
class PointBlockWorld(PointWorld):
    """The point world's options (and its move, walls and checks), plus the block's."""

    block_size: float = 1.0  # edge length of the square block
    block_start: tuple[float, float] = (1.5, 0.0)  # the block's centre at reset

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "block_start", tuple(float(v) for v in self.block_start))  # YAML gives a list
        half = 0.5 * self.block_size
        if len(self.block_start) != 2:
            raise ValueError(f"block_start must be an (x, y) pair, got {self.block_start}")
        if not 0.0 < half < self.arena_size:
            raise ValueError(f"block_size ({self.block_size}) must be in (0, 2 * arena_size)")
        # One step may not reach from outside the block past its middle, or contact picks the wrong side.
        if self.max_speed >= half:
            raise ValueError(f"max_speed ({self.max_speed}) must be below half the block size ({half})")
        bx, by = self.block_start
        if max(abs(bx), abs(by)) > self.arena_size - half:
            raise ValueError(f"block_start {self.block_start} puts the block outside the arena")
        if max(abs(bx), abs(by)) - half <= self.start_noise:
            raise ValueError(f"block_start {self.block_start} overlaps the agent's start (start_noise {self.start_noise})")
        if bool(self._overlaps_wall(jnp.asarray(self.block_start, jnp.float32))):
            raise ValueError(f"block_start {self.block_start} overlaps a wall of maze {self.maze!r}")

    @property
    def spec(self) -> WorldSpec:
        # The point world's spec, with the block in the observation and an object to cover.
        return self._spec(name="point_block", obs_size=4, object_size=2)

    def reset(self, key: jax.Array) -> State:
        agent = super().reset(key)
        block = jnp.asarray(self.block_start, jnp.float32)
        return strong_types(agent.replace(obs=jnp.concatenate([agent.obs, block]), physics={"agent": agent.physics, "block": block}))

    def step(self, state: State, action: jax.Array) -> State:
        pos, block = state.physics["agent"], state.physics["block"]
        # The agent's move without the block: velocity, maze walls, arena.
        target = super().step(state.replace(obs=pos, physics=pos), action).physics
        half = 0.5 * self.block_size
        rel, d = pos - block, target - block  # agent relative to the block, before and after
        inside = jnp.all(jnp.abs(d) < half)
        # Contact face: the one the straight move enters the block through, i.e. on the axis whose
        # slab it enters last (swept test); ties go to an axis the agent was outside on.
        gap = jnp.abs(rel) - half
        closing = jnp.maximum(jnp.abs(rel) - jnp.abs(d), 1e-12)
        entry = jnp.where(gap >= 0.0, gap / closing, -1.0)
        axis = jnp.where(entry[0] >= entry[1], jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]))
        side = jnp.sign(rel)  # which side of the block the agent is on
        # Push the block away from the agent by the penetration depth, along the contact axis.
        pushed = block - axis * side * (half - jnp.abs(d))
        pushed = jnp.clip(pushed, -self.arena_size + half, self.arena_size - half)
        pushed = self._stop_at_walls(block, pushed, axis)
        new_block = jnp.where(inside, pushed, block)
        # The agent ends in contact with the block's face (with its full move if the block went
        # all the way, short of it if the block was stopped); along the face it keeps its move.
        at_face = new_block + side * half
        new_pos = jnp.where(inside, jnp.where(axis > 0, at_face, target), target)
        obs = jnp.concatenate([new_pos, new_block])
        return state.replace(obs=obs, physics={"agent": new_pos, "block": new_block}, reward=jnp.zeros_like(state.reward))

    def _stop_at_walls(self, block: jax.Array, pushed: jax.Array, axis: jax.Array) -> jax.Array:
        """Cut a push of the block (from ``block`` to ``pushed``, along the one-hot ``axis``) short
        where the block's square would meet a maze wall: it then rests against the wall."""
        w, half = self.walls, 0.5 * self.block_size
        if w.shape[0] == 0:
            return pushed
        lo, hi, across = w[:, :2], w[:, 2:], 1.0 - axis
        # Walls in the block's lane (overlapping it across the push), and on which side of it.
        lane = (lo @ across < block @ across + half) & (hi @ across > block @ across - half)
        b, p = block @ axis, pushed @ axis
        above = jnp.min(jnp.where(lane & (lo @ axis >= b + half - 1e-5), lo @ axis - half, jnp.inf))
        below = jnp.max(jnp.where(lane & (hi @ axis <= b - half + 1e-5), hi @ axis + half, -jnp.inf))
        return pushed + axis * (jnp.clip(p, below, above) - p)

    def _overlaps_wall(self, block: jax.Array) -> jax.Array:
        """Whether the block's square overlaps any maze wall (touching is free); checks block_start."""
        w, half = self.walls, 0.5 * self.block_size
        if w.shape[0] == 0:
            return jnp.bool_(False)
        lo, hi = block - half, block + half
        return jnp.any((hi[0] > w[:, 0]) & (lo[0] < w[:, 2]) & (hi[1] > w[:, 1]) & (lo[1] < w[:, 3]))

    def position(self, state: State) -> jax.Array:
        """The agent's xy, for ``eval/coverage``."""
        return state.physics["agent"]

    def object_position(self, state: State) -> jax.Array:
        """The block's xy, for ``eval/object_coverage``."""
        return state.physics["block"]
