"""Train a skill-discovery method: ``python -m experiments.train [key=value ...]``.

Default: METRA on the 2-D point world. Examples::

    python -m experiments.train world=brax/ant num_seeds=8
    python -m experiments.train resume=runs/metra_point_20261125-120000 total_steps=400000

The run directory holds config.yaml, metrics.jsonl, TensorBoard files (tb/), orbax checkpoints
(checkpoints/) and skill-trajectory PNGs (plots/).
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from experiments import sweep
from experiments.config import ConfigError, build, compose, load, save, validate

# What may change when a run is resumed: how long it goes on and how it reports, nothing that
# changes what it computes.
RESUMABLE = ("total_steps", "progress", "tensorboard", "plots", "video", "keep_checkpoints")

# The Ray launcher's local instance listens on 127.0.0.1 only: on Linux its services otherwise
# listen on every interface. Ray's single-machine mode does that; a multirun sets it unless the
# environment already has the variable, so RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 is the explicit
# opt-in to the wider binding (see configs/hydra/launcher/ray.yaml).
RAY_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the run stopped without checkpointing the bad state."""


class StorageError(RuntimeError):
    """The run directory could not be written (disk full, read-only); the run stopped, its last
    checkpoint and the record up to it kept."""


class Interrupted(RuntimeError):
    """SIGINT or SIGTERM (Ctrl-C, SLURM preemption): the run stopped at a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for "ended by signal signum"


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
    cfg = load(run_dir)
    if pairs:
        # The command line that started the run, with resume= appended, is fine: values equal to
        # the saved ones change nothing. Compose it as a new run would, then compare.
        typed = compose([o for o in overrides if o.partition("=")[0] != "resume"])
        changed = [_change(cfg, typed, key, run_dir) for key in pairs if key.lstrip("+~") not in RESUMABLE]
        changed = [c for c in changed if c]
        if changed:
            raise ConfigError(f"cannot change {'; '.join(changed)} when resuming; only {', '.join(RESUMABLE)}")
        for key in pairs:
            if key.lstrip("+~") in RESUMABLE:
                OmegaConf.update(cfg, key.lstrip("+~"), OmegaConf.select(typed, key.lstrip("+~")))
    cfg.resume = str(run_dir)
    cfg.run_dir = str(run_dir)
    return cfg


def _change(saved: DictConfig, typed: DictConfig, key: str, run_dir: Path) -> str | None:
    """``"<key> (saved <a>, given <b>)"`` if the command line's ``key`` differs from the saved run's,
    else None. A config group (algo, world) compares by the name it selects."""
    key = key.lstrip("+~")
    path = f"{key}.name" if key in ("algo", "world") else key
    old, new = (OmegaConf.select(c, path) for c in (saved, typed))
    old, new = (OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for v in (old, new))
    if key == "run_dir":
        old, new = str(run_dir.absolute()), str(Path(new).absolute())
    return None if old == new else f"{key} (saved {old!r}, given {new!r})"


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What the steps of ``run`` share once the trainer is built."""

    cfg: DictConfig
    world: object
    loop: object  # algos.loop.LoopConfig
    trainer: object  # algos.loop.Trainer
    members: list  # sweep.Member: one per slice of the state's leading axis
    sharding: object  # how the member axis is split over devices; None on one device
    run_chunk: object  # the jitted ``(state, n_epochs) -> (state, metrics)``; donates the state

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run_dir)


def run(cfg: DictConfig, initial_state=None) -> RunResult:
    """Train (or resume) the run described by ``cfg``; see the module docstring.

    ``initial_state`` (a member-batched TrainState) replaces the fresh init of a new run; the
    finetuning CLI passes one that holds pretrained weights."""
    validate(cfg)
    _check_run_dir(cfg)
    world, objective, learner, loop = build(cfg)
    # Everything above is cheap and checks the input; JAX work starts here.
    from experiments.checkpoint import Checkpoints
    from experiments.eval_protocol import Evaluator
    from experiments.logger import RunLogger, trim_record

    setup = _make_trainer(cfg, world, objective, learner, loop)
    _check_resources(setup)  # before the first compile, which would take long and then fail
    checkpoints = Checkpoints(setup.run_dir, cfg.keep_checkpoints)
    state, epoch = _first_state(setup, checkpoints, initial_state)
    if cfg.resume is not None:  # rows past the restored epoch are written again below
        trimmed = trim_record(setup.run_dir / "metrics.jsonl", epoch)
        if trimmed:
            _log(trimmed, file=sys.stderr)

    total_epochs = cfg.total_steps // loop.steps_per_epoch
    step = epoch * loop.steps_per_epoch
    names = [m.name(cfg.seed) for m in setup.members]
    logger = RunLogger(setup.run_dir, len(setup.members), cfg.tensorboard, names, purge_step=step + 1 if cfg.resume else None)
    evaluator = Evaluator(setup.trainer, loop.eval_episodes, cfg.seed)
    bar = _progress_bar(cfg, step)
    rows: list[dict] = []
    try:
        with _StopOnSignal() as stop:
            while epoch < total_epochs:
                n = min(cfg.eval_every, total_epochs - epoch)
                _fault("chunk", epoch, during=True)
                state, metrics, steps_per_s = _train_chunk(setup, checkpoints, state, epoch, n)
                epoch += n
                with _storage(setup, checkpoints, "metrics.jsonl"):
                    rows = _evaluate_and_log(setup, evaluator, logger, state, epoch, metrics, steps_per_s)
                _fault("rows", epoch)
                with _storage(setup, checkpoints, f"checkpoints/{epoch}"):
                    _fault("checkpoint", epoch, during=True)
                    _save_checkpoint(setup, checkpoints, state, epoch)
                _show_progress(bar, n * loop.steps_per_epoch, steps_per_s, rows[0])
                if stop.signum is not None and epoch < total_epochs:
                    raise Interrupted(
                        f"{signal.Signals(stop.signum).name} after the checkpoint of epoch {epoch} in "
                        f"{setup.run_dir}; continue with: python -m experiments.train resume={setup.run_dir}",
                        stop.signum,
                    )
    finally:
        bar.close()
        logger.close()
    if rows:
        _log(_summary(setup.run_dir, rows))
    return RunResult(setup.run_dir, state, rows)


class _StopOnSignal:
    """While training: the first SIGINT or SIGTERM (Ctrl-C; SLURM preemption sends SIGTERM) lets
    the current chunk finish, be evaluated and checkpointed, then ``run`` stops (Interrupted). A
    second one abandons the chunk at once (KeyboardInterrupt); the last checkpoint stays."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        _log(f"{signal.Signals(signum).name}: finishing this chunk and checkpointing it; send it again to stop at once", file=sys.stderr)

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        return False


def _fault(point: str, epoch: int, during: bool = False) -> None:
    """Test-only fault injection (tests/test_reliability.py): with ``SKILLAX_FAULT=<point>:<epoch>``
    in the environment the process sends itself SIGKILL at that point (``<point>:<epoch>:SIGTERM``:
    SIGTERM, as SLURM's preemption does). ``during``: from a thread a moment later, so that the
    signal lands while the step that follows runs (the chunk's compile or training, the write of
    the checkpoint)."""
    point_, _, rest = os.environ.get("SKILLAX_FAULT", "").partition(":")
    at, _, name = rest.partition(":")
    if (point_, at) != (point, str(epoch)):
        return
    send = lambda: os.kill(os.getpid(), signal.Signals[name or "SIGKILL"])  # noqa: E731
    if during:
        threading.Timer(0.05, send).start()
    else:
        send()


class _storage:
    """Turn a failed write to the run directory (disk full, read-only; orbax reports the former as
    RESOURCE_EXHAUSTED) into one StorageError line naming the path and what was kept."""

    def __init__(self, setup, checkpoints, what: str):
        self.setup, self.checkpoints, self.what = setup, checkpoints, what

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or not (isinstance(error, OSError) or "RESOURCE_EXHAUSTED" in str(error)):
            return False
        # tensorstore (under orbax) reports a full disk as RESOURCE_EXHAUSTED with the OS error code.
        code = re.search(r"os_error_code='(\d+)'", str(error))
        reason = (error.strerror or str(error)) if isinstance(error, OSError) else os.strerror(int(code[1])) if code else "RESOURCE_EXHAUSTED"
        last = self.checkpoints.steps()
        kept = f"kept checkpoint {last[-1]} (a resume trims the record to it)" if last else "no checkpoint was written yet"
        raise StorageError(
            f"cannot write {self.setup.run_dir / self.what} ({reason}); {kept}; free space, then continue with "
            f"python -m experiments.train resume={self.setup.run_dir}"
        ) from None


def _check_run_dir(cfg: DictConfig) -> None:
    """A new run needs a run_dir that holds no run yet; a resumed one needs checkpoints, in the
    format this code reads; both need to be able to write there. Cheap: a bad run_dir is a
    ConfigError before anything is compiled."""
    if cfg.run_dir in (None, "") or not str(cfg.run_dir).strip():
        raise ConfigError("run_dir is empty: name the directory the run is written to")
    run_dir = Path(cfg.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir {run_dir} is a file, not a directory")
    existing = _nearest_existing(run_dir)
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"run_dir {run_dir} cannot be written ({existing} is read-only or not yours)")
    if cfg.resume is None:
        if (run_dir / "config.yaml").exists() or ((run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir())):
            raise ConfigError(f"run_dir {run_dir} already holds a run; continue it with resume={run_dir}")
        return
    from experiments.checkpoint import Checkpoints

    checkpoints = Checkpoints(run_dir)
    if not checkpoints.steps() and cfg.get("finetune"):  # its pretrained start is not in config.yaml
        raise ConfigError(f"no checkpoint to resume from in {run_dir / 'checkpoints'}: run the finetuning again in a new run_dir")
    checkpoints.check_format()


def _nearest_existing(path: Path) -> Path:
    """``path`` or, if it does not exist yet, its nearest existing parent: where it will be created."""
    return next(p for p in [path, *path.absolute().parents] if p.exists())


def _check_resources(setup: _Setup) -> None:
    """Refuse, before compiling, a run whose state (replay buffers included) does not fit in the
    device's available memory, or whose checkpoint does not fit on the run directory's disk;
    the message gives the figures and the largest ``loop.buffer_size`` that fits."""
    import shutil

    import jax

    # Keys made inside eval_shape, too: made eagerly they would compile (tiny) programs.
    abstract = jax.eval_shape(lambda: setup.trainer.init_members()(sweep.keys(setup.cfg, setup.members)))
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract))
    replay_bytes = setup.trainer.replay.bytes * len(setup.members)
    per_transition = replay_bytes / setup.loop.buffer_size
    existing = _nearest_existing(setup.run_dir)
    for what, available in (("memory", _available_memory()), (f"free space on {existing}", shutil.disk_usage(existing).free)):
        if state_bytes > available:
            fits = max(int((available - (state_bytes - replay_bytes)) // per_transition), 0)
            raise ConfigError(
                f"the run's state ({state_bytes / 2**20:,.0f} MiB, of which replay {replay_bytes / 2**20:,.0f} MiB) does not fit "
                f"in the {what} ({available / 2**20:,.0f} MiB); the largest loop.buffer_size that fits is {fits:,}"
            )


def _available_memory() -> int:
    """Bytes the state can use: the accelerator's limit, or the host's available memory on CPU."""
    import jax
    import psutil

    stats = jax.devices()[0].memory_stats() or {}
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)) if "bytes_limit" in stats else psutil.virtual_memory().available


def _make_trainer(cfg: DictConfig, world, objective, learner, loop) -> _Setup:
    """The Trainer, the run's members (seeds x sweep grid, the sweep checked against what the
    trainer can sweep) and their layout over the devices; prints the replay memory and devices."""
    import jax

    from algos.loop import make_train
    from experiments.runtime import enable_compilation_cache

    enable_compilation_cache()
    trainer = make_train(loop, world, objective, learner)
    sweep.validate(cfg, list(trainer.sweepable()))
    members = sweep.members(cfg)
    sharding = sweep.member_sharding(len(members))
    # The state is donated: the replay buffer is updated in place instead of copied every chunk.
    setup = _Setup(cfg, world, loop, trainer, members, sharding, trainer.run_members())
    _log(
        f"replay: {loop.buffer_size:,} transitions x {len(members)} member(s) = "
        f"{trainer.replay.bytes * len(members) / 2**20:,.1f} MiB; devices: {jax.devices()}"
    )
    return setup


def _first_state(setup: _Setup, checkpoints, initial_state):
    """``(state, epoch)`` training starts from: a resumed run's newest good checkpoint (a run that
    stopped before its first starts again); for a new run (whose config.yaml is written here) ``initial_state`` or a fresh init, with each member's
    swept settings written in. Placed over the devices when there are several."""
    import jax

    cfg = setup.cfg
    init = setup.trainer.init_members()
    keys = sweep.keys(cfg, setup.members)
    if cfg.resume is not None and checkpoints.steps():
        _, state, meta = checkpoints.restore(jax.eval_shape(init, keys), warn=_log)
        epoch = int(meta["epoch"])
        _log(f"resumed {setup.run_dir} at epoch {epoch} ({epoch * setup.loop.steps_per_epoch:,} steps per seed)")
    else:
        if cfg.resume is None:
            setup.run_dir.mkdir(parents=True, exist_ok=True)
            save(cfg, setup.run_dir)
        else:  # stopped before its first checkpoint: the same run again, from its saved config
            _log(f"no checkpoint yet in {setup.run_dir}: starting it again from epoch 0")
        state = init(keys) if initial_state is None else initial_state
        state, epoch = sweep.apply(setup.trainer, state, setup.members), 0
    if setup.sharding is not None:  # members split over devices; jit keeps the layout from here on
        state = jax.device_put(state, setup.sharding)
    return state, epoch


def _train_chunk(setup: _Setup, checkpoints, state, epoch: int, n: int):
    """``(state, metrics, env steps/s)`` after ``n`` more epochs from ``epoch``. The NaN guard: a loss
    that became NaN or Inf stops the run (TrainingDiverged) before the bad state is evaluated or
    saved, naming the loss, the epoch, the member and the last good checkpoint."""
    import jax

    start = time.perf_counter()
    new_state, metrics = setup.run_chunk(state, n)
    jax.block_until_ready(new_state)
    seconds = time.perf_counter() - start
    bad = _first_nonfinite(metrics, epoch)
    if bad:
        name, at, index, value = bad
        last = checkpoints.steps()
        kept = f"last good checkpoint: epoch {last[-1]} in {checkpoints.directory}" if last else "no checkpoint was written yet"
        member = setup.members[index].name(setup.cfg.seed).replace("_", " ", 1)
        raise TrainingDiverged(f"loss '{name}' became {value} at epoch {at} ({member}); stopped, {kept}")
    return new_state, metrics, n * setup.loop.steps_per_epoch * len(setup.members) / seconds


def _first_nonfinite(metrics: dict, first_epoch: int):
    """(loss name, epoch, member index, value) of the first non-finite loss in a chunk, else None."""
    for name in sorted(k for k in metrics if k.startswith("loss/")):
        values = np.asarray(metrics[name])  # [members, epochs]
        bad = ~np.isfinite(values)
        if bad.any():
            seed, epoch = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
            return name, first_epoch + int(epoch) + 1, int(seed), float(values[seed, epoch])
    return None


def _evaluate_and_log(setup: _Setup, evaluator, logger, state, epoch: int, train_metrics: dict, steps_per_s: float) -> list[dict]:
    """Evaluate every member and log one row each (the evaluation, the chunk's last training
    metrics, the chunk's env steps/s) to metrics.jsonl and TensorBoard, with the skill figure
    (plots/) and video as the config asks. Returns the rows."""
    from experiments.eval_protocol import evaluation_rows, log_skill_video, save_skill_figure

    cfg = setup.cfg
    step = epoch * setup.loop.steps_per_epoch
    metrics, positions, skills = evaluator(state, epoch)
    rows = evaluation_rows(metrics, setup.members, cfg.seed, step, epoch)
    for s, row in enumerate(rows):
        row.update({k: float(np.asarray(v)[s, -1]) for k, v in train_metrics.items()})
        row["time/env_steps_per_s"] = steps_per_s
    logger.log(rows)
    if cfg.plots:
        save_skill_figure(setup.run_dir, step, positions, skills, rows, logger)
    if cfg.tensorboard and cfg.get("video", True):  # configs saved before the key existed lack it
        log_skill_video(logger, step, positions, skills, setup.world.walls)
    return rows


def _save_checkpoint(setup: _Setup, checkpoints, state, epoch: int) -> None:
    """checkpoints/<epoch>/: the state and where the run stands, which is what resume reads."""
    checkpoints.save(epoch, state, {"epoch": epoch, "env_steps_per_seed": epoch * setup.loop.steps_per_epoch})


def _progress_bar(cfg: DictConfig, step: int):
    """A tqdm bar over the run's env steps per seed, starting at ``step`` (off with progress=false)."""
    from tqdm import tqdm

    return tqdm(total=cfg.total_steps, initial=step, unit="step", unit_scale=True, disable=not cfg.progress, dynamic_ncols=True)


def _show_progress(bar, steps: int, steps_per_s: float, row: dict) -> None:
    """Advance the bar by a chunk's ``steps``; show its throughput and the first member's coverage."""
    bar.update(steps)
    bar.set_postfix({"env steps/s": f"{steps_per_s:,.0f}", "coverage": row["eval/coverage"], "random": row["eval/coverage_random"]})


def _summary(run_dir: Path, rows: list[dict]) -> str:
    """The closing line: where the run is and each member's last coverage."""
    from experiments.eval_protocol import row_label

    coverage = ", ".join(f"{row_label(r)}: {r['eval/coverage']}" for r in rows)
    return f"done: {run_dir}  eval/coverage {coverage} (random {rows[0]['eval/coverage_random']})"


def _log(message: str, file=None) -> None:
    """Print a line without breaking the progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=file)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-m" in argv or "--multirun" in argv:
        return _hydra_multirun(argv)
    try:
        cfg = resolve_config(argv)
        run(cfg)
    except (ConfigError, TrainingDiverged, StorageError, Interrupted) as e:
        return report(e)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
        where = f" with: python -m experiments.train resume={cfg.run_dir}" if "cfg" in locals() else ""
        print(f"stopped: interrupted before the next checkpoint, which is lost; the earlier ones are kept; continue{where}", file=sys.stderr)
        return 128 + signal.SIGINT
    return 0


def report(error: Exception) -> int:
    """Print the one line for a run's expected end (bad input, divergence, a full or read-only
    disk, a signal) and return the CLI's exit code: 2 for bad input, 1 for a failed run, 128 +
    the signal's number for a stop on a signal."""
    if isinstance(error, Interrupted):
        print(f"stopped: {error}", file=sys.stderr)
        return error.exit_code
    if isinstance(error, StorageError):
        import logging

        # orbax's abandoned write tasks log the same error again when they are collected at exit.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
    print(f"error: {error}", file=sys.stderr)
    return 2 if isinstance(error, ConfigError) else 1


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

    saved_argv, saved_env = sys.argv, {name: os.environ.get(name) for name in (*RAY_LOOPBACK, "HYDRA_FULL_ERROR")}
    sys.argv = [sys.argv[0], *argv]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises a job's error to us instead of printing a trace
    for name, value in RAY_LOOPBACK.items():  # unless the user asked for the wider binding explicitly
        os.environ.setdefault(name, value)
    try:
        with warnings.catch_warnings():
            # configs/hydra/launcher/ray.yaml shares its name with the Ray plugin's own schema.
            warnings.filterwarnings("ignore", r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")
            job()
    except (ConfigError, this.TrainingDiverged, this.StorageError, this.Interrupted) as e:
        return this.report(e)
    except (HydraException, OmegaConfBaseException) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        print(f"error: {lines[0]}", file=sys.stderr)
        return 2
    finally:
        GlobalHydra.instance().clear()  # so that compose() works again in this process
        sys.argv = saved_argv
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return 0


if __name__ == "__main__":
    sys.exit(main())
