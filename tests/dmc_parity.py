"""Helpers for tests/test_dmc.py: one jitted MJX episode per world, and dm_control's C twin.

Kept apart from the test file so that they can be run by hand to print error tables:
``python tests/dmc_parity.py walker_walk``.
"""

from __future__ import annotations

import collections
import time

import jax
import jax.numpy as jnp
import numpy as np

# world -> (dm_control domain, task); None: URLB-only task, rewards checked with our own numpy
# formulas on dm_control's physics (see _urlb_reward)
DMC_TWIN = {
    "cheetah_run": ("cheetah", "run"),
    "walker_stand": ("walker", "stand"),
    "walker_walk": ("walker", "walk"),
    "walker_run": ("walker", "run"),
    "hopper_stand": ("hopper", "stand"),
    "hopper_hop": ("hopper", "hop"),
    "humanoid_stand": ("humanoid", "stand"),
    "humanoid_walk": ("humanoid", "walk"),
    "humanoid_run": ("humanoid", "run"),
    "point_mass_easy": ("point_mass", "easy"),
    "reacher_easy": ("reacher", "easy"),
    "finger_spin": ("finger", "spin"),
    "quadruped_stand": ("quadruped", "walk"),
    "quadruped_walk": ("quadruped", "walk"),
    "quadruped_run": ("quadruped", "run"),
    "quadruped_jump": ("quadruped", "walk"),
}


def signature(tree):
    """Structure, shapes, dtypes and weak types of a pytree (of arrays or tracers)."""
    leaves = [(x.shape, x.dtype, bool(getattr(x, "weak_type", False))) for x in jax.tree.leaves(tree)]
    return jax.tree.structure(tree), leaves


Trajectory = collections.namedtuple("Trajectory", "actions qpos qvel act qacc_warmstart mocap_pos obs reward done position rewards_by_task")


def mjx_episode(name: str, steps: int, seed: int = 0, extra_tasks: tuple[str, ...] = ()):
    """Resets ``dmc/<name>`` and steps it ``steps`` times with uniform random actions, in ONE jit.

    Returns arrays with a leading time axis of ``steps + 1`` (index 0 is the reset state; actions
    has ``steps`` rows). ``extra_tasks`` are other worlds of the same domain (same physics):
    their rewards are evaluated on the same trajectory inside the same jit, which checks them
    without compiling their dynamics again.
    """
    import worlds

    world = worlds.make(f"dmc/{name}")
    others = [worlds.make(f"dmc/{n}") for n in extra_tasks]

    def task_rewards(state, action):
        out = {}
        for n, w in zip(extra_tasks, others):
            if w.entry.source == "quadruped":
                out[n] = w.env.reward(state.physics)[0]
            else:
                ps = state.physics
                out[n] = w.env._get_reward(ps.data, action, ps.info, dict(ps.metrics))
        return out

    def record(state, action):
        d = world.data(state)
        return dict(
            qpos=d.qpos, qvel=d.qvel, act=d.act, qacc_warmstart=d.qacc_warmstart, mocap_pos=d.mocap_pos, obs=state.obs, reward=state.reward,
            done=state.done, position=world.position(state), rewards_by_task=task_rewards(state, action),
        )  # fmt: skip

    @jax.jit
    def episode(key):
        key, reset_key = jax.random.split(key)
        actions = jax.random.uniform(key, (steps, world.spec.action_size), minval=-1.0, maxval=1.0)
        state = world.reset(reset_key)
        first = record(state, jnp.zeros(world.spec.action_size))
        stepped = world.step(state, actions[0])  # traced only: reset and step must give one type
        if signature(state) != signature(stepped):
            raise TypeError(f"{name}: reset and step states differ:\n{signature(state)}\n{signature(stepped)}")

        def body(state, action):
            state = world.step(state, action)
            return state, record(state, action)

        _, rest = jax.lax.scan(body, state, actions)
        traj = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
        return actions, traj

    t = time.perf_counter()
    actions, traj = jax.block_until_ready(episode(jax.random.PRNGKey(seed)))
    seconds = time.perf_counter() - t
    traj = jax.tree.map(np.asarray, traj)
    return world, Trajectory(actions=np.asarray(actions), **traj), seconds


# --- dm_control's C world ------------------------------------------------------------------


def load_twin(name: str, like=None):
    """dm_control's own environment for world ``name``.

    With ``like`` (a Playground-based DMCWorld), the C model takes the port's simulation settings:
    its ``opt`` (timestep, solver iterations, ``eulerdamp``, integrator, cone), the port's sub-step
    count, its geoms' collision masks, and dm_control's non-legacy step (plain ``mj_step``, so
    body poses are read one sub-step behind, as MJX's ``mjx.step`` leaves them). What remains is
    MJX-vs-C numerics and the task code (observations, rewards). Without ``like``, it is
    dm_control's world as shipped.
    """
    from dm_control import suite

    domain, task = DMC_TWIN[name]
    env = suite.load(domain, task, task_kwargs={"random": 0})
    env.reset()  # task-specific model edits (e.g. finger spin's hinge damping) happen here
    if like is not None and like.entry.source == "playground":
        src, dst = like.mj_model, env.physics.model
        for field in ("timestep", "iterations", "ls_iterations", "disableflags", "enableflags", "integrator", "cone",
                      "solver", "tolerance", "ls_tolerance", "noslip_iterations", "impratio"):  # fmt: skip
            setattr(dst.opt, field, getattr(src.opt, field))
        for g in range(dst.ngeom):
            gname = dst.geom(g).name
            if gname:
                try:
                    sid = src.geom(gname).id
                except KeyError:
                    continue
                dst.geom_contype[g], dst.geom_conaffinity[g] = src.geom_contype[sid], src.geom_conaffinity[sid]
        env._n_sub_steps = like.env.n_substeps
        env.physics.legacy_step = False
    return env


def set_state(env, world, traj: Trajectory, t: int):
    physics = env.physics
    name = world.name
    if name.startswith("reacher"):
        physics.named.model.geom_pos["target", :2] = traj.mocap_pos[t, 0, :2]
    with physics.reset_context():
        physics.data.qpos[:] = traj.qpos[t]
        physics.data.qvel[:] = traj.qvel[t]
        if physics.model.na:
            physics.data.act[:] = traj.act[t]
    # The solver starts from the previous step's accelerations; with Playground's 2 to 4 solver
    # iterations that start matters, so hand dm_control MJX's.
    physics.data.qacc_warmstart[:] = traj.qacc_warmstart[t]


def dmc_action(world, action):
    if world.entry.source == "quadruped":
        return np.asarray(world.env.ctrl(action), np.float64)
    return np.clip(np.asarray(action, np.float64), -1.0, 1.0)


def twin_step(env, action):
    """dm_control's ``Environment.step`` without its step counter: (obs, reward)."""
    physics, task = env.physics, env.task
    task.before_step(action, physics)
    physics.step(env._n_sub_steps)
    task.after_step(physics)
    return twin_observe(env)


def twin_observe(env):
    obs = env.task.get_observation(env.physics)
    if "velocity" in obs and not env.physics.legacy_step and env.physics.model.nsensor and "hinge_velocity" in {
        env.physics.model.sensor(i).name for i in range(env.physics.model.nsensor)
    }:
        # finger: dm_control reads its velocities from jointvel sensors, Playground from qvel; in
        # the port-matched (non-legacy) twin the sensors are a sub-step behind, qvel is not.
        obs["velocity"] = env.physics.data.qvel.copy()
    flat = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in obs.values()])
    return flat, float(env.task.get_reward(env.physics))


def _urlb_reward(name: str, physics) -> float:
    """URLB's quadruped rewards, evaluated with dm_control's own reward utilities on C physics."""
    from dm_control.utils import rewards

    upright = rewards.tolerance(
        physics.torso_upright(), bounds=(1.0, float("inf")), sigmoid="linear", margin=2.0, value_at_margin=0
    )
    task = name.split("_")[1]
    if task == "stand":
        return float(upright)
    if task == "jump":
        com_z = physics.named.data.sensordata["center_of_mass"][2]
        jump = rewards.tolerance(com_z, bounds=(1.0, float("inf")), margin=1.0, value_at_margin=0.5, sigmoid="linear")
        return float(upright * jump)
    speed = {"walk": 0.5, "run": 5.0}[task]
    move = rewards.tolerance(
        physics.torso_velocity()[0], bounds=(speed, float("inf")), margin=speed, value_at_margin=0.5, sigmoid="linear"
    )
    return float(upright * move)


def open_loop(world, traj: Trajectory, horizon: int, twins: dict):
    """From the MJX reset state, step dm_control with the same actions: per-step max errors.

    ``twins`` maps world name -> dm_control env (the first is the one stepped; the others share
    its physics state and only their rewards are read). Returns (obs_err[h], {name: rew_err[h]}).
    """
    names = list(twins)
    env = twins[names[0]]
    set_state(env, world, traj, 0)
    obs_err, rew_err = [], {n: [] for n in names}
    for t in range(horizon):
        obs, _ = twin_step(env, dmc_action(world, traj.actions[t]))
        obs_err.append(np.abs(obs - traj.obs[t + 1]))
        for n in names:
            rew_err[n].append(abs(_reference_reward(twins, n, env) - _mine(world, traj, n, t + 1)))
    return np.array(obs_err), {n: np.array(v) for n, v in rew_err.items()}


def _reference_reward(twins, n: str, env) -> float:
    """dm_control's reward for world ``n``, evaluated on ``env``'s physics (same domain)."""
    if n in ("quadruped_stand", "quadruped_jump"):
        return _urlb_reward(n, env.physics)
    return float(twins[n].task.get_reward(env.physics))


def _mine(world, traj: Trajectory, n: str, t: int) -> float:
    return float(traj.reward[t] if n == world.name else traj.rewards_by_task[n][t])


def one_step(world, traj: Trajectory, steps: int, twins: dict):
    """Re-synchronised: from every MJX state t, one dm_control step with a_t vs MJX state t+1."""
    names = list(twins)
    env = twins[names[0]]
    obs_err, rew_err = [], {n: [] for n in names}
    for t in range(steps):
        set_state(env, world, traj, t)
        obs, _ = twin_step(env, dmc_action(world, traj.actions[t]))
        obs_err.append(np.abs(obs - traj.obs[t + 1]))
        for n in names:
            rew_err[n].append(abs(_reference_reward(twins, n, env) - _mine(world, traj, n, t + 1)))
    return np.array(obs_err), {n: np.array(v) for n, v in rew_err.items()}


def report(name: str, extra: tuple[str, ...] = (), steps: int = 1000, horizon: int = 20):
    world, traj, seconds = mjx_episode(name, steps, extra_tasks=extra)
    print(f"{name}: compile+run {seconds:.1f}s, nan={np.isnan(traj.obs).any()}, done={traj.done.max()}")
    for like in (world, None):
        print("  twin:", "matched to the port" if like is not None else "dm_control as shipped")
        _report(world, traj, {n: load_twin(n, like) for n in (name, *extra)}, steps, horizon)
    return world, traj


def _report(world, traj, twins, steps, horizon):
    ol_obs, ol_rew = open_loop(world, traj, horizon, twins)
    os_obs, os_rew = one_step(world, traj, steps, twins)
    print("  open-loop obs max err per step:", np.array2string(ol_obs.max(1), precision=4, max_line_width=200))
    ok = (os_obs <= 1e-3 + 1e-3 * np.abs(traj.obs[1 : 1 + len(os_obs)])).all(1)
    print(f"  one-step transitions agreeing (atol=rtol=1e-3): {ok.mean():.3f}; median max err {np.median(os_obs.max(1)):.2e}")
    print(f"  one-step obs max err {os_obs.max():.2e} (step, index) {np.unravel_index(os_obs.argmax(), os_obs.shape)}")
    for n in ol_rew:
        print(f"  {n} reward: open-loop max per step", np.array2string(ol_rew[n], precision=4, max_line_width=200), " one-step max", os_rew[n].max())


if __name__ == "__main__":
    import sys

    import os

    sys.path.insert(0, ".")
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/skillax/jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    report(sys.argv[1], tuple(sys.argv[2:]))
