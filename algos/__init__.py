"""Learners (the RL that maximises skill rewards), networks, replay and the jitted training loop.

``algos.make_learner(name, options, obs_size, action_size, n_rewards)`` builds a learner by name.
"""

from __future__ import annotations

from algos.crl import CRL, CRLConfig
from algos.hparams import from_options
from algos.sac import SAC, SACConfig

# name -> (learner class, its config dataclass)
LEARNERS = {"sac": (SAC, SACConfig), "crl": (CRL, CRLConfig)}


def make_learner(name: str, options: dict, obs_size: int, action_size: int, n_rewards: int):
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; known: {', '.join(sorted(LEARNERS))}")
    cls, config_cls = LEARNERS[name]
    return cls(from_options(config_cls, options, name), obs_size, action_size, n_rewards)
