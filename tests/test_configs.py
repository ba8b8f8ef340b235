"""The composed run configs: every algo x world composes to the snapshot in tests/data/configs.yaml,
and every learner option comes from the learner's config dataclass unless an algo file changes it.

The snapshot keeps the configs unresolved (interpolations as written) and, for the learner, only
what differs from the dataclass defaults: a new default in algos/sac.py changes every config that
does not set that option, and this test accepts it. After a deliberate change to the YAML files,
rewrite the snapshot with ``python -m tests.test_configs`` and review its diff.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

import algos
import skills
from algos.hparams import from_options
from experiments.config import CONFIG_DIR, compose, options

SNAPSHOT = Path(__file__).parent / "data" / "configs.yaml"
WORLD_KEYS = ("world", "network", "loop")  # the blocks a world file sets


def defaults(config_cls) -> dict:
    """A config dataclass's defaults as YAML data (tuples as lists); computed here rather than by
    experiments.config, so that the code under test is not checked against itself."""
    return {f.name: list(f.default) if isinstance(f.default, tuple) else f.default for f in dataclasses.fields(config_cls)}


def learner_class(name: str):
    return algos.LEARNERS[name][1]


def read(path: Path) -> dict:
    """One config file as written (interpolations unresolved), read as Hydra reads it."""
    return OmegaConf.to_container(OmegaConf.load(path))


def compose_all(keys) -> dict:
    """``{(algo, world): unresolved config dict}``; the key ``None`` stands for no overrides."""
    return {
        key: OmegaConf.to_container(compose([f"algo={key[0]}", f"world={key[1]}"] if key else []), resolve=False)
        for key in keys
    }


def default_choices() -> tuple[str, str]:
    """The algo and world config.yaml picks."""
    choices = {k: v for entry in read(CONFIG_DIR / "config.yaml")["defaults"] if isinstance(entry, dict) for k, v in entry.items()}
    return choices["algo"], choices["world"]


def axes() -> list:
    """The configs with no overrides, each algo on the default world, each world with the default
    algo: enough to write the snapshot. The cross product is test_every_algo_on_every_world_*."""
    default_algo, default_world = default_choices()
    return [None, *((a, default_world) for a in options("algo")), *((default_algo, w) for w in options("world"))]


def snapshot(configs: dict) -> dict:
    """What the snapshot records of composed ``configs``: the keys config.yaml alone sets, each world's
    blocks, each algo's block with its learner reduced to what differs from the dataclass."""
    default = configs[None]
    default_algo, default_world = default_choices()
    algo_blocks = {}
    for algo in options("algo"):
        block = configs[algo, default_world]["algo"]
        base = defaults(learner_class(block["learner"]["name"]))
        learner = {k: v for k, v in block["learner"].items() if k not in base or base[k] != v}
        algo_blocks[algo] = {**block, "learner": learner}
    return {
        "default": {"algo": default_algo, "world": default_world},
        "common": {k: v for k, v in default.items() if k not in ("algo", *WORLD_KEYS)},
        "worlds": {w: {k: configs[default_algo, w][k] for k in WORLD_KEYS} for w in options("world")},
        "algos": algo_blocks,
    }


def expected(snap: dict, algo: str, world: str) -> dict:
    """The config ``algo=<algo> world=<world>`` composes to, by the snapshot and the dataclasses."""
    block = snap["algos"][algo]
    learner = {**defaults(learner_class(block["learner"]["name"])), **block["learner"]}
    return {**snap["common"], **snap["worlds"][world], "algo": {**block, "learner": learner}}


@pytest.fixture(scope="module")
def configs():
    return compose_all(axes())


def check_snapshot(configs: dict) -> None:
    snap = yaml.safe_load(SNAPSHOT.read_text())
    assert sorted(snap["algos"]) == options("algo") and sorted(snap["worlds"]) == options("world")
    wrong = [key for key in configs if key and configs[key] != expected(snap, *key)]
    assert not wrong, f"{len(wrong)} configs differ from tests/data/configs.yaml, e.g. {wrong[:5]}"
    assert configs[None] == configs[snap["default"]["algo"], snap["default"]["world"]]


def test_every_config_matches_the_snapshot(configs):
    check_snapshot(configs)


@pytest.mark.slow
def test_every_algo_on_every_world_matches_the_snapshot():
    check_snapshot(compose_all([None, *itertools.product(options("algo"), options("world"))]))


def test_learner_options_are_its_dataclass_fields_and_objective_options_are_accepted(configs):
    for key, raw in configs.items():
        cfg = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
        learner, objective = dict(cfg["algo"]["learner"]), dict(cfg["algo"]["objective"])
        config_cls = learner_class(learner.pop("name"))
        # Every field is listed, so that each one can be overridden without a "+".
        assert set(learner) == {f.name for f in dataclasses.fields(config_cls)}, key
        from_options(config_cls, learner, "learner")
        from_options(skills.OBJECTIVES[objective.pop("name")][1], objective, "objective")
        assert (learner["hidden"], learner["layer_norm"]) == (cfg["network"]["hidden"], cfg["network"]["layer_norm"]), key


def test_no_config_file_restates_a_learner_default(configs):
    for path in sorted((CONFIG_DIR / "learner").glob("*.yaml")):
        base = defaults(learner_class(path.stem))
        own = {k: v for k, v in read(path).items() if k != "defaults"}
        restated = sorted(k for k, v in own.items() if base.get(k) == v)
        assert not restated, f"learner/{path.name} restates defaults of {learner_class(path.stem).__name__}: {restated}"
    for algo in options("algo"):
        name = next(cfg for key, cfg in configs.items() if key and key[0] == algo)["algo"]["learner"]["name"]
        base = {**defaults(learner_class(name)), **read(CONFIG_DIR / "learner" / f"{name}.yaml")}
        own = read(CONFIG_DIR / "algo" / f"{algo}.yaml").get("learner", {})
        restated = sorted(k for k, v in own.items() if base.get(k) == v)
        assert not restated, f"algo/{algo}.yaml restates learner defaults: {restated}"


def test_a_new_dataclass_default_reaches_the_config(monkeypatch):
    """The learner's YAML has no copy of its defaults: they come from the dataclass."""
    from algos.sac import SAC, SACConfig
    from experiments import config

    @dataclasses.dataclass(frozen=True)
    class Changed(SACConfig):
        gamma: float = 0.5

    monkeypatch.setitem(algos.LEARNERS, "sac", (SAC, Changed))
    config.register_learner_defaults()
    try:
        assert compose(["algo=metra"]).algo.learner.gamma == 0.5
    finally:
        monkeypatch.undo()
        config.register_learner_defaults()
    assert compose(["algo=metra"]).algo.learner.gamma == SACConfig.gamma


def test_learner_options_override_from_the_command_line():
    cfg = compose(["algo=dads", "algo.learner.gamma=0.9", "algo.learner.learning_rate=1e-3", "network.hidden=[32,32]"])
    learner = OmegaConf.to_container(cfg.algo.learner, resolve=True)
    assert (learner["gamma"], learner["learning_rate"], learner["hidden"]) == (0.9, 1e-3, [32, 32])
    assert learner["init_alpha"] == 0.1  # DADS's own value survives an override of another option


def write_snapshot(snap: dict) -> None:
    class Dumper(yaml.SafeDumper):
        pass

    # Lists on one line ([256, 256]), mappings one key a line and sorted (the order of composition
    # does not matter): the diff of a change stays readable.
    Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    SNAPSHOT.parent.mkdir(exist_ok=True)
    text = yaml.dump(snap, Dumper=Dumper, sort_keys=True, default_flow_style=False, width=120)
    SNAPSHOT.write_text("# Written by `python -m tests.test_configs`; read by tests/test_configs.py.\n" + text)


if __name__ == "__main__":
    write_snapshot(snapshot(compose_all(axes())))
    print(f"wrote {SNAPSHOT}")
