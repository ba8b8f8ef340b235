"""Flax networks shared by learners and skill objectives."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
    """ReLU MLP with an optional LayerNorm after each hidden layer and a linear output."""

    hidden: Sequence[int]
    out: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.Dense(width)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return nn.Dense(self.out)(x)


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
