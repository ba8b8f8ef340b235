"""DIAYN: "Diversity is All You Need" (Eysenbach, Gupta, Ibarz, Levine; ICLR 2019).

Skills are one-hot z ~ p(z) = Uniform{1..K}. A discriminator q(z | s') (an MLP over the next
observation, or over its descriptor: the first ``descriptor_size`` entries, e.g. an xy position)
learns to tell skills apart by cross-entropy, and the policy is rewarded for being told apart:

    logits = D(desc(s'))
    r      = log q(z | s') - log p(z) = log_softmax(logits)_z + log K
    L_D    = -E[ log_softmax(logits)_z ]

The +log K makes the reward zero for a discriminator at chance. Maximised with SAC at a fixed
entropy scale alpha = 0.1 (the original code's ``scale_entropy``); the original uses K = 50, URLB
K = 16 (our default). See reference/algos.md section 1.1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from algos.networks import MLP
from algos.hparams import with_learning_rate
from skills.base import OneHotPrior, SkillObjective


@dataclasses.dataclass(frozen=True)
class DIAYNConfig:
    skill_dim: int = 16  # K one-hot skills
    hidden: Sequence[int] = (1024, 1024)
    layer_norm: bool = False
    learning_rate: float = 3e-4
    descriptor_size: int | None = None  # None: the whole observation; N: its first N entries


@struct.dataclass
class DIAYNParams:
    discriminator: dict
    opt: optax.OptState


class DIAYN(SkillObjective):

    def __init__(self, config: DIAYNConfig, obs_size: int):
        if config.skill_dim < 2:
            raise ValueError(f"DIAYN needs at least 2 skills, got skill_dim={config.skill_dim}")
        size = obs_size if config.descriptor_size is None else config.descriptor_size
        if not 1 <= size <= obs_size:
            raise ValueError(f"descriptor_size must be in [1, obs_size={obs_size}], got {config.descriptor_size}")
        self.config = config
        self.descriptor_size = size
        self.prior = OneHotPrior(config.skill_dim)
        self.net = MLP(tuple(config.hidden), config.skill_dim, config.layer_norm)
        self.tx = optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rate)

    def init(self, key) -> DIAYNParams:
        disc = self.net.init(key, jnp.zeros((1, self.descriptor_size)))
        return DIAYNParams(disc, self.tx.init(disc))

    def sweepable(self) -> dict:
        """Hyperparameters a sweep may vary per member: name -> ``set(params, value) -> params``."""
        return {"learning_rate": lambda p, v: p.replace(opt=with_learning_rate(p.opt, v))}

    def log_q(self, params: DIAYNParams, obs):
        """log q(. | s) for observations [..., obs_size] -> [..., K]."""
        return jax.nn.log_softmax(self.net.apply(params.discriminator, obs[..., : self.descriptor_size]), -1)

    def reward(self, params: DIAYNParams, batch):
        log_q_z = jnp.sum(self.log_q(params, batch["next_obs"]) * batch["skill"], -1)
        return (log_q_z + jnp.log(self.config.skill_dim))[:, None]

    def update(self, params: DIAYNParams, batch, key):
        def loss_fn(disc):
            log_q = self.log_q(params.replace(discriminator=disc), batch["next_obs"])
            return -jnp.mean(jnp.sum(log_q * batch["skill"], -1)), log_q

        (loss, log_q), grads = jax.value_and_grad(loss_fn, has_aux=True)(params.discriminator)
        updates, opt = self.tx.update(grads, params.opt, params.discriminator)
        params = DIAYNParams(optax.apply_updates(params.discriminator, updates), opt)
        accuracy = jnp.mean(jnp.argmax(log_q, -1) == jnp.argmax(batch["skill"], -1))
        return params, {"loss/discriminator": loss, "diayn/accuracy": accuracy}
