"""The SkillObjective contract and skill priors.

``SkillObjective`` lists every hook the training loop, evaluation, finetuning and sweeps call on
an objective. A new objective subclasses it, implements ``init`` and ``reward`` (and usually
``update``), sets its prior, and inherits a default for every optional hook; the loop never probes
an objective for attributes.

Batches are dicts with a leading batch axis: ``obs``, ``next_obs``, ``skill``, ``action``,
``reward`` (the world's task reward), ``terminal`` and ``done``; ``terms`` (the world's named
reward terms, ``[B, len(spec.reward_terms)]``) when the world declares any; ``future_obs`` when the
objective asks for trajectory replay.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from worlds.base import WorldSpec

Array = jax.Array

REPLAY_KINDS = ("transitions", "trajectories")


class NoGoalReaching(TypeError):
    """Raised by ``goal_skill`` of an objective that has no zero-shot goal reaching."""


class SkillObjective:
    """What makes a behaviour a skill: a prior over skills, intrinsic reward terms, own losses.

    Required: ``init`` and ``reward``; ``prior`` (or an own ``sample`` and ``skill_size``).
    Everything else has a default that suits an objective with nothing special to say.
    """

    # ---- static facts ----------------------------------------------------------------------------
    config: Any = None  # the options dataclass it was built from (its registry entry's config_cls)
    prior: Any = None  # a skill prior (below); ``sample`` and ``skill_size`` default to it
    n_rewards: int = 1  # K: reward terms, one critic head each
    # Which replay the objective needs: single transitions, or whole trajectories (the batch then
    # carries ``future_obs``, a state later in the same episode, offset k >= 1 with
    # P(k) ~ future_discount^(k-1)).
    replay: ClassVar[str] = "transitions"
    future_discount: float = 0.99
    # Transition fields beyond the core ones the objective reads (e.g. ``terms``); the loop checks
    # that the world and replay provide them before anything is compiled.
    requires: tuple[str, ...] = ()
    # Zero-shot goal reaching: objectives that can aim at a goal set this and override ``goal_skill``.
    goal_reaching: ClassVar[bool] = False
    # Goal positions to evaluate goal reaching at ([G, position_size]); None: the world's ring.
    eval_goals: Any = None

    @classmethod
    def from_spec(cls, config, spec: WorldSpec) -> "SkillObjective":
        """Build from a config and the world's spec. Objectives that need more of the world than its
        observation size (reward terms, agent blocks) override this."""
        return cls(config, spec.obs_size)

    @property
    def skill_size(self) -> int:
        """Width of the skill vector the learner sees beside the observation."""
        return self.prior.size

    @property
    def reward_names(self) -> tuple[str, ...]:
        """One name per reward term, for per-head metrics (``reward/<name>``)."""
        return ("skill",) if self.n_rewards == 1 else tuple(f"term{k}" for k in range(self.n_rewards))

    # ---- state -----------------------------------------------------------------------------------
    def init(self, key: Array) -> Any:
        """The objective's params (networks, optimiser states, dual variables, statistics)."""
        raise TypeError(f"{type(self).__name__} must define init(key)")

    def sweepable(self) -> dict:
        """Hyperparameters held in the params as leaves: name -> ``set(params, value) -> params``."""
        return {}

    # ---- skills ----------------------------------------------------------------------------------
    def sample(self, key: Array, n: int) -> Array:
        """``n`` skills from the prior: [n, skill_size]."""
        return self.prior.sample(key, n)

    def skill_candidates(self, key: Array, n: int) -> Array:
        """Skills to try when choosing one for a downstream task (finetuning): every skill of a
        discrete prior, else ``n`` prior samples."""
        if self.prior.discrete:
            return jnp.eye(self.skill_size)
        return self.sample(key, n)

    # ---- learning --------------------------------------------------------------------------------
    def relabel(self, params: Any, batch: dict, key: Array) -> dict:
        """The batch the objective and learner train on (e.g. skills replaced by reached goals)."""
        del params, key
        return batch

    def reward(self, params: Any, batch: dict) -> Array:
        """Intrinsic reward terms [B, n_rewards], recomputed with the current params."""
        raise TypeError(f"{type(self).__name__} must define reward(params, batch)")

    def update(self, params: Any, batch: dict, key: Array) -> tuple[Any, dict]:
        """One step on the objective's own losses; returns new params and metrics."""
        del batch, key
        return params, {}

    # ---- evaluation ------------------------------------------------------------------------------
    def goal_skill(self, params: Any, obs: Array, goal_obs: Array) -> Array:
        """The skill that leads from ``obs`` towards ``goal_obs`` ([n, obs] -> [n, skill_size])."""
        raise NoGoalReaching(f"objective {type(self).__name__} has no zero-shot goal reaching")


def check_objective(objective: SkillObjective) -> None:
    """Reject an objective whose static facts cannot run, before anything is traced."""
    if not isinstance(objective, SkillObjective):
        raise TypeError(f"{type(objective).__name__} is not a SkillObjective (skills/base.py)")
    if objective.replay not in REPLAY_KINDS:
        raise ValueError(f"objective {type(objective).__name__}: replay must be one of {REPLAY_KINDS}, got {objective.replay!r}")
    if objective.replay == "trajectories" and not 0.0 < objective.future_discount < 1.0:
        raise ValueError(f"future_discount must be in (0, 1), got {objective.future_discount}")
    if objective.n_rewards < 1 or len(objective.reward_names) != objective.n_rewards:
        raise ValueError(f"objective {type(objective).__name__}: {objective.n_rewards} reward terms but names {objective.reward_names}")


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


@dataclasses.dataclass(frozen=True)
class FixedSkill:
    """A single skill for every rollout (finetuning's chosen z, SGCRL's goal g*)."""

    value: tuple[float, ...]
    discrete = False

    def sample(self, key, batch: int) -> Array:
        del key
        return jnp.broadcast_to(jnp.asarray(self.value, jnp.float32), (batch, self.size))

    @property
    def size(self) -> int:
        return len(self.value)


def make_prior(skill_type: str, skill_dim: int):
    if skill_dim < 1 or (skill_type == "discrete" and skill_dim < 2):
        raise ValueError(f"skill_dim={skill_dim} is too small for {skill_type} skills")
    if skill_type == "continuous":
        return UnitSpherePrior(skill_dim)
    if skill_type == "discrete":
        return OneHotPrior(skill_dim)
    raise ValueError(f"unknown skill_type {skill_type!r}; known: continuous, discrete")
