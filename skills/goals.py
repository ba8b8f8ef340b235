"""Goals as skills, for contrastive RL (CRL) and single-goal CRL (SGCRL).

The skill the learner sees beside the observation is a goal: the leading ``goal_size`` entries of a
goal observation (the position, for the point worlds and Brax ant). There is no intrinsic reward;
the learner (``algos.crl.CRL``) trains its critic on goals relabelled from the same
trajectory. This objective says which goals the data-collecting actor aims at:

- CRL: goals drawn uniformly from the box [goal_low, goal_high]^goal_size;
- SGCRL (``fixed_goal`` set): always the one hard goal g* (Liu, Tang, Eysenbach, ICLR 2025);

and, through ``relabel``, replaces the batch's skills by the relabelled future goals
(``future_obs`` from ``algos.trajectory_buffer``), so the learner sees (s, g_future). Its
``replay = "trajectories"`` makes the loop keep whole trajectories (``algos.loop.make_train``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from skills.base import FixedSkill, SkillObjective, UniformBoxPrior


@dataclasses.dataclass(frozen=True)
class GoalConfig:
    goal_size: int = 2
    relabel_discount: float = 0.99  # future offsets k >= 1 with P(k) ~ gamma^(k-1)
    goal_low: float = -10.0  # CRL: training goals uniform in [goal_low, goal_high]^goal_size
    goal_high: float = 10.0
    fixed_goal: Sequence[float] | None = None  # SGCRL: the single goal g* of every rollout
    eval_goal: Sequence[float] | None = None  # evaluate goal reaching at this goal (else the world's ring)


@dataclasses.dataclass(frozen=True)
class SingleGoalConfig(GoalConfig):
    """SGCRL: like CRL, but ``fixed_goal`` is required (the world config's ``goal``)."""

    single: bool = True


class GoalSkills(SkillObjective):
    replay = "trajectories"  # relabelling needs a later state of the same episode
    requires = ("future_obs",)
    goal_reaching = True  # the skill is the goal itself

    def __init__(self, config: GoalConfig, obs_size: int):
        if not 0 < config.goal_size <= obs_size:
            raise ValueError(f"goal_size ({config.goal_size}) must be in 1..{obs_size}")
        if not 0.0 < config.relabel_discount < 1.0:
            raise ValueError(f"relabel_discount must be in (0, 1), got {config.relabel_discount}")
        for name in ("fixed_goal", "eval_goal"):
            value = getattr(config, name)
            if value is not None and len(value) != config.goal_size:
                raise ValueError(f"{name} has {len(value)} entries, goal_size is {config.goal_size}")
        if isinstance(config, SingleGoalConfig) and config.fixed_goal is None:
            raise ValueError("sgcrl needs a fixed_goal: set world.goal in the world config or algo.objective.fixed_goal=[x,y]")
        self.config = config
        self.obs_size = obs_size
        self.future_discount = config.relabel_discount
        if config.fixed_goal is not None:
            self.prior = FixedSkill(tuple(float(v) for v in config.fixed_goal))
        else:
            self.prior = UniformBoxPrior(config.goal_size, config.goal_low, config.goal_high)
        goal = config.eval_goal if config.eval_goal is not None else config.fixed_goal
        self.eval_goals = None if goal is None else np.asarray([goal], np.float32)

    @property
    def single_goal(self) -> bool:
        return self.config.fixed_goal is not None

    def init(self, key):
        del key
        goal = self.config.fixed_goal if self.single_goal else (0.0,) * self.skill_size
        return {"fixed_goal": jnp.asarray(goal, jnp.float32)}

    def relabel(self, params, batch: dict, key) -> dict:
        """The batch with its skills replaced by the relabelled goals (the future state's goal part)."""
        del params, key
        return {**batch, "skill": batch["future_obs"][:, : self.skill_size]}

    def reward(self, params, batch) -> jax.Array:
        return jnp.zeros((batch["obs"].shape[0], 1), jnp.float32)

    def goal_skill(self, params, obs, goal_obs):
        """Zero-shot goal reaching: the skill is the goal itself."""
        return goal_obs[..., : self.skill_size]
