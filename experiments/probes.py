"""The benchmark's timed probes, shared by ``experiments.bench`` and ``experiments.bench_suite``.

Each probe measures one part of training (the worlds alone, the policy's rollout, the gradient
updates, the whole epoch, a matmul for the machine's peak). It is compiled and warmed up when
built and returns a zero-argument ``call`` that runs one timed unit, blocks until it is done and
returns its seconds. The benchmarks time the probes in interleaved rounds, so that every figure
(and the matmul peak they are compared with) sees the same machine: on a shared CPU other
processes come and go, and back-to-back blocks of repetitions would each see a different load.
"""

from __future__ import annotations

import time
from pathlib import Path


def build(overrides: list[str]):
    """``(world, objective, learner, loop_config)`` for Hydra-style overrides, as ``train`` builds them."""
    from experiments import config

    return config.build(config.compose(list(overrides)))


def own_buffers(tree):
    """A copy whose leaves are distinct buffers, so the tree can be donated (a world's reset may
    return one array under two names, e.g. ``obs`` and ``info['final_obs']``)."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def timed(fn):
    """``fn`` as a probe's ``call``: runs it once and returns the seconds it took."""

    def call() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return call


def matmul_probe(n: int):
    """A large jitted f32 matmul: ``2 n^3`` FLOPs per call."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    call = timed(lambda: jax.block_until_ready(f(a, b)))
    call()  # compile + warm-up
    return call


def env_only_probe(world, num_envs: int, length: int, min_call_s: float = 0.05):
    """Random actions through ``wrap_for_training``: a jitted ``lax.scan`` of ``length`` steps.

    A cheap world runs such a scan in well under a millisecond, where dispatch would dominate, so
    one timed call chains as many scans as take ``min_call_s`` (dispatched asynchronously, one
    block at the end). Returns the call and the env steps it takes."""
    import jax

    from worlds.wrappers import wrap_for_training

    env = wrap_for_training(world, num_envs)
    action_size = world.spec.action_size

    def rollout(state, key):
        def step(state, k):
            action = jax.random.uniform(k, (num_envs, action_size), minval=-1.0, maxval=1.0)
            return env.step(state, action), None

        key, k_steps = jax.random.split(key)
        state, _ = jax.lax.scan(step, state, jax.random.split(k_steps, length))
        return state, key

    run = jax.jit(rollout, donate_argnums=(0, 1))
    box = {"carry": own_buffers((env.reset(jax.random.key(0)), jax.random.key(1))), "chain": 1}

    def fn():
        for _ in range(box["chain"]):
            box["carry"] = run(*box["carry"])
        jax.block_until_ready(box["carry"])

    fn()  # compile + warm-up
    call = timed(fn)
    while call() < min_call_s and box["chain"] < 4096:
        box["chain"] *= 2
    return call, box["chain"] * num_envs * length


def rollout_probe(trainer, state):
    """The policy's rollout alone (``trainer.rollout`` jitted), from the same state every call."""
    import jax

    def rollout(state):
        new, transitions = trainer.rollout(state, trainer.config.rollout_length)
        return new.world, new.skill, transitions

    run = jax.jit(rollout)
    call = timed(lambda: jax.block_until_ready(run(state)))
    call()  # compile + warm-up
    return call


def updates_probe(trainer, state):
    """``trainer.updates`` jitted alone, and the FLOPs of one ``update_step`` (XLA cost analysis)."""
    import jax

    def updates(state):
        new, metrics = trainer.updates(state)
        return new.learner, new.objective, metrics  # only what changes: no buffer in the outputs

    run = jax.jit(updates)
    call = timed(lambda: jax.block_until_ready(run(state)))
    call()  # compile + warm-up
    k_sample, k_update = jax.random.split(jax.random.key(2))
    batch = trainer.replay.sample(state.buffer, k_sample)
    step = jax.jit(trainer.update_step).lower(state.learner, state.objective, batch, k_update).compile()
    return call, _flops(step)


def epoch_probe(trainer, state, cache_dir=None):
    """The whole epoch as training runs it: jitted, the state donated (the buffer updated in place).

    Returns the call, the compile time (trace + lower + compile) and whether the executable came
    from the persistent compilation cache (no new cache entry was written)."""
    import jax

    cache_before = _cache_entries(cache_dir)
    start = time.perf_counter()
    epoch = jax.jit(trainer.epoch, donate_argnums=0).lower(state).compile()
    compile_s = time.perf_counter() - start
    cache_hit = cache_dir is not None and _cache_entries(cache_dir) == cache_before
    box = {"state": own_buffers(state)}

    def fn():
        box["state"], _ = jax.block_until_ready(epoch(box["state"]))

    fn()  # warm-up
    return timed(fn), compile_s, cache_hit


def _flops(compiled) -> float:
    """FLOPs from XLA cost analysis; it is a dict or a list of dicts depending on the jax version."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = float((cost or {}).get("flops", float("nan")))
    return flops if flops > 0 else float("nan")


def _cache_entries(path) -> int:
    """Files in the compilation cache: a compile that adds none came from the cache."""
    return sum(1 for _ in Path(path).iterdir()) if path and Path(path).is_dir() else 0
