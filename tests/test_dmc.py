"""DMC worlds on MJX: types, whole episodes without NaN, and parity with dm_control's C worlds.

Compiles dominate the cost here (10 to 60 s per world), so each domain is compiled ONCE: one jit
resets a world and steps it for a whole 1000-step episode with random actions, recording the
physics state, observations and rewards, and also the rewards of the domain's other tasks on the
same trajectory (same physics, so their dynamics need no compile of their own). dm_control's
own C environment (``dm_control.suite.load``) is then stepped on the host from the recorded
states with the same actions.

Parity tolerances, and why:

- Twin settings. Playground's ports change simulation settings (2 to 4 solver iterations,
  ``eulerdamp`` off, some sub-step sizes, collision masks of decorative geoms) and read body
  poses one sub-step behind dm_control. Against dm_control *as shipped* joint velocities then
  differ by O(1) after one step (measured by hand with ``python tests/dmc_parity.py <world>``).
  The tests therefore give dm_control's C model the port's settings (``dmc_parity.load_twin``)
  so that what is compared is the task code (observation layout, rewards) and MJX-vs-C
  numerics. The quadruped is ours and keeps dm_control's settings: it is compared with
  dm_control as shipped.
- Open loop (the first ``OPEN_LOOP`` steps from the MJX reset state, both worlds stepping on
  their own): |obs - obs_C| <= 1e-3 + 1e-3 |obs_C| and |r - r_C| <= 1e-4. MJX runs in float32,
  MuJoCo C in float64: errors are 1e-8 to 1e-4 in these steps (relative 1e-6 on velocities of
  ~10). Longer horizons diverge chaotically once contacts change.
- One step (every transition of the episode, dm_control re-synchronised to the MJX state,
  including the solver's warm start): a transition agrees if all of its observation entries meet
  the same 1e-3 tolerance. Playground's MJX models prune contacts (``max_geom_pairs``/
  ``max_contact_points``): when a pruned contact matters (a walker's knee touching its other
  leg, a humanoid on the ground) the step differs by O(1), so a minimum *fraction* of agreeing
  transitions is asserted per domain (``AGREE``, set below the measured fraction), plus a
  bound on reward errors: at least that fraction within 1e-3 and none above 0.05.
"""

from __future__ import annotations

import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("mujoco_playground")
pytest.importorskip("dm_control")

import dmc_parity as P  # noqa: E402

import worlds  # noqa: E402
from worlds.dmc import DMC_WORLDS  # noqa: E402

EPISODE = 1000  # dm_control's episode: 1000 control steps
OPEN_LOOP = 5
ATOL = RTOL = 1e-3

# primary world (compiled) -> the other tasks of its domain (rewards checked on its trajectory)
DOMAINS = {
    "cheetah_run": (),
    "walker_walk": ("walker_stand", "walker_run"),
    "hopper_hop": ("hopper_stand",),
    "humanoid_walk": ("humanoid_stand", "humanoid_run"),
    "point_mass_easy": (),
    "reacher_easy": (),
    "finger_spin": (),
    "quadruped_walk": ("quadruped_stand", "quadruped_run", "quadruped_jump"),
}
# minimum fraction of the 1000 one-step transitions that agree (measured here, seed 0: cheetah,
# point mass, reacher 1.000; finger 0.999; quadruped 0.998; walker 0.944; hopper 0.933;
# humanoid 0.823)
AGREE = {
    "cheetah_run": 0.95,
    "walker_walk": 0.85,
    "hopper_hop": 0.85,
    "humanoid_walk": 0.7,
    "point_mass_easy": 0.95,
    "reacher_easy": 0.95,
    "finger_spin": 0.95,
    "quadruped_walk": 0.95,
}
HEAVY = {"humanoid_walk", "quadruped_walk"}  # 40 to 80 s of compile each


def _domain_params():
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in DOMAINS]


@functools.lru_cache(maxsize=None)
def episode(name: str):
    return P.mjx_episode(name, EPISODE, seed=0, extra_tasks=DOMAINS[name])


# --- cheap: no compiles -----------------------------------------------------------------------


def test_registry_lists_every_dmc_world():
    assert {n for n in worlds.names() if n.startswith("dmc/")} == {f"dmc/{n}" for n in DMC_WORLDS}
    assert set(DOMAINS) | {t for ts in DOMAINS.values() for t in ts} == set(DMC_WORLDS)
    assert set(P.DMC_TWIN) == set(DMC_WORLDS)
    with pytest.raises(ValueError):
        worlds.make("dmc/cheetah_run", no_such_option=1)


def test_importing_worlds_loads_neither_playground_nor_dm_control():
    import subprocess

    code = "import sys, worlds; print(any(m.split('.')[0] in ('mujoco_playground', 'dm_control') for m in sys.modules))"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", sorted(set(DMC_WORLDS) - set(DOMAINS)))
def test_reset_and_step_have_identical_types(name):
    """The compile trap of DESIGN.md: reset's and step's states must match leaf for leaf.

    (The compiled worlds of DOMAINS check this while their episode is traced.)
    """
    world = worlds.make(f"dmc/{name}")
    state = jax.eval_shape(world.reset, jax.random.PRNGKey(0))
    action = jax.ShapeDtypeStruct((world.spec.action_size,), jnp.float32)
    stepped = jax.eval_shape(world.step, state, action)
    assert P.signature(state) == P.signature(stepped)
    assert state.obs.shape == (world.spec.obs_size,)
    assert state.reward.shape == state.done.shape == ()
    assert jax.eval_shape(world.position, stepped).shape == (world.spec.position_size,)
    assert world.spec.name == f"dmc/{name}" and world.spec.coverage_cell > 0


def test_quadruped_reset_height_matches_dm_control():
    """Our closed-form clearance height == dm_control's search for a non-contacting height."""
    from dm_control import suite
    from dm_control.suite import quadruped as dmc_quadruped

    world = worlds.make("dmc/quadruped_walk")
    quats = np.random.default_rng(0).normal(size=(16, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    ours = np.asarray(jax.jit(jax.vmap(world.env.clearance_height))(jnp.asarray(quats, jnp.float32)))
    physics = suite.load("quadruped", "walk").physics
    theirs = []
    for q in quats:
        dmc_quadruped._find_non_contacting_height(physics, q)
        theirs.append(physics.named.data.qpos["root"][2])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_step_traces_once():
    """A jitted step sees the reset state and the stepped state as the same type: one trace."""
    world = worlds.make("dmc/point_mass_easy")
    traces = []

    @jax.jit
    def step(state, action):
        traces.append(1)
        return world.step(state, action)

    state = jax.jit(world.reset)(jax.random.PRNGKey(0))
    for _ in range(3):
        state = step(state, jnp.ones(world.spec.action_size))
    assert len(traces) == 1


# --- one compile per domain: a whole episode, then parity with dm_control -----------------------


@pytest.mark.parametrize("name", _domain_params())
def test_episode_runs_without_nan(name):
    world, traj, _ = episode(name)
    assert traj.obs.shape == (EPISODE + 1, world.spec.obs_size)
    for field in ("qpos", "qvel", "obs", "reward", "position"):
        assert np.isfinite(getattr(traj, field)).all(), field
    assert not traj.done.any()
    assert traj.position.shape == (EPISODE + 1, world.spec.position_size)
    assert np.ptp(traj.position, axis=0).max() > 0  # the measured position moves
    for task, rewards in traj.rewards_by_task.items():
        assert np.isfinite(rewards).all(), task
    assert ((traj.reward >= 0) & (traj.reward <= 1)).all()  # DMC rewards live in [0, 1]


@pytest.mark.parametrize("name", _domain_params())
def test_parity_with_dm_control(name):
    world, traj, _ = episode(name)
    tasks = (name, *DOMAINS[name])
    twins = {n: P.load_twin(n, like=world) for n in tasks}

    # The reset state's observation, then OPEN_LOOP steps with both worlds on their own.
    P.set_state(twins[name], world, traj, 0)
    obs0, _ = P.twin_observe(twins[name])
    np.testing.assert_allclose(traj.obs[0], obs0, atol=ATOL, rtol=RTOL)
    ol_obs, ol_rew = P.open_loop(world, traj, OPEN_LOOP, twins)
    ref_obs = traj.obs[1 : OPEN_LOOP + 1]
    assert (ol_obs <= ATOL + RTOL * np.abs(ref_obs)).all(), f"open-loop obs errors per step {ol_obs.max(1)}"
    for task, err in ol_rew.items():
        assert err.max() <= 1e-4, f"{task}: open-loop reward errors {err}"

    # Every transition of the episode, re-synchronised.
    os_obs, os_rew = P.one_step(world, traj, EPISODE, twins)
    agree = (os_obs <= ATOL + RTOL * np.abs(traj.obs[1:])).all(1).mean()
    assert agree >= AGREE[name], f"only {agree:.3f} of one-step transitions agree"
    for task, err in os_rew.items():
        assert (err <= 1e-3).mean() >= AGREE[name], f"{task}: {(err <= 1e-3).mean():.3f} of rewards agree"
        assert err.max() <= 0.05, f"{task}: max one-step reward error {err.max()}"
    print(f"\n{name}: open-loop max obs err {ol_obs.max():.2e}; one-step agree {agree:.3f}, median max err "
          f"{np.median(os_obs.max(1)):.2e}, max {os_obs.max():.2e}; reward max err "
          + ", ".join(f"{t} {e.max():.1e}" for t, e in os_rew.items()))  # fmt: skip
