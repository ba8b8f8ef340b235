"""METRA: skills that travel far in a temporal-distance latent space (Park, Rybkin, Levine 2024).

Reward  r = (phi(s') - phi(s))^T z   (discrete z: a centred mask, r = dphi_z - mean_{k!=z} dphi_k),
recomputed with the current phi whenever the learner samples a batch.
phi maximises r subject to ||phi(s) - phi(s')|| <= 1 for adjacent states, enforced with a dual
variable lambda = exp(log_lambda) and a squared penalty with slack eps:
    pen        = min(eps, 1 - mean_j (phi_j(s') - phi_j(s))^2)
    loss_phi   = -mean(r + stopgrad(lambda) * pen)
    loss_lambda = log_lambda * mean(stopgrad(pen))
As in the reference code the penalty averages over latent dimensions, so the enforced constraint
is ||dphi||^2 <= skill_dim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from algos.networks import MLP
from skills.base import make_prior


@dataclasses.dataclass(frozen=True)
class MetraConfig:
    skill_type: str = "continuous"
    skill_dim: int = 2
    hidden: Sequence[int] = (1024, 1024)
    layer_norm: bool = False
    learning_rate: float = 1e-4
    dual_learning_rate: float = 1e-4
    init_lambda: float = 30.0
    slack: float = 1e-3


@struct.dataclass
class MetraParams:
    phi: dict
    log_lambda: jax.Array
    phi_opt: optax.OptState
    lambda_opt: optax.OptState


def skill_reward(dphi, skill, discrete: bool):
    """(phi(s')-phi(s))^T z, with the centred mask for one-hot skills. dphi, skill: [B, D] -> [B]."""
    if discrete:
        k = skill.shape[-1]
        mask = (skill - jnp.mean(skill, -1, keepdims=True)) * k / (k - 1)
        return jnp.sum(dphi * mask, -1)
    return jnp.sum(dphi * skill, -1)


def dual_losses(reward, dphi, log_lambda, distance, slack):
    """Penalty, phi loss and dual loss of the distance constraint ||dphi||^2 <= distance (per dim mean).

    Shared by every distance-constrained objective: METRA uses distance 1."""
    penalty = jnp.minimum(slack, distance - jnp.mean(dphi**2, -1))
    lam = jax.lax.stop_gradient(jnp.exp(log_lambda))
    phi_loss = -jnp.mean(reward + lam * penalty)
    lambda_loss = log_lambda * jnp.mean(jax.lax.stop_gradient(penalty))
    return penalty, phi_loss, lambda_loss


class Metra:
    n_rewards = 1

    def __init__(self, config: MetraConfig, obs_size: int):
        self.config = config
        self.obs_size = obs_size
        self.prior = make_prior(config.skill_type, config.skill_dim)
        self.skill_size = self.prior.size
        self.phi_net = MLP(tuple(config.hidden), self.skill_size, config.layer_norm)
        adam = optax.inject_hyperparams(optax.adam)
        self.phi_tx = adam(learning_rate=config.learning_rate)
        self.lambda_tx = adam(learning_rate=config.dual_learning_rate)

    def init(self, key) -> MetraParams:
        phi = self.phi_net.init(key, jnp.zeros((1, self.obs_size)))
        log_lambda = jnp.log(jnp.asarray(self.config.init_lambda, jnp.float32))
        return MetraParams(phi, log_lambda, self.phi_tx.init(phi), self.lambda_tx.init(log_lambda))

    def sample(self, key, n: int):
        return self.prior.sample(key, n)

    def embed(self, params: MetraParams, obs):
        """phi(s): used by the reward and by zero-shot goal reaching."""
        return self.phi_net.apply(params.phi, obs)

    def _dphi(self, phi_params, batch):
        both = self.phi_net.apply(phi_params, jnp.concatenate([batch["obs"], batch["next_obs"]], 0))
        now, nxt = jnp.split(both, 2, axis=0)
        return nxt - now

    def reward(self, params: MetraParams, batch) -> jax.Array:
        dphi = self._dphi(params.phi, batch)
        return skill_reward(dphi, batch["skill"], self.prior.discrete)[:, None]

    def update(self, params: MetraParams, batch, key):
        cfg = self.config

        def phi_loss_fn(phi):
            dphi = self._dphi(phi, batch)
            r = skill_reward(dphi, batch["skill"], self.prior.discrete)
            penalty, phi_loss, _ = dual_losses(r, dphi, params.log_lambda, 1.0, cfg.slack)
            return phi_loss, (penalty, r, dphi)

        (phi_loss, (penalty, r, dphi)), grads = jax.value_and_grad(phi_loss_fn, has_aux=True)(params.phi)
        updates, phi_opt = self.phi_tx.update(grads, params.phi_opt, params.phi)
        phi = optax.apply_updates(params.phi, updates)

        def lambda_loss_fn(log_lambda):
            return dual_losses(r, dphi, log_lambda, 1.0, cfg.slack)[2]

        lambda_loss, grad = jax.value_and_grad(lambda_loss_fn)(params.log_lambda)
        updates, lambda_opt = self.lambda_tx.update(grad, params.lambda_opt, params.log_lambda)
        log_lambda = optax.apply_updates(params.log_lambda, updates)

        metrics = {
            "loss/phi": phi_loss,
            "loss/lambda": lambda_loss,
            "metra/lambda": jnp.exp(log_lambda),
            "metra/penalty": jnp.mean(penalty),
            "metra/reward": jnp.mean(r),
            "metra/dphi_sq": jnp.mean(jnp.sum(dphi**2, -1)),
        }
        return MetraParams(phi, log_lambda, phi_opt, lambda_opt), metrics
