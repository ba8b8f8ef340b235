"""Throughput benchmark: ``python -m experiments.bench [algo=...] [world=...] [out=file.json] [reps=N]``.

Measures, in one process and after compilation (median over ``reps`` timed calls):

- the worlds alone (random actions through the training wrapper stack, ``num_envs`` in parallel),
- the rollout of the policy alone, the gradient updates alone and the whole training epoch, and
  how much the epoch costs beyond its two parts (``loop_overhead``, target <= 1.25),
- the learner's FLOP rate (XLA cost analysis x measured updates/s) as a fraction of a large f32
  matmul measured in the same process, for the run's network size and for the reference size
  (SAC + METRA, 2x1024 MLPs, batch 256; target >= 0.7 of the matmul peak).

Any other ``key=value`` is a run-config override (``loop.num_envs=64``, ``network.hidden=[256,256]``);
an unknown key is a one-line error with exit code 2. Results are printed and written as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

BENCH_KEYS = {"out": str, "reps": int}  # consumed here; every other key=value goes to the run config
REFERENCE_HIDDEN = (1024, 1024)  # the reference learner size for learner_2x1024_*
REFERENCE_BATCH = 256
REFERENCE_UPDATES = 10  # updates per timed call at the reference size
MATMUL_SIZE = 2048
TARGETS = {"loop_overhead_max": 1.25, "learner_2x1024_peak_fraction_min": 0.7}

CONTRACT_KEYS = (
    "env_steps_per_s_env_only",
    "env_steps_per_s_train",
    "updates_per_s",
    "learner_gflops",
    "matmul_peak_gflops",
    "learner_peak_fraction",
    "learner_2x1024_gflops",
    "learner_2x1024_peak_fraction",
    "compile_s",
    "peak_rss_mb",
    "rollout_s",
    "updates_s",
    "epoch_s",
    "loop_overhead",
)


class UsageError(ValueError):
    """Bad command line: reported as one line, exit code 2."""


def _build(overrides: list[str]):
    """``(world, objective, learner, loop_config)`` for Hydra-style overrides, as ``train`` builds them."""
    from experiments import config

    return config.build(config.compose(list(overrides)))


# ---- timing helpers ---------------------------------------------------------------------------------
def _median_time(call, reps: int) -> float:
    """Median wall time of ``call()`` (which must block until its results are ready)."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _flops(compiled) -> float:
    """FLOPs from XLA cost analysis; it is a dict or a list of dicts depending on the jax version."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = float((cost or {}).get("flops", float("nan")))
    return flops if flops > 0 else float("nan")


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def _own_buffers(tree):
    """A copy whose leaves are distinct buffers, so the tree can be donated (a world's reset may
    return one array under two names, e.g. ``obs`` and ``info['final_obs']``)."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _cache_entries(path) -> int:
    return sum(1 for _ in Path(path).iterdir()) if path and Path(path).is_dir() else 0


# ---- measurements -----------------------------------------------------------------------------------
class MatmulPeak:
    """A large jitted f32 matmul, timed in samples interleaved with the learner measurements, so
    the peak and the learner see the same machine (other processes come and go on a shared CPU)."""

    def __init__(self, n: int | None = None):
        import jax
        import jax.numpy as jnp

        self.n = n = n or MATMUL_SIZE
        self._a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        self._b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
        self._f = jax.jit(jnp.matmul)
        jax.block_until_ready(self._f(self._a, self._b))  # compile + warm-up
        self.samples: list[float] = []

    def sample(self, reps: int = 1) -> None:
        import jax

        for _ in range(reps):
            start = time.perf_counter()
            jax.block_until_ready(self._f(self._a, self._b))
            self.samples.append(2 * self.n**3 / (time.perf_counter() - start) / 1e9)

    @property
    def gflops(self) -> float:
        return statistics.median(self.samples)


def env_only_steps_per_s(world, num_envs: int, length: int, reps: int) -> float:
    """Random actions through ``wrap_for_training``, a jitted ``lax.scan`` of ``length`` steps."""
    import jax

    from worlds.wrappers import wrap_for_training

    env = wrap_for_training(world, num_envs)
    action_size = world.spec.action_size

    def rollout(state, key):
        def step(state, k):
            action = jax.random.uniform(k, (num_envs, action_size), minval=-1.0, maxval=1.0)
            return env.step(state, action), None

        state, _ = jax.lax.scan(step, state, jax.random.split(key, length))
        return state

    run = jax.jit(rollout, donate_argnums=0)
    box = {"state": _own_buffers(env.reset(jax.random.key(0))), "key": jax.random.key(1)}

    def call():
        box["key"], k = jax.random.split(box["key"])
        box["state"] = jax.block_until_ready(run(box["state"], k))

    call()  # compile + warm-up
    return num_envs * length / _median_time(call, reps)


def learner_speed(trainer, state, reps: int, peak: MatmulPeak | None = None) -> dict:
    """Updates alone (``trainer.updates`` jitted) and the FLOPs of one ``update_step``."""
    import jax

    def updates(state):
        new, metrics = trainer.updates(state)
        return new.learner, new.objective, metrics  # only what changes: no buffer in the outputs

    run = jax.jit(updates)
    jax.block_until_ready(run(state))  # compile + warm-up

    def call():
        if peak is not None:
            peak.sample(2)
        start = time.perf_counter()
        jax.block_until_ready(run(state))
        return time.perf_counter() - start

    updates_s = statistics.median(call() for _ in range(reps))

    k_sample, k_update = jax.random.split(jax.random.key(2))
    batch = trainer.replay.sample(state.buffer, k_sample)
    step = jax.jit(trainer.update_step).lower(state.learner, state.objective, batch, k_update).compile()
    flops = _flops(step)
    updates_per_s = trainer.config.updates_per_epoch / updates_s
    return {"updates_s": updates_s, "updates_per_s": updates_per_s, "flops_per_update": flops,
            "gflops": flops * updates_per_s / 1e9}  # fmt: skip


def reference_learner(world, loop, reps: int, peak: MatmulPeak | None = None) -> dict:
    """SAC + METRA with ``REFERENCE_HIDDEN`` MLPs at batch ``REFERENCE_BATCH`` on this world."""
    import jax

    from algos.loop import make_train
    from algos.sac import SAC, SACConfig
    from skills.metra import Metra, MetraConfig

    objective = Metra(MetraConfig(hidden=REFERENCE_HIDDEN), world.spec.obs_size)
    learner = SAC(SACConfig(hidden=REFERENCE_HIDDEN), world.spec.obs_size + objective.skill_size,
                  world.spec.action_size, objective.n_rewards)  # fmt: skip
    config = dataclasses.replace(
        loop,
        updates_per_epoch=REFERENCE_UPDATES,
        batch_size=REFERENCE_BATCH,
        buffer_size=max(loop.steps_per_epoch, REFERENCE_BATCH, 4 * REFERENCE_BATCH),
        prefill_steps=REFERENCE_BATCH,
    )
    trainer = make_train(config, world, objective, learner)
    state = jax.jit(trainer.init)(jax.random.key(3))
    return learner_speed(trainer, state, reps, peak)


def bench(world, objective, learner, loop, reps: int = 3, cache_dir=None) -> dict:
    import jax

    from algos.loop import make_train

    load_start = os.getloadavg()
    trainer = make_train(loop, world, objective, learner)
    peak = MatmulPeak()
    peak.sample(4)
    env_only = env_only_steps_per_s(world, loop.num_envs, loop.rollout_length, reps)

    state = jax.block_until_ready(jax.jit(trainer.init)(jax.random.key(0)))

    # Rollout of the policy alone.
    def rollout(state):
        new, transitions = trainer.rollout(state, loop.rollout_length)
        return new.world, new.skill, transitions

    run_rollout = jax.jit(rollout)
    jax.block_until_ready(run_rollout(state))
    rollout_s = _median_time(lambda: jax.block_until_ready(run_rollout(state)), reps)

    # Updates alone.
    own = learner_speed(trainer, state, reps, peak)

    # The whole epoch, as training runs it: jitted, the state donated (the buffer is updated in place).
    cache_before = _cache_entries(cache_dir)
    start = time.perf_counter()
    epoch = jax.jit(trainer.epoch, donate_argnums=0).lower(state).compile()
    compile_s = time.perf_counter() - start
    compile_cache_hit = cache_dir is not None and _cache_entries(cache_dir) == cache_before
    box = {"state": _own_buffers(state)}

    def call():
        box["state"], metrics = jax.block_until_ready(epoch(box["state"]))

    call()  # warm-up
    epoch_s = _median_time(call, reps)
    del box

    ref = reference_learner(world, loop, reps, peak)
    peak_gflops = peak.gflops

    hidden = {name: list(getattr(getattr(part, "config", None), "hidden", ()) or ())
              for name, part in (("learner", learner), ("objective", objective))}  # fmt: skip
    device = jax.devices()[0]
    return {
        "env_steps_per_s_env_only": env_only,
        "env_steps_per_s_train": loop.steps_per_epoch / epoch_s,
        "updates_per_s": own["updates_per_s"],
        "learner_gflops": own["gflops"],
        "matmul_peak_gflops": peak_gflops,
        "learner_peak_fraction": own["gflops"] / peak_gflops,
        "learner_2x1024_gflops": ref["gflops"],
        "learner_2x1024_peak_fraction": ref["gflops"] / peak_gflops,
        "learner_2x1024_updates_per_s": ref["updates_per_s"],
        "compile_s": compile_s,
        "compile_cache_hit": compile_cache_hit,
        "peak_rss_mb": _peak_rss_mb(),
        "rollout_s": rollout_s,
        "updates_s": own["updates_s"],
        "epoch_s": epoch_s,
        "loop_overhead": epoch_s / (rollout_s + own["updates_s"]),
        "flops_per_update": own["flops_per_update"],
        "learner_2x1024_flops_per_update": ref["flops_per_update"],
        "targets": TARGETS,
        "config": {
            "world": world.spec.name,
            "algo": type(objective).__name__.lower(),
            "learner": type(learner).__name__.lower(),
            "num_envs": loop.num_envs,
            "rollout_length": loop.rollout_length,
            "updates_per_epoch": loop.updates_per_epoch,
            "batch_size": loop.batch_size,
            "buffer_size": loop.buffer_size,
            "hidden": hidden,
            "reference": {"hidden": list(REFERENCE_HIDDEN), "batch_size": REFERENCE_BATCH},
        },
        "reps": reps,
        "matmul_size": peak.n,
        "jax_version": jax.__version__,
        "device_kind": device.device_kind,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "compile_cache_dir": cache_dir,
        "load_avg_1min": {"start": load_start[0], "end": os.getloadavg()[0]},  # >cpu_count: shared, noisy
    }


# ---- command line -----------------------------------------------------------------------------------
def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """Split ``key=value`` arguments into the bench's own options and run-config overrides."""
    options, overrides = {"out": None, "reps": 3}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {arg!r} is not of the form key=value")
        if key in BENCH_KEYS:
            try:
                options[key] = BENCH_KEYS[key](value)
            except ValueError:
                raise UsageError(f"{key} must be {BENCH_KEYS[key].__name__}, got {value!r}") from None
        else:
            overrides.append(arg)
    if options["reps"] < 1:
        raise UsageError(f"reps must be >= 1, got {options['reps']}")
    return options, overrides


def _enable_cache() -> str | None:
    try:
        from experiments.runtime import enable_compilation_cache
    except ImportError:  # pragma: no cover - runtime.py is part of the package
        return None
    return enable_compilation_cache()


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    cache_dir = _enable_cache()
    try:
        options, overrides = parse(argv)
        world, objective, learner, loop = _build(overrides)
    except Exception as e:  # bad keys/values from us or the config system: one line, exit 2
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"bench: error: {first}", file=sys.stderr)
        raise SystemExit(2) from None
    results = bench(world, objective, learner, loop, reps=options["reps"], cache_dir=cache_dir)
    for key in CONTRACT_KEYS:  # a missing or broken figure is a bug, not a slow machine
        value = results[key]
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            print(f"bench: warning: {key} = {value!r}", file=sys.stderr)
    text = json.dumps(results, indent=2)
    print(text)
    if options["out"]:
        out = Path(options["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
