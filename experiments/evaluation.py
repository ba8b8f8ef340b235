"""Evaluation metrics computed on the host from eval rollouts."""

from __future__ import annotations

import numpy as np


def coverage(positions, cell: float) -> int:
    """METRA's state coverage: distinct floor(position / cell) cells over all given positions.

    ``positions``: [..., P] (any leading axes: time, episodes)."""
    positions = np.asarray(positions)
    flat = positions.reshape(-1, positions.shape[-1])
    return int(len(np.unique(np.floor(flat / cell), axis=0)))
