"""World specs for tests that build objectives or learners without a world."""

from __future__ import annotations

from worlds.base import WorldSpec


def spec_of(obs_size: int, action_size: int = 2, **changes) -> WorldSpec:
    """A single-agent world spec with these sizes (the rest as the point world's)."""
    facts = dict(name="test", obs_size=obs_size, action_size=action_size, episode_length=100, position_size=2, coverage_cell=1.0)
    return WorldSpec(**{**facts, **changes})
