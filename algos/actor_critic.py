"""Actor-critic parts shared by the learners (SAC, CRL): the tanh-Gaussian policy, the entropy
temperature, the optimiser set-up and the sweep setters of their learning rates."""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import jax
import jax.numpy as jnp
import optax

from algos.hparams import with_learning_rate
from algos.networks import MLP

# Bounds of the policy's log standard deviation: wide enough to explore, narrow enough that the
# tanh-squashed log-probabilities stay finite.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def adam(learning_rate: float):
    """Adam whose learning rate is a leaf of its state, so a sweep can set it per member."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


class TanhGaussianPolicy:
    """pi(a | x) = tanh(N(mean(x), diag exp(log_std(x))^2)) from one MLP with 2 * action_size outputs."""

    def __init__(self, hidden: Sequence[int], action_size: int, layer_norm: bool = False):
        self.net = MLP(tuple(hidden), 2 * action_size, layer_norm)

    def init(self, key, input_size: int):
        return self.net.init(key, jnp.zeros((1, input_size)))

    def dist(self, params, x):
        """(the squashed distribution, the pre-tanh mean)."""
        mean, log_std = jnp.split(self.net.apply(params, x), 2, axis=-1)
        log_std = jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
        base = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
        return distrax.Transformed(base, distrax.Block(distrax.Tanh(), ndims=1)), mean

    def act(self, params, x, key, deterministic: bool = False):
        dist, mean = self.dist(params, x)
        if deterministic:
            return jnp.tanh(mean)
        return dist.sample(seed=key)


def temperature_step(tx, log_alpha, alpha_opt, logp, target_entropy):
    """One step of SAC's temperature loss ``log_alpha * mean(-logp - target_entropy)``, which
    raises alpha while the policy's entropy is below its target; returns (loss, log_alpha, opt)."""
    entropy_gap = jax.lax.stop_gradient(-logp - target_entropy)
    loss, grad = jax.value_and_grad(lambda la: la * jnp.mean(entropy_gap))(log_alpha)
    updates, alpha_opt = tx.update(grad, alpha_opt, log_alpha)
    return loss, optax.apply_updates(log_alpha, updates), alpha_opt


def actor_critic_sweepable(learn_alpha: bool, traced) -> dict:
    """Sweep setters shared by actor-critic learners whose params hold ``actor_opt``,
    ``critic_opt``, ``alpha_opt`` and an ``hparams`` dict of the ``traced`` names."""

    def learning_rate(p, v):
        alpha_opt = with_learning_rate(p.alpha_opt, v) if learn_alpha else p.alpha_opt
        return p.replace(
            actor_opt=with_learning_rate(p.actor_opt, v),
            critic_opt=with_learning_rate(p.critic_opt, v),
            alpha_opt=alpha_opt,
        )

    setters = {name: (lambda p, v, name=name: p.replace(hparams={**p.hparams, name: jnp.asarray(v, jnp.float32)})) for name in traced}
    setters["learning_rate"] = learning_rate
    return setters
