"""Finetuning objective: the world's own task reward, with one fixed skill.

URLB-style finetuning keeps the pretrained skill-conditioned policy's input layout: the policy
still sees ``obs`` and ``z``, with the ``z`` chosen before finetuning (see experiments/finetune.py), and
the learner now maximises the task reward stored with each transition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from skills.base import FixedSkill, SkillObjective


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    skill: Sequence[float] = ()  # the fixed skill appended to every observation


class TaskReward(SkillObjective):
    """The world's task reward, one reward head; the skill is the fixed one chosen before finetuning."""

    def __init__(self, config: TaskConfig, obs_size: int):
        del obs_size
        self.config = config
        self.prior = FixedSkill(tuple(float(v) for v in config.skill))

    def init(self, key) -> dict:
        return {}  # nothing to learn

    def reward(self, params, batch):
        return batch["reward"][:, None]
