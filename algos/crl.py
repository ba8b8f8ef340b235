"""Contrastive RL (CRL; Eysenbach, Zhang, Salakhutdinov, Levine 2022) and its single-goal use (SGCRL).

The critic is an energy between a state-action embedding and a goal embedding,

    f(s, a, g) = energy(phi(s, a), psi(g)),

trained without rewards: row i of a batch holds (s_i, a_i) and a goal g_i reached later in the
same trajectory (the positive); the other rows' goals are the negatives. With logits
F_ij = f(s_i, a_i, g_j):

    forward  InfoNCE  L = mean_i [ logsumexp_j F_ij - F_ii ]      (softmax over goals per (s, a))
    backward InfoNCE  L = mean_j [ logsumexp_i F_ij - F_jj ]      (softmax over (s, a) per goal)
    symmetric         L = (forward + backward) / 2
    + penalty         c * mean_i (logsumexp_j F_ij)^2             (JaxGCRL's logsumexp regulariser)

Energies: ``dot`` phi.psi (the paper), ``l2`` -||phi - psi||^2, ``neg_norm`` -||phi - psi||
(JaxGCRL's default ``norm``, with sqrt(. + 1e-6)). The actor is a tanh-Gaussian policy pi(a | s, g)
maximising f(s, a, g) - alpha log pi (alpha = 0 for state tasks, as in the paper and SGCRL; or
tuned towards a target entropy, as in JaxGCRL). Goals for the actor are the relabelled ones, a
fraction ``actor_random_goals`` of them replaced by other rows' goals (the paper's code: 0.5).

The goal is the learner's skill input (``skills.goals``: the leading entries of a goal
observation): the actor sees ``concat(state, goal)``, the critic embeds the goal on its own.
Rewards passed to ``update`` are ignored.
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
from algos.networks import MLP

ENERGIES = ("dot", "l2", "neg_norm")
LOSSES = ("forward", "backward", "symmetric")


@dataclasses.dataclass(frozen=True)
class CRLConfig:
    hidden: Sequence[int] = (256, 256)
    layer_norm: bool = False
    repr_dim: int = 64
    learning_rate: float = 3e-4
    energy: str = "dot"
    loss: str = "forward"
    logsumexp_penalty: float = 0.1
    actor_random_goals: float = 0.5
    alpha: float = 0.0  # entropy coefficient (fixed unless learn_alpha)
    learn_alpha: bool = False
    target_entropy_scale: float = 1.0  # with learn_alpha: target entropy = -scale * action_size


TRACED = ("logsumexp_penalty", "actor_random_goals", "target_entropy_scale")


@struct.dataclass
class CRLParams:
    actor: dict
    sa_encoder: dict
    g_encoder: dict
    log_alpha: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    hparams: dict


def energy_matrix(phi, psi, energy: str):
    """F_ij = energy(phi_i, psi_j) for phi [B, D], psi [B', D]."""
    if energy == "dot":
        return phi @ psi.T
    sq = jnp.sum((phi[:, None, :] - psi[None, :, :]) ** 2, -1)
    if energy == "l2":
        return -sq
    if energy == "neg_norm":
        return -jnp.sqrt(sq + 1e-6)
    raise ValueError(f"unknown energy {energy!r}; known: {', '.join(ENERGIES)}")


def energy_pairs(phi, psi, energy: str):
    """energy(phi_i, psi_i) row by row: [B]."""
    if energy == "dot":
        return jnp.sum(phi * psi, -1)
    sq = jnp.sum((phi - psi) ** 2, -1)
    if energy == "l2":
        return -sq
    if energy == "neg_norm":
        return -jnp.sqrt(sq + 1e-6)
    raise ValueError(f"unknown energy {energy!r}; known: {', '.join(ENERGIES)}")


def contrastive_loss(logits, loss: str, penalty):
    """InfoNCE on a [B, B] logits matrix whose diagonal holds the positives; returns (loss, lse_rows)."""
    diag = jnp.diagonal(logits)
    lse_rows = jax.nn.logsumexp(logits, axis=1)  # over goals, for each (s, a)
    lse_cols = jax.nn.logsumexp(logits, axis=0)  # over (s, a), for each goal
    forward = jnp.mean(lse_rows - diag)
    backward = jnp.mean(lse_cols - diag)
    if loss == "forward":
        value = forward
    elif loss == "backward":
        value = backward
    elif loss == "symmetric":
        value = 0.5 * (forward + backward)
    else:
        raise ValueError(f"unknown contrastive loss {loss!r}; known: {', '.join(LOSSES)}")
    return value + penalty * jnp.mean(lse_rows**2), lse_rows


class CRL(Learner):
    """The skill is the goal: the actor sees it beside the state, the critic embeds it as psi(g).
    It learns from goals, not rewards, so it has nothing to carry over to a reward finetune."""

    def __init__(self, config: CRLConfig, obs_size: int, action_size: int, n_rewards: int = 1, skill_size: int = 2):
        if config.energy not in ENERGIES:
            raise ValueError(f"unknown energy {config.energy!r}; known: {', '.join(ENERGIES)}")
        if config.loss not in LOSSES:
            raise ValueError(f"unknown contrastive loss {config.loss!r}; known: {', '.join(LOSSES)}")
        if skill_size < 1:
            raise ValueError(f"CRL needs goals: skill_size must be >= 1, got {skill_size}")
        self.config = config
        self.obs_size, self.skill_size, self.action_size, self.n_rewards = obs_size, skill_size, action_size, n_rewards
        hidden = tuple(config.hidden)
        self.policy = TanhGaussianPolicy(hidden, action_size, config.layer_norm)
        self.sa_net = MLP(hidden, config.repr_dim, config.layer_norm)
        self.g_net = MLP(hidden, config.repr_dim, config.layer_norm)
        self.actor_tx = adam(config.learning_rate)
        self.critic_tx = adam(config.learning_rate)
        self.alpha_tx = adam(config.learning_rate if config.learn_alpha else 0.0)

    def init(self, key) -> CRLParams:
        k_actor, k_sa, k_g = jax.random.split(key, 3)
        actor = self.policy.init(k_actor, self.obs_size + self.skill_size)
        sa = self.sa_net.init(k_sa, jnp.zeros((1, self.obs_size + self.action_size)))
        g = self.g_net.init(k_g, jnp.zeros((1, self.skill_size)))
        critic = {"sa": sa, "g": g}
        log_alpha = jnp.log(jnp.asarray(max(self.config.alpha, 1e-8), jnp.float32))
        return CRLParams(
            actor=actor,
            sa_encoder=sa,
            g_encoder=g,
            log_alpha=log_alpha,
            actor_opt=self.actor_tx.init(actor),
            critic_opt=self.critic_tx.init(critic),
            alpha_opt=self.alpha_tx.init(log_alpha),
            hparams=traced_hparams(self.config, TRACED),
        )

    def sweepable(self) -> dict:
        """Hyperparameters a sweep may vary per member: name -> ``set(params, value) -> params``."""
        setters = actor_critic_sweepable(self.config.learn_alpha, TRACED)
        setters["alpha"] = lambda p, v: p.replace(log_alpha=jnp.log(jnp.maximum(jnp.float32(v), 1e-8)))
        return setters

    # ---- networks ------------------------------------------------------------------------------
    def _alpha(self, params):
        if self.config.learn_alpha or self.config.alpha > 0:
            return jnp.exp(params.log_alpha)
        return jnp.zeros((), jnp.float32)

    def embed(self, critic, state, action, goal):
        phi = self.sa_net.apply(critic["sa"], jnp.concatenate([state, action], -1))
        psi = self.g_net.apply(critic["g"], goal)
        return phi, psi

    def critic_value(self, params: CRLParams, state, action, goal):
        """f(s, a, g) row by row: [B]."""
        phi, psi = self.embed({"sa": params.sa_encoder, "g": params.g_encoder}, state, action, goal)
        return energy_pairs(phi, psi, self.config.energy)

    def logits(self, params: CRLParams, state, action, goal):
        """F_ij = f(s_i, a_i, g_j): [B, B]."""
        phi, psi = self.embed({"sa": params.sa_encoder, "g": params.g_encoder}, state, action, goal)
        return energy_matrix(phi, psi, self.config.energy)

    def act(self, params: CRLParams, obs, skill, key, deterministic: bool = False):
        return self.policy.act(params.actor, jnp.concatenate([obs, skill], -1), key, deterministic)

    # ---- learning ------------------------------------------------------------------------------
    def update(self, params: CRLParams, batch: dict, rewards, key):
        """One step on the critic (InfoNCE on relabelled goals), the actor and maybe alpha."""
        del rewards  # contrastive RL learns from goals alone
        hp, cfg = params.hparams, self.config
        k_shuffle, k_mask, k_action = jax.random.split(key, 3)
        state, goal = batch["obs"], batch["skill"]
        critic = {"sa": params.sa_encoder, "g": params.g_encoder}

        def critic_loss_fn(critic):
            phi, psi = self.embed(critic, state, batch["action"], goal)
            logits = energy_matrix(phi, psi, cfg.energy)
            loss, lse = contrastive_loss(logits, cfg.loss, hp["logsumexp_penalty"])
            return loss, (logits, lse)

        (critic_loss, (logits, lse)), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(critic)
        updates, critic_opt = self.critic_tx.update(grads, params.critic_opt, critic)
        critic = optax.apply_updates(critic, updates)

        # Actor goals: the relabelled ones, a fraction replaced by other rows' goals.
        shuffled = jax.random.permutation(k_shuffle, goal)
        use_random = jax.random.uniform(k_mask, (goal.shape[0], 1)) < hp["actor_random_goals"]
        actor_goal = jnp.where(use_random, shuffled, goal)
        actor_obs = jnp.concatenate([state, actor_goal], -1)
        alpha = self._alpha(params)

        def actor_loss_fn(actor):
            dist, _ = self.policy.dist(actor, actor_obs)
            action, logp = dist.sample_and_log_prob(seed=k_action)
            phi, psi = self.embed(critic, state, action, actor_goal)
            f = energy_pairs(phi, psi, cfg.energy)
            return jnp.mean(alpha * logp - f), logp

        (actor_loss, logp), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(params.actor)
        updates, actor_opt = self.actor_tx.update(grads, params.actor_opt, params.actor)
        actor = optax.apply_updates(params.actor, updates)

        target_entropy = -hp["target_entropy_scale"] * self.action_size
        alpha_loss, log_alpha, alpha_opt = temperature_step(self.alpha_tx, params.log_alpha, params.alpha_opt, logp, target_entropy)

        b = logits.shape[0]
        diag = jnp.diagonal(logits)
        off = (jnp.sum(logits) - jnp.sum(diag)) / (b * (b - 1))
        new = params.replace(
            actor=actor, sa_encoder=critic["sa"], g_encoder=critic["g"], log_alpha=log_alpha,
            actor_opt=actor_opt, critic_opt=critic_opt, alpha_opt=alpha_opt,
        )
        metrics = {
            "loss/critic": critic_loss,
            "loss/actor": actor_loss,
            "loss/alpha": alpha_loss,
            "crl/accuracy": jnp.mean(jnp.argmax(logits, 1) == jnp.arange(b)),
            "crl/logits_pos": jnp.mean(diag),
            "crl/logits_neg": off,
            "crl/logsumexp": jnp.mean(lse),
            "crl/alpha": alpha,
            "crl/entropy": -jnp.mean(logp),
        }
        return new, metrics
