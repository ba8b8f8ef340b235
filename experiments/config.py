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
        if not _is_int(value) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not _is_int(cfg.seed) or cfg.seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {cfg.seed!r}")
    hidden = cfg.network.hidden
    if not OmegaConf.is_list(hidden) or not len(hidden) or not all(_is_int(h) and h > 0 for h in hidden):
        raise ConfigError(f"network.hidden must be a list of positive layer widths, got {_plain(hidden)!r}")
    from algos import LEARNERS
    from algos.loop import LoopConfig

    check_fields("loop", OmegaConf.to_container(cfg.loop, resolve=True), LoopConfig)
    learner = OmegaConf.to_container(cfg.algo.learner, resolve=True)
    if learner.get("name") in LEARNERS:  # an unknown name is reported by build()
        check_fields("algo.learner", {k: v for k, v in learner.items() if k != "name"}, LEARNERS[learner["name"]][1])
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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain(value):
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def check_fields(section: str, values: dict, config_cls) -> None:
    """Each value of ``values`` has the type of its field's default in ``config_cls`` (a config
    dataclass), and a number whose default is >= 0 is not negative: a float where an int is
    expected, or a word where a number is, would otherwise reach the compiler. Unknown keys are
    left to the dataclass itself."""
    defaults = dataclass_defaults(config_cls)
    for key, value in values.items():
        default = defaults.get(key, "???")
        if default in ("???", None) or value is None and default is None:
            continue
        name = f"{section}.{key}"
        if isinstance(default, list):
            if not isinstance(value, list) or any(not _same_kind(v, d) for v in value for d in default[:1]):
                raise ConfigError(f"{name} must be a list like {default}, got {value!r}")
            if default and all(d > 0 for d in default) and any(v <= 0 for v in value):
                raise ConfigError(f"{name} must hold positive numbers, got {value!r}")
        elif not _same_kind(value, default):
            kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[type(default)]
            raise ConfigError(f"{name} must be {kind}, got {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(default, bool) and default >= 0 and value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value!r}")


def _same_kind(value, default) -> bool:
    """A value fits a default's type: bool only for bool, int for int, int or float for float."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


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
    """Write config.yaml; an existing one is never overwritten (it describes a run)."""
    path = Path(run_dir) / "config.yaml"
    with open(path, "x") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))


def load(run_dir: str | os.PathLike) -> DictConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: it has no config.yaml")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # YAML and OmegaConf raise many types for a damaged file
        raise ConfigError(f"{path} is unreadable ({type(e).__name__}: {(str(e).splitlines() or [''])[0]})") from None
    if not isinstance(cfg, DictConfig) or "algo" not in cfg or "world" not in cfg:
        raise ConfigError(f"{path} is not a run config (no algo or world in it)")
    return cfg
