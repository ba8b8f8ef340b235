"""Sweeps in one compiled program: seeds x a grid of numeric hyperparameters as one leading axis.

``sweep={algo.learner.learning_rate: [1e-4, 3e-4], algo.objective.init_lambda: [10, 30]}`` with
``num_seeds=2`` trains 2 x 2 x 2 = 8 *members* side by side. Only hyperparameters that live in the
TrainState as leaves (``Trainer.sweepable()``: learning rates, reward scale, gamma, tau, alpha and
lambda initial values, slack, ...) can be swept; shapes, sizes and network widths are static and
need one program each (Hydra multirun). Each grid point sees the same seeds (common random numbers).

On several devices the member axis is sharded with ``jax.sharding`` (a 1-D ``Mesh`` named
``members`` and ``NamedSharding``), so the same program runs data-parallel over members.
"""

from __future__ import annotations

import dataclasses
import itertools

from omegaconf import OmegaConf

from experiments.config import ConfigError

PREFIX = "algo."


@dataclasses.dataclass(frozen=True)
class Member:
    seed_index: int  # which of the run's seeds (seed + seed_index)
    settings: dict  # swept config path -> value

    def name(self, seed: int) -> str:
        parts = [f"seed_{seed + self.seed_index}"]
        parts += [f"{path.split('.')[-1]}={value:g}" for path, value in self.settings.items()]
        return "-".join(parts)


def grid(cfg) -> dict:
    """The sweep as {config path: [values]} (empty without a sweep)."""
    sweep = OmegaConf.to_container(cfg.sweep, resolve=True) if cfg.get("sweep") else {}
    if not isinstance(sweep, dict):
        raise ConfigError(f"sweep must be a mapping of config paths to value lists, got {sweep!r}")
    return sweep


def validate(cfg, sweepable: list[str]) -> None:
    """Reject sweeps over static or unknown fields and malformed value lists."""
    allowed = sorted(PREFIX + name for name in sweepable)
    for path, values in grid(cfg).items():
        if path not in allowed:
            if OmegaConf.select(cfg, path, default="<missing>") == "<missing>":
                raise ConfigError(f"cannot sweep {path}: no such config key; sweepable: {', '.join(allowed)}")
            raise ConfigError(
                f"cannot sweep {path}: it is static (it changes shapes or the program); "
                f"sweepable (traced) fields: {', '.join(allowed)}; use Hydra multirun (-m) for static ones"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep {path} needs a non-empty list of values, got {values!r}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"sweep {path} values must be numbers, got {values!r}")


def members(cfg) -> list[Member]:
    """Every (seed, grid point) pair, grid-major: member i = grid point i // num_seeds."""
    sweep = grid(cfg)
    paths = list(sweep)
    out = []
    for point in itertools.product(*(sweep[p] for p in paths)):
        for s in range(cfg.num_seeds):
            out.append(Member(s, dict(zip(paths, point))))
    return out


def seed_keys(seed: int, seed_indices):
    """The PRNG keys of a run's seeds: seed index i gets fold_in(PRNGKey(seed), i).

    The one place experiments/ derives per-seed keys, so that a seed starts from the same key
    whether train, finetune or the benchmark runs it."""
    import jax
    import jax.numpy as jnp

    return jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(jnp.asarray(list(seed_indices)))


def keys(cfg, member_list: list[Member]):
    """One PRNG key per member: its seed's key, so every grid point sees the same seeds."""
    return seed_keys(cfg.seed, [m.seed_index for m in member_list])


def apply(trainer, state, member_list: list[Member]):
    """Write each member's swept values into its slice of a member-batched TrainState."""
    import jax
    import jax.numpy as jnp

    if not member_list or not member_list[0].settings:
        return state
    values = {
        path[len(PREFIX):]: jnp.asarray([m.settings[path] for m in member_list], jnp.float32)
        for path in member_list[0].settings
    }
    return jax.jit(jax.vmap(trainer.set_hyperparameters))(state, values)


def member_sharding(n_members: int):
    """A NamedSharding that splits the member axis over all devices (None on one device)."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    if len(devices) == 1:
        return None
    if n_members % len(devices):
        raise ConfigError(
            f"{n_members} members (num_seeds x sweep grid) do not divide over {len(devices)} devices; "
            f"use a multiple of {len(devices)}"
        )
    return NamedSharding(Mesh(devices, ("members",)), PartitionSpec("members"))
