"""A 2-D point mass under velocity control, in pure JAX.

The cheapest world where skill discovery shows: the observation is the agent's xy, an action is
a velocity in [-1, 1]^2 scaled by ``max_speed``, and the arena is a box of half-width
``arena_size``. Optional axis-aligned walls make mazes; the agent slides along a wall by keeping
whichever single-axis part of its move stays free. A step may be split into ``substeps`` equal
moves, each checked against the walls, so that an agent may cross a whole corridor per step (the
SGCRL point mazes move one cell per step, with ten collision substeps) without tunnelling.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from worlds.base import State, World, WorldSpec, strong_types

# Named wall layouts, each a tuple of (x_min, y_min, x_max, y_max) rectangles.
MAZES = {
    "open": (),
    # A U-shaped obstacle: the agent starts inside the U and must leave through its open top.
    "u": ((-6.0, -6.0, 6.0, -5.0), (-6.0, -6.0, -5.0, 4.0), (5.0, -6.0, 6.0, 4.0)),
    # One wall across the way, 2.5 ahead of the start: the single goal (0, 6) is straight behind
    # it, so a policy that heads straight for the goal stays stuck at the wall; ~11 of path round
    # an end. The smallest detour (cf. the SGCRL paper's Wall11x11).
    "wall": ((-4.0, 2.5, 4.0, 3.5),),
    # A square spiral around the start: out of the inner cell to the right, then up, left, down
    # and right again along corridors 2 wide, leaving into the outer ring at the bottom right.
    # Hard single goal (SGCRL-style, cf. point_Spiral11x11): the top-right corner, (8, 8).
    "spiral": (
        (-3.0, 2.0, 3.0, 3.0),  # inner top
        (-3.0, -3.0, -2.0, 3.0),  # inner left
        (-3.0, -3.0, 6.0, -2.0),  # inner bottom, reaching right under the second corridor
        (5.0, -3.0, 6.0, 6.0),  # right
        (-6.0, 5.0, 6.0, 6.0),  # top
        (-6.0, -6.0, -5.0, 6.0),  # left
        (-6.0, -6.0, 9.0, -5.0),  # bottom: its corridor runs right under the inner walls, out at x > 6
    ),
}


# Downstream tasks (URLB-style finetuning): reach a corner. The reward is dense, the negative
# distance to the target in arena units, so an episode's return is comparable across tasks.
TASKS = {
    "none": None,
    "reach_top_right": (7.0, 7.0),
    "reach_top_left": (-7.0, 7.0),
    "reach_bottom_left": (-7.0, -7.0),
    "reach_bottom_right": (7.0, -7.0),
}


@dataclasses.dataclass(frozen=True)
class PointWorld(World):
    arena_size: float = 10.0
    max_speed: float = 0.2
    episode_length: int = 100
    maze: str = "open"
    start_noise: float = 0.0
    coverage_cell: float = 1.0
    goal_radius: float = 7.0
    goal_threshold: float = 1.0
    task: str = "none"
    substeps: int = 1  # collision checks per step: each checks a 1/substeps share of the move

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {sorted(TASKS)}")
        if self.maze not in MAZES:
            raise ValueError(f"unknown maze {self.maze!r}; known: {sorted(MAZES)}")
        if self.arena_size <= 0 or self.max_speed <= 0 or self.episode_length <= 0:
            raise ValueError("point world needs arena_size, max_speed and episode_length > 0")
        if not isinstance(self.substeps, int) or self.substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {self.substeps!r}")
        walls = MAZES[self.maze]
        thinnest = min((min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in walls), default=float("inf"))
        if self.max_speed / self.substeps >= thinnest:  # walls are checked at each substep's end point only
            raise ValueError(
                f"max_speed / substeps ({self.max_speed} / {self.substeps}) must be below the thinnest wall "
                f"({thinnest}) or the agent tunnels; raise substeps"
            )

    @property
    def spec(self) -> WorldSpec:
        return self._spec()

    def _spec(self, **changes) -> WorldSpec:
        """The point world's spec, with ``changes`` (for worlds built on it)."""
        facts = dict(
            name="point",
            obs_size=2,
            action_size=2,
            episode_length=self.episode_length,
            position_size=2,
            coverage_cell=self.coverage_cell,
            goal_radius=self.goal_radius,
            goal_threshold=self.goal_threshold,
        )
        return WorldSpec(**{**facts, **changes})

    @property
    def walls(self) -> jax.Array:
        return jnp.asarray(MAZES[self.maze], dtype=jnp.float32).reshape(-1, 4)

    def reset(self, key: jax.Array) -> State:
        pos = self.start_noise * jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        state = State(
            obs=pos.astype(jnp.float32),
            reward=jnp.zeros((), jnp.float32),
            done=jnp.zeros((), jnp.float32),
            metrics={},
            info={},
            physics=pos.astype(jnp.float32),
        )
        return strong_types(state)

    def step(self, state: State, action: jax.Array) -> State:
        move = self.max_speed * jnp.clip(action, -1.0, 1.0) / self.substeps
        new = state.physics
        for _ in range(self.substeps):  # a few unrolled substeps: cheaper than a loop on every backend
            new = self._slide(new, move)
        return state.replace(obs=new, physics=new, reward=self.task_reward(new))

    def _slide(self, pos: jax.Array, move: jax.Array) -> jax.Array:
        """One collision-checked move: the full move, else its x part, else its y part, else stay."""
        target = pos + move
        only_x = pos + move * jnp.array([1.0, 0.0])
        only_y = pos + move * jnp.array([0.0, 1.0])
        new = jnp.where(
            self._free(target),
            target,
            jnp.where(self._free(only_x), only_x, jnp.where(self._free(only_y), only_y, pos)),
        )
        return jnp.clip(new, -self.arena_size, self.arena_size)

    def task_reward(self, pos: jax.Array) -> jax.Array:
        target = TASKS[self.task]
        if target is None:
            return jnp.zeros((), jnp.float32)
        return -jnp.linalg.norm(pos - jnp.asarray(target, jnp.float32)) / self.arena_size

    def _free(self, p: jax.Array) -> jax.Array:
        w = self.walls
        if w.shape[0] == 0:
            return jnp.bool_(True)
        inside = (p[0] >= w[:, 0]) & (p[0] <= w[:, 2]) & (p[1] >= w[:, 1]) & (p[1] <= w[:, 3])
        return ~jnp.any(inside)

    def position(self, state: State) -> jax.Array:
        return state.physics
