"""Skill objectives: what makes a behaviour a skill (priors, intrinsic rewards, their own losses).

``skills.make(name, options, spec)`` builds one by name from plain config data and the world's
spec; ``skills.register(name, cls, config_cls)`` adds an objective (e.g. from a research script)
without editing this file.
"""

from __future__ import annotations

import dataclasses

from algos.hparams import from_options
from skills.base import NoGoalReaching, OneHotPrior, SkillObjective, UniformBoxPrior, UnitSpherePrior, check_objective, make_prior
from skills.cic import CIC, CICConfig
from skills.goals import GoalConfig, GoalSkills, SingleGoalConfig
from skills.dads import DADS, DADSConfig
from skills.diayn import DIAYN, DIAYNConfig
from skills.task import TaskConfig, TaskReward
from skills.distance import CSDConfig, DistanceSkills, LSDConfig, MetraConfig
from worlds.base import WorldSpec

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


def register(name: str, cls: type, config_cls: type) -> None:
    """Make ``skills.make(name, ...)`` and ``algo.objective.name=<name>`` build ``cls``.

    ``cls`` subclasses ``SkillObjective``; ``config_cls`` is a dataclass of its options."""
    if not (isinstance(cls, type) and issubclass(cls, SkillObjective)):
        raise TypeError(f"{cls!r} is not a SkillObjective subclass (skills/base.py)")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"the options of objective {name!r} must be a dataclass, got {config_cls!r}")
    OBJECTIVES[name] = (cls, config_cls)


def names() -> list[str]:
    return sorted(OBJECTIVES)


def make(name: str, options: dict, spec: WorldSpec) -> SkillObjective:
    """The objective ``name`` with ``options`` (plain data; unknown keys are errors) for a world."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown skill objective {name!r}; known: {', '.join(names())}")
    cls, config_cls = OBJECTIVES[name]
    objective = cls.from_spec(from_options(config_cls, options, name), spec)
    check_objective(objective)
    return objective
