"""Worlds: where the agent acts. ``worlds.make(name, **overrides)`` builds one by name."""

from __future__ import annotations

from collections.abc import Callable

from worlds.base import State, World, WorldSpec
from worlds.dmc import DMC_WORLDS  # the table only: Playground and dm_control load when a world is built
from worlds.point import PointWorld
from worlds.point_block import PointBlockWorld


def _brax(name: str) -> Callable:
    def build(**overrides):
        from worlds.brax import BraxWorld

        return BraxWorld(name, **overrides)

    return build


def _dmc(name: str) -> Callable:
    def build(**overrides):
        from worlds.dmc import DMCWorld  # Playground / dm_control load only when built

        return DMCWorld(name, **overrides)

    return build


REGISTRY: dict[str, Callable] = {
    "point": PointWorld,
    "point_block": PointBlockWorld,
    "brax/ant": _brax("ant"),
    "brax/halfcheetah": _brax("halfcheetah"),
    "brax/humanoid": _brax("humanoid"),
    **{f"dmc/{name}": _dmc(name) for name in DMC_WORLDS},
}


def names() -> list[str]:
    return sorted(REGISTRY)


def make(name: str, **overrides) -> World:
    """Build a world by registry name; ``overrides`` are the world's constructor arguments."""
    if name not in REGISTRY:
        raise ValueError(f"unknown world {name!r}; known worlds: {', '.join(names())}")
    try:
        return REGISTRY[name](**overrides)
    except TypeError as e:  # an override the world does not take
        raise ValueError(f"bad option for world {name!r}: {e}") from None


__all__ = ["State", "World", "WorldSpec", "make", "names", "REGISTRY"]
