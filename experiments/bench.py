"""Throughput benchmark: ``python -m experiments.bench [algo=...] [world=...] [out=file.json] [reps=N]``.

Measures, in one process and after compilation (median over ``reps`` rounds; each round times
every measurement once, interleaved with samples of the matmul peak, so all figures see the same
load on a shared machine):

- the worlds alone (random actions through the training wrapper stack, ``num_envs`` in parallel),
- the rollout of the policy alone, the gradient updates alone and the whole training epoch, and
  how much the epoch costs beyond its two parts (``loop_overhead``, target <= 1.25),
- the learner's FLOP rate (XLA cost analysis x measured updates/s) as a fraction of a large f32
  matmul measured in the same process, for the run's network size and for the reference size
  (SAC + METRA, 2x1024 MLPs, batch 256; target >= 0.7 of the matmul peak).

Suites (``suite=...``, implemented in experiments/bench_suite.py; the other options still apply):

- ``suite=seeds`` (alias ``seeds_vs_sequential=true``), on ``point`` with METRA unless overridden:
  ``seeds_vmapped_s`` (8 seeds vmapped in one program, ``epochs=N`` epochs per call, default 5,
  after compile), ``seeds_sequential_s`` (8 single-seed runs of the same epochs one after the
  other, after compile), ``seeds_vmapped_speedup`` = sequential / vmapped; and the same 8-member
  program's ``devices_1_env_steps_per_s`` vs ``devices_2_env_steps_per_s`` (2 simulated CPU
  devices in a subprocess, ``XLA_FLAGS=--xla_force_host_platform_device_count=2``, the member
  axis sharded as ``train`` shards it) and ``devices_speedup`` = 2-device / 1-device.
- ``suite=algos``: the single-config bench above for every algo config (configs/algo/*.yaml) on
  ``point``, and CRL on ``brax/ant`` when ``crl`` exists: ``{algo: figures, "crl@brax/ant": ...}``.
- ``suite=dmc``: for ``dmc/walker_walk`` and ``dmc/quadruped_walk``: env-only and training
  steps/s and compile seconds, dm_control's MuJoCo C stepping one world on one thread in the same
  process (``mujoco_c_steps_per_s``, control steps) and ``mjx_over_mujoco_c`` = env-only / MuJoCo C.

The probes (each compiled and warmed up when built, then timed) are in experiments/probes.py,
shared with the suites.

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
from pathlib import Path

from experiments import probes

SUITES = ("single", "seeds", "algos", "dmc")
BENCH_KEYS = {"out": str, "reps": int, "suite": str, "seeds_vs_sequential": str, "epochs": int}  # consumed here; every other key=value goes to the run config
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


# The run ``main`` measures, built from the overrides as ``train`` builds it (a name of its own, so
# that the tests can swap in a tiny run).
_build = probes.build


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def reference_trainer(world, loop):
    """SAC + METRA with ``REFERENCE_HIDDEN`` MLPs at batch ``REFERENCE_BATCH`` on this world."""
    import algos
    import skills
    from algos.loop import make_train

    hidden = list(REFERENCE_HIDDEN)
    objective = skills.make("metra", {"hidden": hidden}, world.spec)
    learner = algos.make_learner("sac", {"hidden": hidden}, world.spec, objective.skill_size, objective.n_rewards)
    config = dataclasses.replace(
        loop,
        updates_per_epoch=REFERENCE_UPDATES,
        batch_size=REFERENCE_BATCH,
        buffer_size=max(loop.steps_per_epoch, 4 * REFERENCE_BATCH),
        prefill_steps=REFERENCE_BATCH,
    )
    return make_train(config, world, objective, learner)


def _registry_name(part, registry: dict) -> str:
    """The registry name of a built objective or learner (by its config class), e.g. ``metra``."""
    config_cls = type(part.config)
    return next((name for name, (_, cls) in registry.items() if cls is config_cls), type(part).__name__.lower())


def bench(world, objective, learner, loop, reps: int = 7, cache_dir=None) -> dict:
    """The single-config figures (see the module docstring): this run's probes and the reference
    learner's, timed in ``reps`` interleaved rounds; medians, and the paired ratios per round."""
    import jax

    import algos
    import skills
    from algos.loop import make_train

    load_start = os.getloadavg()
    trainer = make_train(loop, world, objective, learner)
    state = jax.block_until_ready(jax.jit(trainer.init)(jax.random.key(0)))
    ref_trainer = reference_trainer(world, loop)
    ref_state = jax.block_until_ready(jax.jit(ref_trainer.init)(jax.random.key(1)))

    epoch, compile_s, compile_cache_hit = probes.epoch_probe(trainer, state, cache_dir)
    updates, flops = probes.updates_probe(trainer, state)
    ref_updates, ref_flops = probes.updates_probe(ref_trainer, ref_state)
    env_only, env_only_steps = probes.env_only_probe(world, loop.num_envs, loop.rollout_length)
    calls = {
        "matmul": probes.matmul_probe(MATMUL_SIZE),
        "env_only": env_only,
        "rollout": probes.rollout_probe(trainer, state),
        "updates": updates,
        "epoch": epoch,
        "ref_updates": ref_updates,
    }
    times = {name: [] for name in calls}
    peak_after = {name: [] for name in calls}  # the matmul sample taken right after each call
    for _ in range(reps):
        for name, call in calls.items():
            times[name].append(call())
            if name != "matmul":
                peak_after[name].append(calls["matmul"]())
                times["matmul"].append(peak_after[name][-1])
    t = {name: statistics.median(samples) for name, samples in times.items()}
    mm_flops = 2 * MATMUL_SIZE**3

    peak = mm_flops / t["matmul"] / 1e9
    updates_per_s = loop.updates_per_epoch / t["updates"]
    ref_updates_per_s = REFERENCE_UPDATES / t["ref_updates"]
    learner_gflops = flops * updates_per_s / 1e9
    ref_gflops = ref_flops * ref_updates_per_s / 1e9
    hidden = {name: list(dataclasses.asdict(part.config).get("hidden") or ())
              for name, part in (("learner", learner), ("objective", objective))}  # fmt: skip
    device = jax.devices()[0]
    return {
        "env_steps_per_s_env_only": env_only_steps / t["env_only"],
        "env_steps_per_s_train": loop.steps_per_epoch / t["epoch"],
        "updates_per_s": updates_per_s,
        "learner_gflops": learner_gflops,
        "matmul_peak_gflops": peak,
        "learner_peak_fraction": learner_gflops / peak,
        "learner_2x1024_gflops": ref_gflops,
        "learner_2x1024_peak_fraction": ref_gflops / peak,
        "learner_2x1024_updates_per_s": ref_updates_per_s,
        "compile_s": compile_s,
        "compile_cache_hit": compile_cache_hit,
        "peak_rss_mb": _peak_rss_mb(),
        "rollout_s": t["rollout"],
        "updates_s": t["updates"],
        "epoch_s": t["epoch"],
        "loop_overhead": t["epoch"] / (t["rollout"] + t["updates"]),
        "flops_per_update": flops,
        "learner_2x1024_flops_per_update": ref_flops,
        # The ratios again, each from calls of the same round (adjacent in time, so under the same
        # load), median over rounds: on a busy shared machine these are steadier than the ratios of
        # the medians above, which can mix a quiet rollout with a contended epoch.
        "paired": {
            "loop_overhead": statistics.median(
                e / (r + u) for e, r, u in zip(times["epoch"], times["rollout"], times["updates"])
            ),
            "learner_peak_fraction": statistics.median(
                (flops * loop.updates_per_epoch / u) / (mm_flops / m)
                for u, m in zip(times["updates"], peak_after["updates"])
            ),
            "learner_2x1024_peak_fraction": statistics.median(
                (ref_flops * REFERENCE_UPDATES / u) / (mm_flops / m)
                for u, m in zip(times["ref_updates"], peak_after["ref_updates"])
            ),
            "matmul_peak_gflops_best": mm_flops / min(times["matmul"]) / 1e9,
        },
        "targets": TARGETS,
        "config": {
            "world": world.spec.name,
            "algo": _registry_name(objective, skills.OBJECTIVES),
            "learner": _registry_name(learner, algos.LEARNERS),
            "num_envs": loop.num_envs,
            "rollout_length": loop.rollout_length,
            "updates_per_epoch": loop.updates_per_epoch,
            "batch_size": loop.batch_size,
            "buffer_size": loop.buffer_size,
            "hidden": hidden,
            "reference": {"hidden": list(REFERENCE_HIDDEN), "batch_size": REFERENCE_BATCH,
                          "updates_per_call": REFERENCE_UPDATES},  # fmt: skip
        },
        "reps": reps,
        "matmul_size": MATMUL_SIZE,
        "jax_version": jax.__version__,
        "device_kind": device.device_kind,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "compile_cache_dir": cache_dir,
        # Above cpu_count, other processes share the CPU and the figures are noisy.
        "load_avg_1min": {"start": load_start[0], "end": os.getloadavg()[0]},
    }


# ---- command line -----------------------------------------------------------------------------------
def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """Split ``key=value`` arguments into the bench's own options and run-config overrides."""
    options, overrides = {"out": None, "reps": 7, "suite": "single", "seeds_vs_sequential": "false", "epochs": 5}, []
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
    if options["epochs"] < 1:
        raise UsageError(f"epochs must be >= 1, got {options['epochs']}")
    flag = options.pop("seeds_vs_sequential").lower()
    if flag not in ("true", "false"):
        raise UsageError(f"seeds_vs_sequential must be true or false, got {flag!r}")
    if flag == "true":
        if options["suite"] not in ("single", "seeds"):
            raise UsageError(f"seeds_vs_sequential=true conflicts with suite={options['suite']}")
        options["suite"] = "seeds"
    if options["suite"] not in SUITES:
        raise UsageError(f"unknown suite {options['suite']!r}; known: {', '.join(SUITES)}")
    return options, overrides


def _check(results: dict, keys, where: str = "") -> None:
    """Warn about a missing or broken figure: that is a bug, not a slow machine."""
    for key in keys:
        value = results.get(key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            print(f"bench: warning: {where}{key} = {value!r}", file=sys.stderr)


def run_suite(suite: str, options: dict, overrides: list[str], cache_dir) -> dict:
    """The figures of ``suite=seeds|algos|dmc`` (experiments/bench_suite.py), checked."""
    from experiments import bench_suite

    if suite == "seeds":
        results = bench_suite.seeds_bench(overrides, reps=options["reps"], epochs=options["epochs"])
        _check(results, bench_suite.SEEDS_KEYS)
    elif suite == "algos":
        results = bench_suite.algos_bench(overrides, reps=options["reps"], measure=bench, cache_dir=cache_dir)
        for name, figures in results.items():
            if not name.startswith("_"):
                _check(figures, ("error",) if "error" in figures else CONTRACT_KEYS, f"{name}: ")
    else:
        results = bench_suite.dmc_bench(overrides, reps=options["reps"], cache_dir=cache_dir)
        for name, figures in results.items():
            if not name.startswith("_"):
                _check(figures, bench_suite.DMC_KEYS if "note" not in figures else ("mujoco_c_steps_per_s",), f"{name}: ")
    return results


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    from experiments.runtime import enable_compilation_cache

    cache_dir = enable_compilation_cache()
    try:
        options, overrides = parse(argv)
        if options["suite"] == "single":
            world, objective, learner, loop = _build(overrides)
        elif overrides:  # check the overrides once, before any compile
            from experiments import config

            config.compose(overrides)
    except (ValueError, TypeError, LookupError) as e:  # bad keys/values (ConfigError is a ValueError)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"bench: error: {first}", file=sys.stderr)
        raise SystemExit(2) from None
    if options["suite"] != "single":
        results = run_suite(options["suite"], options, overrides, cache_dir)
    else:
        results = bench(world, objective, learner, loop, reps=options["reps"], cache_dir=cache_dir)
        _check(results, CONTRACT_KEYS)
    text = json.dumps(results, indent=2)
    print(text)
    if options["out"]:
        out = Path(options["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
