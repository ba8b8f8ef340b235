"""The distance-maximising family: LSD, CSD and METRA (Park et al., 2022-2024).

All three learn a state representation phi and reward skills for travelling along z in it:

    r = (phi(s') - phi(s))^T z        (one-hot z: a centred mask, r = dphi_z - mean_{k!=z} dphi_k)

recomputed with the current phi whenever the learner samples a batch. They differ only in how
phi is kept from growing without bound — the ``constraint`` of ``DistanceConfig``:

- ``lipschitz`` (LSD): phi is 1-Lipschitz in state space by spectral normalisation of every
  layer; phi maximises r alone, there is no dual variable.
- ``temporal`` (METRA): ||phi(s') - phi(s)||^2 <= d with d = 1 for adjacent states.
- ``controllability`` (CSD): d = d_CSD(s, s') from a jointly trained Gaussian transition model
  q(s' - s | s) = N(mu(s), diag sigma(s)^2): the squared Mahalanobis surprise of the step, with
  the precision normalised to unit determinant and averaged over state dims (as in the reference
  code). Rare, hard transitions get a large d, so phi may stretch only along them.

For the dual constraints (squared penalty with slack eps, lambda = exp(log_lambda)):
    pen         = min(eps, d - mean_j dphi_j^2)
    loss_phi    = -mean(r + stopgrad(lambda) * pen)
    loss_lambda = log_lambda * mean(stopgrad(pen))
As in the reference code the penalty averages over latent dims, so METRA's enforced constraint is
||dphi||^2 <= skill_dim. See reference/algos.md section 2 for the hyperparameters.
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
from skills.base import SkillObjective, make_prior

CONSTRAINTS = ("lipschitz", "temporal", "controllability")


@dataclasses.dataclass(frozen=True)
class DistanceConfig:
    constraint: str = "temporal"
    skill_type: str = "continuous"  # continuous (unit sphere) or discrete (one-hot, centred mask)
    skill_dim: int = 2
    hidden: Sequence[int] = (1024, 1024)
    layer_norm: bool = False
    learning_rate: float = 1e-4  # phi (and the CSD transition model)
    dual_learning_rate: float = 1e-4
    init_lambda: float = 30.0
    slack: float = 1e-3


@dataclasses.dataclass(frozen=True)
class MetraConfig(DistanceConfig):
    constraint: str = "temporal"


@dataclasses.dataclass(frozen=True)
class LSDConfig(DistanceConfig):
    constraint: str = "lipschitz"


@dataclasses.dataclass(frozen=True)
class CSDConfig(DistanceConfig):
    constraint: str = "controllability"
    init_lambda: float = 3000.0
    slack: float = 1e-6


@struct.dataclass
class DistanceParams:
    phi: dict
    phi_opt: optax.OptState
    log_lambda: jax.Array  # unused (and constant) under the Lipschitz constraint
    lambda_opt: optax.OptState
    slack: jax.Array  # traced, so that a sweep can vary it
    model: dict | None = None  # CSD's transition model
    model_opt: optax.OptState | None = None


def skill_reward(dphi, skill, discrete: bool):
    """(phi(s')-phi(s))^T z, with the centred mask for one-hot skills. dphi, skill: [B, D] -> [B]."""
    if discrete:
        k = skill.shape[-1]
        mask = (skill - jnp.mean(skill, -1, keepdims=True)) * k / (k - 1)
        return jnp.sum(dphi * mask, -1)
    return jnp.sum(dphi * skill, -1)


def dual_losses(reward, dphi, log_lambda, distance, slack):
    """Penalty, phi loss and dual loss of the constraint mean_j dphi_j^2 <= distance."""
    penalty = jnp.minimum(slack, distance - jnp.mean(dphi**2, -1))
    lam = jax.lax.stop_gradient(jnp.exp(log_lambda))
    phi_loss = -jnp.mean(reward + lam * penalty)
    lambda_loss = log_lambda * jnp.mean(jax.lax.stop_gradient(penalty))
    return penalty, phi_loss, lambda_loss


def gaussian_nll(delta, mean, log_std):
    """-log N(delta; mean, diag exp(log_std)^2), summed over dims. [B, S] -> [B]."""
    z = (delta - mean) * jnp.exp(-log_std)
    return jnp.sum(0.5 * z**2 + log_std + 0.5 * jnp.log(2 * jnp.pi), -1)


def csd_distance(delta, mean, log_std):
    """CSD's controllability-aware distance of a step ``delta = s' - s`` under N(mean, sigma^2).

    c = 1/sigma normalised by its geometric mean (unit-determinant precision), then
    d = mean_j (delta_j - mean_j)^2 * c_hat_j^2."""
    log_c = -log_std
    c_hat_sq = jnp.exp(2 * (log_c - jnp.mean(log_c, -1, keepdims=True)))
    return jnp.mean((delta - mean) ** 2 * c_hat_sq, -1)


class DistanceSkills(SkillObjective):
    goal_reaching = True  # z = (phi(g) - phi(s)) / ||phi(g) - phi(s)||

    def __init__(self, config: DistanceConfig, obs_size: int):
        if config.constraint not in CONSTRAINTS:
            raise ValueError(f"unknown constraint {config.constraint!r}; known: {', '.join(CONSTRAINTS)}")
        if config.constraint != "lipschitz" and (config.init_lambda <= 0 or config.slack < 0):
            raise ValueError("init_lambda must be positive and slack non-negative")
        self.config = config
        self.obs_size = obs_size
        self.prior = make_prior(config.skill_type, config.skill_dim)
        lipschitz = config.constraint == "lipschitz"
        self.phi_net = MLP(tuple(config.hidden), self.skill_size, config.layer_norm and not lipschitz, lipschitz)
        self.model_net = MLP(tuple(config.hidden), 2 * obs_size, config.layer_norm)
        adam = optax.inject_hyperparams(optax.adam)
        self.phi_tx = adam(learning_rate=config.learning_rate)
        self.lambda_tx = adam(learning_rate=0.0 if lipschitz else config.dual_learning_rate)

    @property
    def uses_model(self) -> bool:
        return self.config.constraint == "controllability"

    def init(self, key) -> DistanceParams:
        k_phi, k_model = jax.random.split(key)
        obs = jnp.zeros((1, self.obs_size))
        phi = self.phi_net.init(k_phi, obs)
        log_lambda = jnp.log(jnp.asarray(self.config.init_lambda, jnp.float32))
        slack = jnp.asarray(self.config.slack, jnp.float32)
        params = DistanceParams(phi, self.phi_tx.init(phi), log_lambda, self.lambda_tx.init(log_lambda), slack)
        if self.uses_model:
            model = self.model_net.init(k_model, obs)
            params = params.replace(model=model, model_opt=self.phi_tx.init(model))
        return params

    def sweepable(self) -> dict:
        """Hyperparameters a sweep may vary per member: name -> ``set(params, value) -> params``."""

        def learning_rate(p, v):
            model_opt = with_learning_rate(p.model_opt, v) if self.uses_model else p.model_opt
            return p.replace(phi_opt=with_learning_rate(p.phi_opt, v), model_opt=model_opt)

        setters = {"learning_rate": learning_rate}
        if self.config.constraint != "lipschitz":
            setters["dual_learning_rate"] = lambda p, v: p.replace(lambda_opt=with_learning_rate(p.lambda_opt, v))
            setters["init_lambda"] = lambda p, v: p.replace(log_lambda=jnp.log(jnp.float32(v)))
            setters["slack"] = lambda p, v: p.replace(slack=jnp.float32(v))
        return setters

    def embed(self, params: DistanceParams, obs):
        """phi(s): used by the reward and by zero-shot goal reaching."""
        return self.phi_net.apply(params.phi, obs)

    def goal_skill(self, params: DistanceParams, obs, goal_obs):
        """Zero-shot goal reaching: the skill pointing from phi(s) to phi(g).

        Continuous: z = (phi(g) - phi(s)) / ||phi(g) - phi(s)||; discrete: the one-hot of the
        latent dimension that gains most, argmax_k (phi(g) - phi(s))_k."""
        diff = self.embed(params, goal_obs) - self.embed(params, obs)
        if self.prior.discrete:
            return jax.nn.one_hot(jnp.argmax(diff, -1), self.skill_size)
        return diff / (jnp.linalg.norm(diff, axis=-1, keepdims=True) + 1e-6)

    def _dphi(self, phi_params, batch):
        both = self.phi_net.apply(phi_params, jnp.concatenate([batch["obs"], batch["next_obs"]], 0))
        now, nxt = jnp.split(both, 2, axis=0)
        return nxt - now

    def _model(self, model_params, obs):
        mean, log_std = jnp.split(self.model_net.apply(model_params, obs), 2, -1)
        return mean, jnp.clip(log_std, -10.0, 5.0)

    def distance(self, params: DistanceParams, batch):
        """The per-transition bound d(s, s') on mean_j dphi_j^2 ([B]); 1 for METRA."""
        if self.uses_model:
            mean, log_std = self._model(params.model, batch["obs"])
            return jax.lax.stop_gradient(csd_distance(batch["next_obs"] - batch["obs"], mean, log_std))
        return jnp.ones(batch["obs"].shape[:1])

    def reward(self, params: DistanceParams, batch) -> jax.Array:
        dphi = self._dphi(params.phi, batch)
        return skill_reward(dphi, batch["skill"], self.prior.discrete)[:, None]

    def update(self, params: DistanceParams, batch, key):
        cfg = self.config
        metrics = {}
        if self.uses_model:
            params, metrics = self._update_model(params, batch)
        distance = self.distance(params, batch)
        lipschitz = cfg.constraint == "lipschitz"

        def phi_loss_fn(phi):
            dphi = self._dphi(phi, batch)
            r = skill_reward(dphi, batch["skill"], self.prior.discrete)
            if lipschitz:
                return -jnp.mean(r), (jnp.zeros_like(r), r, dphi)
            penalty, phi_loss, _ = dual_losses(r, dphi, params.log_lambda, distance, params.slack)
            return phi_loss, (penalty, r, dphi)

        (phi_loss, (penalty, r, dphi)), grads = jax.value_and_grad(phi_loss_fn, has_aux=True)(params.phi)
        updates, phi_opt = self.phi_tx.update(grads, params.phi_opt, params.phi)
        params = params.replace(phi=optax.apply_updates(params.phi, updates), phi_opt=phi_opt)
        metrics.update(
            {
                "loss/phi": phi_loss,
                "distance/reward": jnp.mean(r),
                "distance/dphi_sq": jnp.mean(jnp.sum(dphi**2, -1)),
            }
        )
        if lipschitz:
            return params, metrics

        def lambda_loss_fn(log_lambda):
            return dual_losses(r, dphi, log_lambda, distance, params.slack)[2]

        lambda_loss, grad = jax.value_and_grad(lambda_loss_fn)(params.log_lambda)
        updates, lambda_opt = self.lambda_tx.update(grad, params.lambda_opt, params.log_lambda)
        params = params.replace(log_lambda=optax.apply_updates(params.log_lambda, updates), lambda_opt=lambda_opt)
        metrics.update(
            {
                "loss/lambda": lambda_loss,
                "distance/lambda": jnp.exp(params.log_lambda),
                "distance/penalty": jnp.mean(penalty),
                "distance/bound": jnp.mean(distance),
            }
        )
        return params, metrics

    def _update_model(self, params: DistanceParams, batch):
        """CSD's transition model: maximum likelihood of s' - s under N(mu(s), sigma(s)^2)."""
        delta = batch["next_obs"] - batch["obs"]

        def loss_fn(model):
            mean, log_std = self._model(model, batch["obs"])
            return jnp.mean(gaussian_nll(delta, mean, log_std))

        loss, grads = jax.value_and_grad(loss_fn)(params.model)
        updates, model_opt = self.phi_tx.update(grads, params.model_opt, params.model)
        params = params.replace(model=optax.apply_updates(params.model, updates), model_opt=model_opt)
        return params, {"loss/model": loss}
