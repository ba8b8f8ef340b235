"""Loading saved runs: a run directory's config and Trainer, and a TrainState restored from its
checkpoints. Used by ``experiments.evaluate``, ``experiments.finetune`` and the notebooks."""

from __future__ import annotations

import sys
from pathlib import Path

from experiments.config import ConfigError, build, load, validate


def load_trainer(run_dir, checkpoint: int | None = None):
    """``(trainer, state, epoch, cfg)`` of a saved run: its Trainer and a restored TrainState
    (leading axis: seeds) — the newest checkpoint, or checkpoint ``checkpoint`` (an epoch)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    cfg = load(run_dir)
    validate(cfg)
    from experiments.checkpoint import Checkpoints

    checkpoints = Checkpoints(run_dir, cfg.keep_checkpoints)
    if not checkpoints.steps():
        raise ConfigError(f"no checkpoint to evaluate in {checkpoints.directory}")
    checkpoints.check_format()  # before the build: a run this code cannot read goes no further
    world, objective, learner, loop = build(cfg)

    import jax

    from algos.loop import make_train
    from experiments import sweep
    from experiments.runtime import enable_compilation_cache

    enable_compilation_cache()
    trainer = make_train(loop, world, objective, learner)
    abstract = jax.eval_shape(trainer.init_members(), sweep.keys(cfg, sweep.members(cfg)))
    epoch, state, _ = checkpoints.restore(abstract, warn=lambda msg, file=None: print(msg, file=sys.stderr), step=checkpoint)
    return trainer, state, epoch, cfg
