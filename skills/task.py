"""Finetuning objective: the world's own task reward, with one fixed skill.

URLB-style finetuning keeps the pretrained skill-conditioned policy's input layout: the policy
still sees ``obs ⊕ z``, with the ``z`` chosen before finetuning (see experiments/finetune.py), and
the learner now maximises the task reward stored with each transition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    skill: Sequence[float] = ()  # the fixed skill appended to every observation


class TaskReward:
    n_rewards = 1

    def __init__(self, config: TaskConfig, obs_size: int):
        self.config = config
        self.skill = jnp.asarray(config.skill, jnp.float32).reshape(-1)
        self.skill_size = int(self.skill.shape[0])

    def init(self, key) -> dict:
        return {}  # nothing to learn

    def sample(self, key, n: int):
        return jnp.broadcast_to(self.skill, (n, self.skill_size))

    def reward(self, params, batch):
        return batch["reward"][:, None]

    def update(self, params, batch, key):
        return params, {}
