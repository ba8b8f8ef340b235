"""Train a skill-discovery method: ``python -m experiments.train [key=value ...]``.

Default: METRA on the 2-D point world. Examples::

    python -m experiments.train world=brax/ant num_seeds=8
    python -m experiments.train resume=runs/metra_point_20261125-120000 total_steps=400000

The run directory holds config.yaml, metrics.jsonl, TensorBoard files (tb/), orbax checkpoints
(checkpoints/) and skill-trajectory PNGs (plots/).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from experiments import sweep
from experiments.config import ConfigError, build, compose, load, save, validate

# What may change when a run is resumed: how long it goes on and how it reports, nothing that
# changes what it computes.
RESUMABLE = ("total_steps", "progress", "tensorboard", "plots", "video", "keep_checkpoints")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the run stopped without checkpointing the bad state."""


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    state: object  # the final TrainState (leading axis: seeds)
    rows: list  # the last evaluation's metrics, one dict per seed


def resolve_config(overrides: list[str]) -> DictConfig:
    """The config for a new run (composed from overrides) or a resumed one (its saved config)."""
    pairs = dict(o.split("=", 1) for o in overrides if "=" in o)
    resume = pairs.pop("resume", None)
    if resume in (None, "null", "None", ""):
        return compose(overrides)
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise ConfigError(f"resume directory {run_dir} does not exist")
    if not (run_dir / "checkpoints").is_dir() or not any(p.name.isdigit() for p in (run_dir / "checkpoints").iterdir()):
        raise ConfigError(f"no checkpoint to resume from in {run_dir / 'checkpoints'}")
    cfg = load(run_dir)
    changed = sorted(set(pairs) - set(RESUMABLE))
    if changed:
        raise ConfigError(f"cannot change {', '.join(changed)} when resuming; only {', '.join(RESUMABLE)}")
    for key, value in pairs.items():
        OmegaConf.update(cfg, key, yaml.safe_load(value))
    cfg.resume = str(run_dir)
    cfg.run_dir = str(run_dir)
    return cfg


def _first_nonfinite(metrics: dict, first_epoch: int):
    """(loss name, epoch, member index, value) of the first non-finite loss in a chunk, else None."""
    for name in sorted(k for k in metrics if k.startswith("loss/")):
        values = np.asarray(metrics[name])  # [members, epochs]
        bad = ~np.isfinite(values)
        if bad.any():
            seed, epoch = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
            return name, first_epoch + int(epoch) + 1, int(seed), float(values[seed, epoch])
    return None


def run(cfg: DictConfig, initial_state=None) -> RunResult:
    """Train (or resume) the run described by ``cfg``; see the module docstring.

    ``initial_state`` (a member-batched TrainState) replaces the fresh init of a new run; the
    finetuning CLI passes one that holds pretrained weights."""
    validate(cfg)
    world, objective, learner, loop = build(cfg)
    run_dir = Path(cfg.run_dir)
    resuming = cfg.resume is not None
    from experiments.checkpoint import Checkpoints

    if not resuming and (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir()):
        raise ConfigError(f"run_dir {run_dir} already holds a run; continue it with resume={run_dir}")
    if resuming and not Checkpoints(run_dir).steps():
        raise ConfigError(f"no checkpoint to resume from in {run_dir / 'checkpoints'}")

    # Everything above is cheap and checks the input; JAX work starts here.
    import jax
    from tqdm import tqdm

    from algos.loop import make_train
    from experiments.eval_protocol import Evaluator, log_skill_video, save_skill_figure
    from experiments.logger import RunLogger
    from experiments.runtime import enable_compilation_cache

    enable_compilation_cache()
    trainer = make_train(loop, world, objective, learner)
    sweep.validate(cfg, list(trainer.sweepable()))
    members = sweep.members(cfg)
    n_members = len(members)
    sharding = sweep.member_sharding(n_members)
    keys = sweep.keys(cfg, members)
    init = trainer.init_members()
    # The state is donated: the replay buffer is updated in place instead of copied every chunk.
    run_chunk = trainer.run_members()

    log = tqdm.write
    log(
        f"replay: {loop.buffer_size:,} transitions x {n_members} member(s) = "
        f"{trainer.replay.bytes * n_members / 2**20:,.1f} MiB; devices: {jax.devices()}"
    )
    checkpoints = Checkpoints(run_dir, cfg.keep_checkpoints)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resuming:
        abstract = jax.eval_shape(init, keys)
        step, state, meta = checkpoints.restore(abstract, warn=lambda msg, file=None: log(msg, file=file))
        epoch = int(meta["epoch"])
        log(f"resumed {run_dir} at epoch {epoch} ({epoch * loop.steps_per_epoch:,} steps per seed)")
    else:
        save(cfg, run_dir)
        state = init(keys) if initial_state is None else initial_state
        state, epoch = sweep.apply(trainer, state, members), 0
    if sharding is not None:  # members split over devices; jit keeps the layout from here on
        state = jax.device_put(state, sharding)

    total_epochs = cfg.total_steps // loop.steps_per_epoch
    logger = RunLogger(run_dir, n_members, cfg.tensorboard, [m.name(cfg.seed) for m in members])
    rows: list[dict] = []

    evaluator = Evaluator(trainer, loop.eval_episodes, cfg.seed)

    def evaluate(state, epoch, train_metrics, steps_per_s):
        step = epoch * loop.steps_per_epoch
        metrics, positions, skills = evaluator(state, epoch)
        out = []
        for s, row in enumerate(metrics):
            member = members[s]
            row = {"step": step, "seed": cfg.seed + member.seed_index, "epoch": epoch, **row}
            if member.settings:
                row["member"] = member.name(cfg.seed)
                row.update({f"sweep/{path}": value for path, value in member.settings.items()})
            row.update({k: float(np.asarray(v)[s, -1]) for k, v in train_metrics.items()})
            row["time/env_steps_per_s"] = steps_per_s
            out.append(row)
        logger.log(out)
        if cfg.plots:
            save_skill_figure(run_dir, step, positions, skills, out, logger)
        if cfg.tensorboard and cfg.get("video", True):  # configs saved before the key existed lack it
            log_skill_video(logger, step, positions, skills, world.walls)
        return out

    bar = tqdm(
        total=cfg.total_steps,
        initial=epoch * loop.steps_per_epoch,
        unit="step",
        unit_scale=True,
        disable=not cfg.progress,
        dynamic_ncols=True,
    )
    try:
        while epoch < total_epochs:
            n = min(cfg.eval_every, total_epochs - epoch)
            start = time.perf_counter()
            new_state, metrics = run_chunk(state, n)
            jax.block_until_ready(new_state)
            seconds = time.perf_counter() - start
            bad = _first_nonfinite(metrics, epoch)
            if bad:
                name, at, index, value = bad
                last = checkpoints.steps()
                kept = f"last good checkpoint: epoch {last[-1]} in {checkpoints.directory}" if last else "no checkpoint was written yet"
                raise TrainingDiverged(f"loss '{name}' became {value} at epoch {at} ({members[index].name(cfg.seed).replace('_', ' ', 1)}); stopped, {kept}")
            state, epoch = new_state, epoch + n
            steps_per_s = n * loop.steps_per_epoch * n_members / seconds
            rows = evaluate(state, epoch, metrics, steps_per_s)
            checkpoints.save(epoch, state, {"epoch": epoch, "env_steps_per_seed": epoch * loop.steps_per_epoch})
            bar.update(n * loop.steps_per_epoch)
            bar.set_postfix({"env steps/s": f"{steps_per_s:,.0f}", "coverage": rows[0]["eval/coverage"], "random": rows[0]["eval/coverage_random"]})
    finally:
        bar.close()
        logger.close()
    if rows:
        summary = ", ".join(f"{r.get('member', 'seed ' + str(r['seed']))}: {r['eval/coverage']}" for r in rows)
        log(f"done: {run_dir}  eval/coverage {summary} (random {rows[0]['eval/coverage_random']})")
    return RunResult(run_dir, state, rows)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-m" in argv or "--multirun" in argv:
        return _hydra_multirun(argv)
    try:
        run(resolve_config(argv))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _hydra_multirun(argv: list[str]) -> int:
    """Hydra multirun (``-m algo=metra,lsd world=point,brax/ant``): one run per combination, through
    Hydra's launcher (local by default; SLURM or Ray with ``hydra/launcher=slurm|ray``). Each run
    trains in its own directory, ``hydra.sweep.dir/hydra.sweep.subdir``, unless ``run_dir`` is given.
    A failed run does not stop the others; the first failure is reported as one line at the end."""
    import os
    import warnings

    import hydra
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    # By module path, also under ``python -m``: Ray and submitit pickle the job, and the exceptions
    # it raises, by reference to experiments.train.
    import experiments.train as this
    from experiments.config import CONFIG_DIR

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def job(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        from experiments.train import run

        hydra_cfg = HydraConfig.get()
        if not any(o.partition("=")[0].lstrip("+~") == "run_dir" for o in hydra_cfg.overrides.task):
            cfg.run_dir = hydra_cfg.runtime.output_dir  # absolute: <sweep dir>/<subdir>
        run(cfg)

    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [sys.argv[0], *argv]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises a job's error to us instead of printing a trace
    try:
        with warnings.catch_warnings():
            # configs/hydra/launcher/ray.yaml shares its name with the Ray plugin's own schema.
            warnings.filterwarnings("ignore", r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")
            job()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except this.TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (HydraException, OmegaConfBaseException) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        print(f"error: {lines[0]}", file=sys.stderr)
        return 2
    finally:
        GlobalHydra.instance().clear()  # so that compose() works again in this process
        sys.argv = saved_argv
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error
    return 0


if __name__ == "__main__":
    sys.exit(main())
