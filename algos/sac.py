"""Soft actor-critic whose critics keep one head per reward term.

Rewards arrive as a vector [B, K]. Each critic has K heads and head k regresses the soft return of
reward term k. The actor maximises ``sum_k w_k Q_k`` plus the policy entropy. So that the weighted
sum of heads is exactly the soft value of the weighted reward ``sum_k w_k r_k``, each head's
bootstrap carries the share ``1 / sum_k w_k`` of the entropy bonus. With K = 1 and w = 1 this is
plain SAC (twin critics, target networks, automatic entropy tuning).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from algos.actor_critic import TanhGaussianPolicy, actor_critic_sweepable, adam, temperature_step
from algos.base import Learner
from algos.hparams import traced_hparams
from algos.networks import CriticEnsemble


@dataclasses.dataclass(frozen=True)
class SACConfig:
    hidden: Sequence[int] = (1024, 1024)
    layer_norm: bool = False
    learning_rate: float = 1e-4
    gamma: float = 0.99
    tau: float = 5e-3
    init_alpha: float = 0.01
    learn_alpha: bool = True
    target_entropy_scale: float = 0.5  # target entropy = -scale * action_size (METRA: 1/2)
    head_weights: Sequence[float] | None = None  # None: every head weighs 1 (traced: sweepable)
    reward_scale: float = 1.0
    n_critics: int = 2


# Hyperparameters that live in the params as leaves, so that a sweep can vmap over them.
TRACED = ("gamma", "tau", "reward_scale", "target_entropy_scale")


@struct.dataclass
class SACParams:
    actor: dict
    critic: dict
    target_critic: dict
    log_alpha: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    hparams: dict  # the TRACED hyperparameters as float32 scalars, and ``head_weights`` [K]


class SAC(Learner):
    """The skill enters both actor and critics concatenated to the observation."""

    transferable = ("actor", "critic", "target_critic")

    def __init__(self, config: SACConfig, obs_size: int, action_size: int, n_rewards: int = 1, skill_size: int = 0):
        if n_rewards < 1:
            raise ValueError(f"SAC needs at least one reward term, got {n_rewards}")
        weights = config.head_weights if config.head_weights is not None else (1.0,) * n_rewards
        if len(weights) != n_rewards:
            raise ValueError(f"head_weights has {len(weights)} entries but there are {n_rewards} reward terms")
        if sum(weights) <= 0:
            raise ValueError("head_weights must sum to a positive number")
        self.config = config
        self.obs_size, self.skill_size, self.action_size, self.n_rewards = obs_size, skill_size, action_size, n_rewards
        self.head_weights = tuple(float(w) for w in weights)
        self.policy = TanhGaussianPolicy(config.hidden, action_size, config.layer_norm)
        self.critic_net = CriticEnsemble(tuple(config.hidden), n_rewards, config.n_critics, config.layer_norm)
        self.actor_tx = adam(config.learning_rate)
        self.critic_tx = adam(config.learning_rate)
        self.alpha_tx = adam(config.learning_rate if config.learn_alpha else 0.0)

    # ---- construction -------------------------------------------------------------------------
    def init(self, key) -> SACParams:
        k_actor, k_critic = jax.random.split(key)
        inputs = jnp.zeros((1, self.obs_size + self.skill_size))
        act = jnp.zeros((1, self.action_size))
        actor = self.policy.init(k_actor, self.obs_size + self.skill_size)
        critic = self.critic_net.init(k_critic, inputs, act)
        log_alpha = jnp.log(jnp.asarray(self.config.init_alpha, jnp.float32))
        return SACParams(
            actor=actor,
            critic=critic,
            target_critic=critic,
            log_alpha=log_alpha,
            actor_opt=self.actor_tx.init(actor),
            critic_opt=self.critic_tx.init(critic),
            alpha_opt=self.alpha_tx.init(log_alpha),
            hparams={**traced_hparams(self.config, TRACED), "head_weights": jnp.asarray(self.head_weights, jnp.float32)},
        )

    def sweepable(self) -> dict:
        """Hyperparameters a sweep may vary per member: name -> ``set(params, value) -> params``."""
        setters = actor_critic_sweepable(self.config.learn_alpha, TRACED)
        setters["init_alpha"] = lambda p, v: p.replace(log_alpha=jnp.log(jnp.float32(v)))
        setters["head_weights"] = lambda p, v: p.replace(
            hparams={**p.hparams, "head_weights": jnp.broadcast_to(jnp.asarray(v, jnp.float32), (self.n_rewards,))}
        )
        return setters

    # ---- acting ------------------------------------------------------------------------------
    def act(self, params: SACParams, obs, skill, key, deterministic: bool = False):
        return self.policy.act(params.actor, jnp.concatenate([obs, skill], -1), key, deterministic)

    # ---- learning ----------------------------------------------------------------------------
    def update(self, params: SACParams, batch: dict, rewards, key):
        """One gradient step on critics, actor and temperature. ``rewards``: [B, K]."""
        hp = params.hparams
        k_next, k_now = jax.random.split(key)
        alpha = jnp.exp(params.log_alpha)
        weights = hp["head_weights"]
        entropy_share = 1.0 / jnp.sum(weights)
        rewards = hp["reward_scale"] * rewards.reshape(rewards.shape[0], self.n_rewards)
        obs = jnp.concatenate([batch["obs"], batch["skill"]], -1)
        next_obs = jnp.concatenate([batch["next_obs"], batch["skill"]], -1)

        # Critic: each head regresses its own reward term's soft return.
        next_dist, _ = self.policy.dist(params.actor, next_obs)
        next_action, next_logp = next_dist.sample_and_log_prob(seed=k_next)
        next_q = self.critic_net.apply(params.target_critic, next_obs, next_action).min(0)
        soft_next = next_q - entropy_share * alpha * next_logp[:, None]
        target = rewards + hp["gamma"] * (1.0 - batch["terminal"])[:, None] * soft_next
        target = jax.lax.stop_gradient(target)

        def critic_loss_fn(critic):
            q = self.critic_net.apply(critic, obs, batch["action"])  # [n_critics, B, K]
            per_head = jnp.mean((q - target[None]) ** 2, axis=1)  # [n_critics, K]
            return jnp.sum(jnp.mean(per_head, -1)), (q.mean(), q.mean((0, 1)), per_head.mean(0))

        (critic_loss, (q_mean, head_q, head_losses)), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(params.critic)
        updates, critic_opt = self.critic_tx.update(grads, params.critic_opt, params.critic)
        critic = optax.apply_updates(params.critic, updates)

        # Actor: maximise the weighted sum of heads plus entropy.
        def actor_loss_fn(actor):
            dist, _ = self.policy.dist(actor, obs)
            action, logp = dist.sample_and_log_prob(seed=k_now)
            q = self.critic_net.apply(critic, obs, action).min(0)
            return jnp.mean(alpha * logp - q @ weights), logp

        (actor_loss, logp), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(params.actor)
        updates, actor_opt = self.actor_tx.update(grads, params.actor_opt, params.actor)
        actor = optax.apply_updates(params.actor, updates)

        # Temperature: push the policy entropy towards its target.
        target_entropy = -hp["target_entropy_scale"] * self.action_size
        alpha_loss, log_alpha, alpha_opt = temperature_step(self.alpha_tx, params.log_alpha, params.alpha_opt, logp, target_entropy)

        target_critic = optax.incremental_update(critic, params.target_critic, hp["tau"])
        new = SACParams(actor, critic, target_critic, log_alpha, actor_opt, critic_opt, alpha_opt, params.hparams)
        metrics = {
            "loss/critic": critic_loss,
            "loss/actor": actor_loss,
            "loss/alpha": alpha_loss,
            "sac/alpha": alpha,
            "sac/q": q_mean,
            "sac/entropy": -jnp.mean(logp),
        }
        for k in range(self.n_rewards):
            metrics[f"sac/critic_loss_head{k}"] = head_losses[k]
            metrics[f"sac/q_head{k}"] = head_q[k]
        return new, metrics
