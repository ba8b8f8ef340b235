"""The Learner contract: what the training loop, evaluation, finetuning and sweeps ask of a learner.

A learner is the RL that maximises an objective's reward terms. It sees the observation and the
skill as two inputs (``act(params, obs, skill, key)``; batches carry ``skill`` as its own field), so
where and how the skill enters its networks is its own business: SAC concatenates them, the
contrastive critic embeds the skill as a goal, a multi-agent actor would split the observation
into agent blocks first. A new learner subclasses ``Learner``, implements ``init``, ``act`` and
``update``, and inherits a default for every optional hook.

Learner batches are dicts with a leading batch axis: ``obs``, ``skill``, ``action``, ``next_obs``
and ``terminal`` (1 where the episode really ended, 0 at a time limit); rewards arrive beside the
batch as ``[B, n_rewards]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax

from worlds.base import WorldSpec

Array = jax.Array


class Learner:
    config: Any = None  # the options dataclass it was built from (its registry entry's config_cls)
    obs_size: int
    skill_size: int
    action_size: int
    n_rewards: int = 1
    # Which fields of the params a finetune on a task reward may start from (the rest, e.g.
    # optimiser states, start fresh). Empty: this learner cannot be finetuned on a reward.
    transferable: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_spec(cls, config, spec: WorldSpec, skill_size: int, n_rewards: int) -> "Learner":
        """Build from a config and the world's spec. Learners that use more of the world than its
        flat sizes (e.g. per-agent blocks) override this."""
        return cls(config, spec.obs_size, spec.action_size, n_rewards, skill_size=skill_size)

    def init(self, key: Array) -> Any:
        raise TypeError(f"{type(self).__name__} must define init(key)")

    def act(self, params: Any, obs: Array, skill: Array, key: Array, deterministic: bool = False) -> Array:
        """Actions [n, action_size] in [-1, 1] for observations [n, obs_size] and skills [n, skill_size]."""
        raise TypeError(f"{type(self).__name__} must define act(params, obs, skill, key, deterministic)")

    def update(self, params: Any, batch: dict, rewards: Array, key: Array) -> tuple[Any, dict]:
        """One gradient step; ``rewards``: [B, n_rewards]. Returns new params and metrics."""
        raise TypeError(f"{type(self).__name__} must define update(params, batch, rewards, key)")

    def random_action(self, key: Array, n: int) -> Array:
        """Exploration before training (prefill) and the random-action baseline: uniform in [-1, 1]."""
        return jax.random.uniform(key, (n, self.action_size), minval=-1.0, maxval=1.0)

    def sweepable(self) -> dict:
        """Hyperparameters held in the params as leaves: name -> ``set(params, value) -> params``."""
        return {}


def check_learner(learner: Learner) -> None:
    if not isinstance(learner, Learner):
        raise TypeError(f"{type(learner).__name__} is not a Learner (algos/base.py)")

