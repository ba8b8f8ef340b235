"""Compose and check run configs, and build ``world x objective x learner`` from them.

Every check here runs before anything is traced, so bad input costs no compile and gets a
one-line message (``ConfigError``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """Bad user input: reported as one line, before any compile."""


def dataclass_defaults(config_cls) -> dict:
    """A config dataclass's fields and defaults as plain YAML data (tuples become lists); a field
    without a default becomes ``???``, which OmegaConf reports as missing if nothing sets it."""

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (tuple, list)) else value

    out = {}
    for field in dataclasses.fields(config_cls):
        if field.default is not dataclasses.MISSING:
            out[field.name] = plain(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = plain(field.default_factory())
        else:
            out[field.name] = "???"
    return out


def register_learner_defaults() -> None:
    """Register every learner's dataclass defaults as the config ``learner/<name>_defaults``, which
    configs/learner/<name>.yaml extends: the dataclass (e.g. SACConfig in algos/sac.py) is the one
    source of a learner's defaults, and the YAML adds only what the dataclass cannot know.

    Runs on import, so that both ``compose()`` and ``@hydra.main`` (experiments/train.py) see it."""
    from hydra.core.config_store import ConfigStore

    import algos

    store = ConfigStore.instance()
    for name, (_, config_cls) in algos.LEARNERS.items():
        store.store(group="learner", name=f"{name}_defaults", node={"name": name, **dataclass_defaults(config_cls)})


register_learner_defaults()


def options(group: str) -> list[str]:
    """The choices of a config group (``algo``, ``world``): YAML files under configs/<group>/."""
    root = CONFIG_DIR / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def compose(overrides: list[str] = ()) -> DictConfig:
    """The run config for command-line ``overrides`` (``key=value`` strings), as Hydra composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        if key.lstrip("+~") in ("algo", "world") and value not in options(key.lstrip("+~")):
            raise ConfigError(f"unknown {key} {value!r}; known: {', '.join(options(key))}")
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return hydra_compose("config", overrides=list(overrides), return_hydra_config=False)
    except (HydraException, OmegaConfBaseException) as e:
        text = f"{e}\n{e.__cause__ or ''}"
        lines = [line.strip() for line in text.splitlines() if line.strip()] or ["bad override"]
        if any("not in struct" in line for line in lines):
            key = lines[0].split("'")[1] if "'" in lines[0] else "?"
            raise ConfigError(f"unknown config key {key!r} (see experiments/configs/config.yaml for the keys)") from None
        cause = [line for line in lines[1:] if not line.startswith(("To append", "full_key", "object_type"))]
        raise ConfigError(" ".join(lines[:1] + cause[:1])) from None


def validate(cfg: DictConfig) -> None:
    """Reject configs that cannot run, with a message that says which value and why."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        _validate(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"incomplete config: {str(e).splitlines()[0]}") from None


def _validate(cfg: DictConfig) -> None:
    for name in ("total_steps", "num_seeds", "eval_every", "keep_checkpoints"):
        value = cfg[name]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    try:
        loop = loop_config(cfg)
        loop.validate()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"loop: {e}") from None
    if cfg.total_steps % loop.steps_per_epoch:
        raise ConfigError(
            f"total_steps ({cfg.total_steps}) must be a multiple of loop.num_envs*loop.rollout_length "
            f"({loop.num_envs}*{loop.rollout_length}={loop.steps_per_epoch})"
        )
    if cfg.world.name not in _world_names():
        raise ConfigError(f"unknown world {cfg.world.name!r}; known: {', '.join(_world_names())}")


def _world_names() -> list[str]:
    import worlds

    return worlds.names()


def loop_config(cfg: DictConfig):
    from algos.loop import LoopConfig

    return LoopConfig(**OmegaConf.to_container(cfg.loop, resolve=True))


def build(cfg: DictConfig):
    """``(world, objective, learner, loop_config)`` for a composed config; errors as ConfigError."""
    import algos
    import skills
    import worlds

    try:
        world = worlds.make(cfg.world.name, **OmegaConf.to_container(cfg.world.options, resolve=True))
        obj_opts = OmegaConf.to_container(cfg.algo.objective, resolve=True)
        objective = skills.make(obj_opts.pop("name"), obj_opts, world.spec)
        learner_opts = OmegaConf.to_container(cfg.algo.learner, resolve=True)
        learner = algos.make_learner(learner_opts.pop("name"), learner_opts, world.spec, objective.skill_size, objective.n_rewards)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    return world, objective, learner, loop_config(cfg)


def save(cfg: DictConfig, run_dir: str | os.PathLike) -> None:
    OmegaConf.save(cfg, Path(run_dir) / "config.yaml", resolve=True)


def load(run_dir: str | os.PathLike) -> DictConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: it has no config.yaml")
    return OmegaConf.load(path)
