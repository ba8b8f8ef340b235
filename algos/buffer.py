"""Uniform replay over transitions, on flashbax.

A thin layer that fixes the size up front (never "the whole run" by default), reports its memory,
and flattens a rollout's [time, worlds, ...] arrays into transitions before adding them.
"""

from __future__ import annotations

import dataclasses

import flashbax as fbx
import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Replay:
    capacity: int
    batch_size: int
    example: dict  # one transition (unbatched), used for shapes and dtypes

    def __post_init__(self):
        if self.capacity < self.batch_size:
            raise ValueError(f"buffer_size ({self.capacity}) must be at least batch_size ({self.batch_size})")
        object.__setattr__(
            self,
            "_buffer",
            fbx.make_item_buffer(
                max_length=self.capacity,
                min_length=self.batch_size,
                sample_batch_size=self.batch_size,
                add_sequences=True,
            ),
        )

    @property
    def bytes(self) -> int:
        """Memory held by the stored transitions."""
        per = sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape)) for x in jax.tree.leaves(self.example))
        return per * self.capacity

    def init(self):
        return self._buffer.init(self.example)

    def add(self, state, transitions):
        """Add transitions whose leaves have any leading shape, e.g. [T, N, ...]."""
        n_lead = _lead_ndim(transitions, self.example)
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[n_lead:]), transitions)
        return self._buffer.add(state, flat)

    def sample(self, state, key) -> dict:
        return self._buffer.sample(state, key).experience


def _lead_ndim(batch, example) -> int:
    leaf, ex = jax.tree.leaves(batch)[0], jax.tree.leaves(example)[0]
    return leaf.ndim - ex.ndim
