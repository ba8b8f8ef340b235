"""Run logging: ``metrics.jsonl`` (one JSON object per evaluation and seed) and TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path


class RunLogger:
    def __init__(self, run_dir, num_seeds: int, tensorboard: bool = True, seed_names=None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.seed_names = seed_names or [f"seed_{i}" for i in range(num_seeds)]
        self.writers = []
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writers = [SummaryWriter(str(Path(run_dir) / "tb" / name)) for name in self.seed_names]

    def log(self, rows: list[dict]) -> None:
        """``rows[i]``: the metrics of seed i, each with ``step`` and ``seed``."""
        with open(self.path, "a") as f:
            for row in rows:
                f.write(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n")
        for writer, row in zip(self.writers, rows):
            for key, value in row.items():
                if key not in ("step", "seed") and isinstance(value, (int, float)):
                    writer.add_scalar(key, value, row["step"])
            writer.flush()

    def figure(self, tag: str, figure, step: int) -> None:
        if self.writers:
            self.writers[0].add_figure(tag, figure, step, close=False)
            self.writers[0].flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf
    return value
