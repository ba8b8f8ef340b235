"""Orbax checkpoints of the whole TrainState (params, optimizer states, buffer, worlds, RNG).

Orbax writes each step into a temporary directory and renames it when complete, so a crash never
leaves a half-written checkpoint that looks finished. On restore, an unreadable newest checkpoint
is reported and the previous good one is used.

Every checkpoint's meta names its format (``CHECKPOINT_FORMAT``); a run written in another format
is refused with one line before anything is compiled or restored.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from experiments.config import ConfigError

# The layout of the stored TrainState. A checkpoint is a flat list of the state's leaves, so one
# written for another layout cannot be restored into this one: raise the number whenever the
# TrainState gains, loses or reorders leaves. Checkpoints written before the number existed have
# no "format" in their meta; they are format 1.
CHECKPOINT_FORMAT = 2


class Checkpoints:
    def __init__(self, run_dir, keep: int = 3):
        self.directory = Path(run_dir).absolute() / "checkpoints"
        # cleanup_tmp_directories: the half-written checkpoint of a crash or a full disk is removed
        # when the run is resumed (it was never a checkpoint: orbax renames a complete one).
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False, cleanup_tmp_directories=True)
        with _quiet():  # it reads every checkpoint's metadata; a corrupt one is reported by restore
            self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state, meta: dict) -> None:
        meta = {**meta, "format": CHECKPOINT_FORMAT}
        with _quiet():  # a failed write (disk full) is raised to the caller, who reports it in one line
            self.manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(_stored_leaves(state)), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            self.manager.wait_until_finished()

    def steps(self) -> list[int]:
        with _quiet():
            self.manager.reload()
            return sorted(self.manager.all_steps())

    def check_format(self) -> None:
        """Refuse, as a one-line ConfigError, a run whose checkpoints this code cannot read.

        Reads only the small JSON meta, so a run of another format fails before any compile."""
        found = self._format()
        if found is not None and found != CHECKPOINT_FORMAT:
            raise ConfigError(
                f"{self.directory.parent} holds checkpoints of format version {found}; this code reads version "
                f"{CHECKPOINT_FORMAT} (the TrainState layout changed): train the run again, or use the code that wrote it"
            )

    def _format(self):
        """The format of the newest checkpoint whose meta is readable; None if none is (``restore``
        then reports them as corrupt)."""
        for step in reversed(self.steps()):
            try:
                with _quiet():
                    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            except Exception:  # orbax raises many types for unreadable files
                continue
            return meta.get("format", 1)
        return None

    def restore(self, abstract_state, warn=print, step: int | None = None):
        """The newest readable checkpoint as ``(step, state, meta)``; older ones stand in for a corrupt one.

        ``step`` asks for one checkpoint exactly (no fallback)."""
        steps = self.steps()
        if not steps:
            raise ConfigError(f"no checkpoint to resume from in {self.directory}")
        if step is not None:
            if step not in steps:
                raise ConfigError(f"no checkpoint {step} in {self.directory}; there are {steps}")
            steps = [step]
        errors = []
        for step in reversed(steps):
            try:
                with _quiet():
                    restored = self.manager.restore(
                        step,
                        args=ocp.args.Composite(
                            state=ocp.args.StandardRestore(_stored_leaves(_on_this_process(abstract_state))),
                            meta=ocp.args.JsonRestore(),
                        ),
                    )
                state = _rebuild(restored["state"], abstract_state)
            except Exception as e:  # orbax raises many types for unreadable or mismatched files
                errors.append(step)
                reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
                warn(f"checkpoint step {step} in {self.directory} is unreadable ({reason}); trying an older one", file=sys.stderr)
                continue
            if errors:
                moved = self._set_aside(errors)
                warn(f"resuming from step {step}, the newest good checkpoint (corrupt ones moved to {moved})", file=sys.stderr)
            return step, state, dict(restored["meta"])
        raise ConfigError(f"every checkpoint in {self.directory} is unreadable (steps {errors})")

    def _set_aside(self, steps: list[int]) -> Path:
        """Move unreadable checkpoints out of orbax's way (kept, not deleted, for inspection)."""
        aside = self.directory.parent / "corrupt_checkpoints"
        aside.mkdir(exist_ok=True)
        for step in steps:
            shutil.move(str(self.directory / str(step)), str(aside / f"{step}-{int(time.time())}"))
        self.manager.reload()
        return aside


@contextlib.contextmanager
def _quiet():
    """Reading a corrupt checkpoint, orbax logs each failure (through absl, several lines a file)
    and asyncio its closed event loops; ``restore`` reports the failure as one line instead."""
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _on_this_process(abstract_state):
    """Abstract leaves placed on this process's first device: a checkpoint written by a run
    sharded over several devices restores anywhere; the caller re-shards as it needs."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract_state)


def _stored_leaves(state) -> dict:
    """The TrainState as a flat dict of its non-empty leaves.

    Orbax refuses zero-size arrays (MJX physics state has some); they carry no data, so they are
    rebuilt from the run's own abstract state on restore."""
    return {f"{i:05d}": x for i, x in enumerate(jax.tree.leaves(state)) if x.size > 0}


def _rebuild(stored: dict, abstract_state):
    """The inverse of ``_stored_leaves``; shapes and dtypes must match the run's own."""
    leaves, treedef = jax.tree.flatten(abstract_state)
    out = []
    for i, want in enumerate(leaves):
        if want.size == 0:
            out.append(jnp.zeros(want.shape, want.dtype))
            continue
        got = stored[f"{i:05d}"]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ValueError(f"checkpoint leaf {i} is {got.shape} {got.dtype}, this run expects {want.shape} {want.dtype}")
        out.append(got)
    if len(stored) != sum(x.size > 0 for x in leaves):
        raise ValueError("checkpoint does not match this run's TrainState")
    return jax.tree.unflatten(treedef, out)
