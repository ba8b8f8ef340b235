"""Hyperparameter plumbing: plain config data (YAML dicts) -> frozen config dataclasses, strictly;
traced hyperparameters as leaves of the params."""

from __future__ import annotations


def from_options(config_cls, options: dict, name: str):
    """Build ``config_cls`` from a dict; lists become tuples; an unknown key is a ValueError."""
    fields = config_cls.__dataclass_fields__
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"{name} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(fields))}")
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


def with_learning_rate(opt_state, value):
    """An ``optax.inject_hyperparams`` state with its learning rate replaced (a traced leaf)."""
    import jax.numpy as jnp

    rate = jnp.asarray(value, dtype=jnp.asarray(opt_state.hyperparams["learning_rate"]).dtype)
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": rate})


def traced_hparams(config, traced) -> dict:
    """The ``traced`` config fields as f32 leaves: the params' ``hparams`` dict a sweep may vary."""
    import jax.numpy as jnp

    return {name: jnp.asarray(getattr(config, name), jnp.float32) for name in traced}

