"""The benchmark's suites (``python -m experiments.bench suite=seeds|algos|dmc``); see experiments/bench.py.
Their probes are experiments/probes.py's, shared with the single-config bench.

- ``seeds``: 8 seeds vmapped in one program vs 8 sequential single-seed runs of the same epochs
  (both after compile), and the same 8-member program on 1 vs 2 simulated CPU devices (the
  2-device run is a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``, the
  member axis sharded with ``experiments.sweep.member_sharding`` as ``train`` does).
- ``algos``: the single-config bench for every algo config on ``point`` (``ALGO_WORLDS`` for the
  algorithms that need another world), plus CRL on ``brax/ant``.
- ``dmc``: env-only and training steps/s and compile seconds of the MJX DMC worlds, against
  dm_control's MuJoCo C stepping one world on one thread in the same process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from experiments import probes

SEEDS = 8  # members of the vmapped program
SEEDS_EPOCHS = 5  # epochs per timed call (one ``trainer.run`` scan)
SEEDS_DEFAULTS = ["world=point", "algo=metra"]
EXTRA_RUNS = (("crl", "brax/ant"),)  # (algo, world) pairs benched after the point suite
# Algorithms that cannot run on plain ``point`` (sgcrl needs the world's single hard goal) are
# benched on this world instead, keyed ``algo@world``.
ALGO_WORLDS = {"sgcrl": "point_maze_u"}
DMC_WORLDS = ("dmc/walker_walk", "dmc/quadruped_walk")
MUJOCO_C_STEPS = 2000  # control steps of the dm_control probe
DEVICE_FLAG = "--xla_force_host_platform_device_count"


# ---- seeds and devices ---------------------------------------------------------------------------------
def _member_program(trainer, n_members: int, epochs: int, seed: int = 0):
    """``(call, steps)``: the vmapped n-member ``trainer.run`` (as ``train`` runs a chunk), compiled
    and warmed up, its state sharded over the devices; ``call`` times one chunk of ``epochs``."""
    import jax

    from experiments import sweep

    state = jax.block_until_ready(trainer.init_members()(sweep.seed_keys(seed, range(n_members))))
    sharding = sweep.member_sharding(n_members)
    if sharding is not None:
        state = jax.device_put(state, sharding)
    run = trainer.run_members()
    box = {"state": probes.own_buffers(state) if sharding is None else state}

    def fn():
        box["state"], _ = jax.block_until_ready(run(box["state"], epochs))

    fn()  # compile + warm-up
    return probes.timed(fn), n_members * epochs * trainer.config.steps_per_epoch


def _sequential_program(trainer, n_seeds: int, epochs: int, seed: int = 0):
    """``call`` runs ``n_seeds`` single-seed ``trainer.run`` chunks one after the other (one
    compiled program, each seed its own state)."""
    import jax

    from experiments import sweep

    run = jax.jit(trainer.run, static_argnums=1, donate_argnums=0)
    init = jax.jit(trainer.init)
    states = [probes.own_buffers(init(key)) for key in sweep.seed_keys(seed, range(n_seeds))]

    def fn():
        for i in range(n_seeds):
            states[i], _ = jax.block_until_ready(run(states[i], epochs))

    fn()  # compile + warm-up
    return probes.timed(fn)


def devices_worker(overrides: list[str], n_members: int, epochs: int, reps: int) -> dict:
    """The n-member program on this process's devices: median chunk time and env steps/s."""
    import jax

    from algos.loop import make_train

    world, objective, learner, loop = probes.build(overrides)
    call, steps = _member_program(make_train(loop, world, objective, learner), n_members, epochs)
    seconds = statistics.median(call() for _ in range(reps))
    return {"device_count": jax.device_count(), "chunk_s": seconds, "env_steps_per_s": steps / seconds}


def devices_subprocess(overrides: list[str], n_members: int, epochs: int, reps: int, devices: int) -> dict:
    """``devices_worker`` in a fresh interpreter with ``devices`` simulated CPU devices (the flag
    must be set before jax is imported, hence the subprocess)."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    env["XLA_FLAGS"] = " ".join(flags + [f"{DEVICE_FLAG}={devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    args = json.dumps({"overrides": list(overrides), "n_members": n_members, "epochs": epochs, "reps": reps})
    proc = subprocess.run([sys.executable, "-m", "experiments.bench_suite", "devices", args],
                          env=env, capture_output=True, text=True)  # fmt: skip
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{devices}-device subprocess failed (exit {proc.returncode}): {tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["device_count"] != devices:
        raise RuntimeError(f"asked for {devices} devices, the subprocess saw {result['device_count']}")
    return result


def with_defaults(overrides: list[str], defaults: list[str]) -> list[str]:
    """``defaults`` whose key the ``overrides`` do not set, then the ``overrides``."""
    given = {o.partition("=")[0].lstrip("+~") for o in overrides}
    return [d for d in defaults if d.partition("=")[0] not in given] + list(overrides)


def seeds_bench(overrides: list[str], reps: int = 5, epochs: int = SEEDS_EPOCHS, n_seeds: int = SEEDS) -> dict:
    """8 vmapped seeds vs 8 sequential seeds (in-process, interleaved rounds, medians), and the
    same 8-member program on 1 device (in-process when this process has one) vs 2 (subprocess)."""
    import jax

    from algos.loop import make_train

    load_start = os.getloadavg()
    overrides = with_defaults(overrides, SEEDS_DEFAULTS)
    world, objective, learner, loop = probes.build(overrides)
    trainer = make_train(loop, world, objective, learner)
    vmapped, steps = _member_program(trainer, n_seeds, epochs)
    sequential = _sequential_program(trainer, n_seeds, epochs)
    times = {"vmapped": [], "sequential": []}
    for _ in range(reps):
        times["vmapped"].append(vmapped())
        times["sequential"].append(sequential())
    t = {name: statistics.median(samples) for name, samples in times.items()}
    del vmapped, sequential

    if jax.device_count() == 1:
        one = {"device_count": 1, "chunk_s": t["vmapped"], "env_steps_per_s": steps / t["vmapped"], "where": "in-process"}
    else:
        one = {**devices_subprocess(overrides, n_seeds, epochs, reps, 1), "where": "subprocess"}
    two = {**devices_subprocess(overrides, n_seeds, epochs, reps, 2), "where": "subprocess"}
    return {
        "seeds_vmapped_s": t["vmapped"],
        "seeds_sequential_s": t["sequential"],
        "seeds_vmapped_speedup": t["sequential"] / t["vmapped"],
        "seeds_env_steps_per_s_vmapped": steps / t["vmapped"],
        "seeds_env_steps_per_s_sequential": steps / t["sequential"],
        "devices_1_env_steps_per_s": one["env_steps_per_s"],
        "devices_2_env_steps_per_s": two["env_steps_per_s"],
        "devices_speedup": two["env_steps_per_s"] / one["env_steps_per_s"],
        "devices": {"1": one, "2": two},
        "config": {
            "world": world.spec.name,
            "seeds": n_seeds,
            "epochs_per_call": epochs,
            "steps_per_epoch": loop.steps_per_epoch,
            "updates_per_epoch": loop.updates_per_epoch,
            "overrides": overrides,
        },
        "reps": reps,
        "jax_version": jax.__version__,
        "cpu_count": os.cpu_count(),
        "load_avg_1min": {"start": load_start[0], "end": os.getloadavg()[0]},
    }


SEEDS_KEYS = (
    "seeds_vmapped_s",
    "seeds_sequential_s",
    "seeds_vmapped_speedup",
    "devices_1_env_steps_per_s",
    "devices_2_env_steps_per_s",
    "devices_speedup",
)


# ---- algorithm suite ---------------------------------------------------------------------------------
def algo_names() -> list[str]:
    from experiments import config

    return config.options("algo")


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def algos_bench(overrides: list[str], reps: int, measure, cache_dir=None, extra_runs=None) -> dict:
    """``{algo: bench figures}`` for every algo config on ``point`` (then the ``EXTRA_RUNS`` pairs,
    keyed ``algo@world``, when the algo exists). A run that fails is ``{"error": ...}`` and the
    suite goes on.

    ``measure`` is the single-config bench, ``experiments.bench.bench``; the CLI passes it in, so
    that this module does not import the CLI that imports it."""

    load_start = os.getloadavg()
    names = algo_names()
    out: dict = {}
    runs = []
    for name in names:
        world = ALGO_WORLDS.get(name, "point")
        runs.append((name, world, name if world == "point" else f"{name}@{world}"))
    notes = []
    for algo, world in EXTRA_RUNS if extra_runs is None else extra_runs:
        if algo in names:
            runs.append((algo, world, f"{algo}@{world}"))
        else:
            notes.append(f"{algo}@{world} skipped: no algo config {algo!r} (experiments/configs/algo/{algo}.yaml)")
    for algo, world, key in runs:
        print(f"bench: {key} ...", file=sys.stderr, flush=True)
        try:
            built = probes.build(with_defaults(overrides, [f"world={world}", f"algo={algo}"]))
            out[key] = measure(*built, reps=reps, cache_dir=cache_dir)
            out[key]["config"]["world_config"] = world  # the config group (world.spec.name may be shared)
        except Exception as e:  # noqa: BLE001 - one broken algo must not hide the others' figures
            out[key] = {"error": _first_line(e)}
    out["_suite"] = {"algos": names, "notes": notes, "load_avg_1min": {"start": load_start[0], "end": os.getloadavg()[0]}}
    return out


# ---- DMC -----------------------------------------------------------------------------------------
def mujoco_c_probe(domain: str, task: str, steps: int = MUJOCO_C_STEPS, seed: int = 0) -> dict:
    """dm_control's MuJoCo C stepping one world on one thread with uniform random actions:
    control steps per second (each ``env.step`` is the task's physics substeps), resets included."""
    import numpy as np
    from dm_control import suite

    env = suite.load(domain, task, task_kwargs={"random": seed})
    spec = env.action_spec()
    rng = np.random.default_rng(seed)
    actions = rng.uniform(spec.minimum, spec.maximum, (steps, *spec.shape)).astype(spec.dtype)
    env.reset()
    for a in actions[: min(50, steps)]:  # warm-up
        env.step(a)
    start = time.perf_counter()
    for a in actions:
        if env.step(a).last():
            env.reset()
    seconds = time.perf_counter() - start
    substeps = int(round(env.control_timestep() / env.physics.model.opt.timestep))
    return {"mujoco_c_steps_per_s": steps / seconds, "mujoco_c_substeps": substeps,
            "mujoco_c_steps": steps, "mujoco_c_s": seconds}  # fmt: skip


def dmc_world_bench(world, loop, objective, learner, reps: int, cache_dir=None) -> dict:
    """Env-only and training steps/s and compile seconds of one world (the probes of the single-config bench)."""
    import jax

    from algos.loop import make_train

    trainer = make_train(loop, world, objective, learner)
    state = jax.block_until_ready(jax.jit(trainer.init)(jax.random.key(0)))
    epoch, compile_s, cache_hit = probes.epoch_probe(trainer, state, cache_dir)
    start = time.perf_counter()
    env_only, env_steps = probes.env_only_probe(world, loop.num_envs, loop.rollout_length)
    env_compile_s = time.perf_counter() - start
    times = {"env_only": [], "epoch": []}
    for _ in range(reps):
        times["env_only"].append(env_only())
        times["epoch"].append(epoch())
    t = {name: statistics.median(samples) for name, samples in times.items()}
    return {
        "env_steps_per_s_env_only": env_steps / t["env_only"],
        "env_steps_per_s_train": loop.steps_per_epoch / t["epoch"],
        "compile_s": compile_s,
        "compile_cache_hit": cache_hit,
        "env_only_compile_s": env_compile_s,  # compile + warm-up + chain calibration
        "epoch_s": t["epoch"],
        "config": {"world": world.spec.name, "num_envs": loop.num_envs, "rollout_length": loop.rollout_length,
                   "updates_per_epoch": loop.updates_per_epoch, "batch_size": loop.batch_size},  # fmt: skip
    }


DMC_KEYS = ("env_steps_per_s_env_only", "env_steps_per_s_train", "compile_s", "mujoco_c_steps_per_s", "mjx_over_mujoco_c")


def dmc_bench(overrides: list[str], reps: int, cache_dir=None, worlds_=DMC_WORLDS) -> dict:
    """``{world: figures}`` for the DMC worlds; without the MJX worlds registered, only the
    MuJoCo C side is measured and the entry says the MJX side waits for them."""
    import worlds

    load_start = os.getloadavg()
    out: dict = {}
    for name in worlds_:
        domain, task = name.split("/", 1)[1].split("_", 1)
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        entry = mujoco_c_probe(domain, task)
        if name in worlds.names():
            world, objective, learner, loop = probes.build([f"world={name}"] + list(overrides))
            entry = {**dmc_world_bench(world, loop, objective, learner, reps, cache_dir), **entry}
            entry["mjx_over_mujoco_c"] = entry["env_steps_per_s_env_only"] / entry["mujoco_c_steps_per_s"]
        else:
            entry["note"] = f"{name} is not a registered world yet: the MJX side waits for it"
        out[name] = entry
    out["_suite"] = {"load_avg_1min": {"start": load_start[0], "end": os.getloadavg()[0]}, "cpu_count": os.cpu_count()}
    return out


if __name__ == "__main__":  # the devices worker, run by ``devices_subprocess``
    if sys.argv[1:2] != ["devices"] or len(sys.argv) != 3:
        print("usage: python -m experiments.bench_suite devices '<json args>'", file=sys.stderr)
        raise SystemExit(2)
    from experiments.runtime import enable_compilation_cache

    enable_compilation_cache()
    a = json.loads(sys.argv[2])
    print(json.dumps(devices_worker(a["overrides"], a["n_members"], a["epochs"], a["reps"])))
