"""Run logging: ``metrics.jsonl`` (one JSON object per evaluation and seed) and TensorBoard.

The record is kept consistent with the checkpoints: rows of an epoch are appended before that
epoch's checkpoint is written, so a crash in between leaves rows no checkpoint stands for. A
resume therefore trims the record to the restored epoch (``trim_record``) and tells TensorBoard to
hide the events past it (``purge_step``), before the rows are written again.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def read_rows(path) -> tuple[list[dict], list[str]]:
    """The rows of a JSON-lines record and a note per line that is not a JSON object (a line cut
    short by a crash, or damaged), which is skipped."""
    rows, problems = [], []
    for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            problems.append(f"{path}:{number}: not a JSON object ({line[:60]!r}); skipped")
    return rows, problems


def trim_record(path, epoch: int) -> str | None:
    """Keep only the rows of ``path`` up to ``epoch`` (the restored checkpoint) and drop damaged
    lines; the file is replaced atomically. Returns what was dropped, as a line to print, or None."""
    path = Path(path)
    if not path.is_file():
        return None
    rows, problems = read_rows(path)
    kept = [row for row in rows if row.get("epoch", 0) <= epoch]
    text = path.read_bytes()
    if len(kept) == len(rows) and not problems and (not text or text.endswith(b"\n")):
        return None  # nothing to drop, and the next row starts on a line of its own
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return (
        f"{path}: kept the rows up to epoch {epoch} (the restored checkpoint); dropped {len(rows) - len(kept)} "
        f"row(s) of later epochs and {len(problems)} damaged line(s)"
    )


class RunLogger:
    def __init__(self, run_dir, num_seeds: int, tensorboard: bool = True, seed_names=None, purge_step: int | None = None):
        """``purge_step``: on a resume, the first step not covered by the restored checkpoint;
        TensorBoard hides the events that an earlier process wrote from that step on."""
        self.path = Path(run_dir) / "metrics.jsonl"
        self.seed_names = seed_names or [f"seed_{i}" for i in range(num_seeds)]
        self.writers = []
        if tensorboard:
            from tensorboardX import SummaryWriter

            # The suffix keeps a resume's event file from replacing (same second, same name) the
            # previous one, and sorts it after it, as the purge needs.
            suffix = f".from_step_{purge_step or 0:012d}"
            self.writers = [
                SummaryWriter(str(Path(run_dir) / "tb" / name), purge_step=purge_step, filename_suffix=suffix) for name in self.seed_names
            ]

    def log(self, rows: list[dict]) -> None:
        """``rows[i]``: the metrics of seed i, each with ``step`` and ``seed``."""
        # One write of whole lines, flushed to disk: a crash leaves whole rows or one cut line.
        with open(self.path, "a") as f:
            f.write("".join(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())
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
        # frames (which hold every colour of a skill video), is faster to encode and smaller than
        # Pillow's default palette per frame (README's design notes give the measured gain).
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
