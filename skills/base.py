"""The SkillObjective protocol and skill priors."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp

Array = jax.Array


class SkillObjective(Protocol):
    """What the training loop needs from a skill objective.

    ``batch`` is a dict of transitions with at least ``obs``, ``next_obs``, ``skill``, ``action``
    and ``terminal``, each with a leading batch axis.
    """

    skill_size: int  # width of the skill vector appended to the policy's observation
    n_rewards: int  # K: reward terms, one critic head each

    def init(self, key: Array) -> Any: ...

    def sample(self, key: Array, n: int) -> Array: ...

    def reward(self, params: Any, batch: dict) -> Array: ...  # [B, K]

    def update(self, params: Any, batch: dict, key: Array) -> tuple[Any, dict]: ...


@dataclasses.dataclass(frozen=True)
class OneHotPrior:
    """Uniform categorical skills, one-hot encoded."""

    n: int
    discrete = True

    def sample(self, key, batch: int) -> Array:
        return jax.nn.one_hot(jax.random.randint(key, (batch,), 0, self.n), self.n)

    @property
    def size(self) -> int:
        return self.n


@dataclasses.dataclass(frozen=True)
class UnitSpherePrior:
    """Continuous skills uniform on the unit sphere (a normalised standard Gaussian)."""

    dim: int
    discrete = False

    def sample(self, key, batch: int) -> Array:
        z = jax.random.normal(key, (batch, self.dim))
        return z / jnp.linalg.norm(z, axis=-1, keepdims=True)

    @property
    def size(self) -> int:
        return self.dim


@dataclasses.dataclass(frozen=True)
class UniformBoxPrior:
    """Continuous skills uniform in the box [low, high]^dim (DADS: [-1, 1]^D; CIC: [0, 1]^D)."""

    dim: int
    low: float = -1.0
    high: float = 1.0
    discrete = False

    def sample(self, key, batch: int) -> Array:
        return jax.random.uniform(key, (batch, self.dim), minval=self.low, maxval=self.high)

    @property
    def size(self) -> int:
        return self.dim


def make_prior(skill_type: str, skill_dim: int):
    if skill_dim < 1 or (skill_type == "discrete" and skill_dim < 2):
        raise ValueError(f"skill_dim={skill_dim} is too small for {skill_type} skills")
    if skill_type == "continuous":
        return UnitSpherePrior(skill_dim)
    if skill_type == "discrete":
        return OneHotPrior(skill_dim)
    raise ValueError(f"unknown skill_type {skill_type!r}; use 'continuous' or 'discrete'")
