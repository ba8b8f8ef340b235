"""Learners (the RL that maximises skill rewards), networks, replay and the jitted training loop.

``algos.make_learner(name, options, spec, skill_size, n_rewards)`` builds a learner by name;
``algos.register_learner(name, cls, config_cls)`` adds one without editing this file.
"""

from __future__ import annotations

import dataclasses

from algos.base import Learner, check_learner
from algos.crl import CRL, CRLConfig
from algos.hparams import from_options
from algos.sac import SAC, SACConfig
from worlds.base import WorldSpec

# name -> (learner class, its config dataclass)
LEARNERS = {"sac": (SAC, SACConfig), "crl": (CRL, CRLConfig)}


def register_learner(name: str, cls: type, config_cls: type) -> None:
    """Make ``make_learner(name, ...)`` and ``algo.learner.name=<name>`` build ``cls``."""
    if not (isinstance(cls, type) and issubclass(cls, Learner)):
        raise TypeError(f"{cls!r} is not a Learner subclass (algos/base.py)")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"the options of learner {name!r} must be a dataclass, got {config_cls!r}")
    LEARNERS[name] = (cls, config_cls)


def make_learner(name: str, options: dict, spec: WorldSpec, skill_size: int, n_rewards: int) -> Learner:
    """The learner ``name`` with ``options`` (plain data) for a world and an objective's sizes."""
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; known: {', '.join(sorted(LEARNERS))}")
    cls, config_cls = LEARNERS[name]
    learner = cls.from_spec(from_options(config_cls, options, name), spec, skill_size, n_rewards)
    check_learner(learner)
    return learner
