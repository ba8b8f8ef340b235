"""Flax networks shared by learners and skill objectives."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class SpectralDense(nn.Module):
    """A dense layer whose kernel is divided by its largest singular value (1-Lipschitz).

    The singular value comes from power iterations started from a fixed vector on every call, so
    the layer keeps no state; as in spectral normalisation (Miyato et al. 2018) the singular
    vectors are constants for the gradient, sigma = u^T W v is not."""

    features: int
    iterations: int = 8

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        w = jax.lax.stop_gradient(kernel)
        v = jax.random.normal(jax.random.PRNGKey(0), (self.features,))
        for _ in range(self.iterations):
            u = w @ v
            u = u / (jnp.linalg.norm(u) + 1e-12)
            v = w.T @ u
            v = v / (jnp.linalg.norm(v) + 1e-12)
        sigma = u @ kernel @ v
        return x @ (kernel / sigma) + bias


class MLP(nn.Module):
    """ReLU MLP with an optional LayerNorm after each hidden layer and a linear output.

    ``lipschitz=True`` spectrally normalises every layer, making the network 1-Lipschitz (LSD)."""

    hidden: Sequence[int]
    out: int
    layer_norm: bool = False
    lipschitz: bool = False

    @nn.compact
    def __call__(self, x):
        dense = SpectralDense if self.lipschitz else nn.Dense
        for width in self.hidden:
            x = dense(width)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return dense(self.out)(x)


class Critic(nn.Module):
    """Q(obs, action) -> one value per reward term: output [..., n_heads]."""

    hidden: Sequence[int]
    n_heads: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, action):
        return MLP(self.hidden, self.n_heads, self.layer_norm)(jnp.concatenate([obs, action], -1))


class CriticEnsemble(nn.Module):
    """``n_critics`` independent critics evaluated as one batched network: output [n_critics, ..., n_heads]."""

    hidden: Sequence[int]
    n_heads: int
    n_critics: int = 2
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, action):
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n_critics,
        )
        return ensemble(self.hidden, self.n_heads, self.layer_norm)(obs, action)
