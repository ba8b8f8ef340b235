"""Skill objectives: what makes a behaviour a skill (priors, intrinsic rewards, their own losses).

``skills.make(name, options, obs_size)`` builds one by name from plain config data.
"""

from __future__ import annotations

from algos.hparams import from_options
from skills.base import OneHotPrior, SkillObjective, UniformBoxPrior, UnitSpherePrior, make_prior
from skills.cic import CIC, CICConfig
from skills.goals import GoalConfig, GoalSkills, SingleGoalConfig
from skills.dads import DADS, DADSConfig
from skills.diayn import DIAYN, DIAYNConfig
from skills.task import TaskConfig, TaskReward
from skills.distance import CSDConfig, DistanceSkills, LSDConfig, MetraConfig

# name -> (objective class, its config dataclass)
OBJECTIVES = {
    "metra": (DistanceSkills, MetraConfig),
    "lsd": (DistanceSkills, LSDConfig),
    "csd": (DistanceSkills, CSDConfig),
    "task": (TaskReward, TaskConfig),  # finetuning on the world's reward (experiments.finetune)
    "dads": (DADS, DADSConfig),
    "diayn": (DIAYN, DIAYNConfig),
    "cic": (CIC, CICConfig),
    "crl": (GoalSkills, GoalConfig),  # goals as skills (CRL)
    "sgcrl": (GoalSkills, SingleGoalConfig),  # one fixed goal g* for every rollout (SGCRL)
}


def names() -> list[str]:
    return sorted(OBJECTIVES)


def make(name: str, options: dict, obs_size: int) -> SkillObjective:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown skill objective {name!r}; known: {', '.join(names())}")
    cls, config_cls = OBJECTIVES[name]
    return cls(from_options(config_cls, options, name), obs_size)

