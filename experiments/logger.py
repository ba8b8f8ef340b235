"""Run logging: ``metrics.jsonl`` (one JSON object per evaluation and seed) and TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


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

    def video(self, tag: str, frames, step: int, fps: int = 10) -> None:
        """frames: uint8 [T, H, W, 3]. Written as an animated GIF in an image summary, which
        TensorBoard's image plugin plays. (tensorboardX's ``add_video`` does the same but needs
        moviepy; Pillow comes with matplotlib.)"""
        if not self.writers:
            return
        import io

        from PIL import Image
        from tensorboardX.proto.summary_pb2 import Summary

        frames = np.asarray(frames, np.uint8)
        # GIF frames are palette images. One palette for all of them, from the first and last
        # frames (which hold every colour of a skill video), is ~10x faster to encode and ~3x
        # smaller than Pillow's default palette per frame.
        palette = Image.fromarray(np.concatenate([frames[0], frames[-1]])).quantize(255)
        images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
        _, height, width, channels = frames.shape
        image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=buffer.getvalue())
        self.writers[0].file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
        self.writers[0].flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf
    return value
