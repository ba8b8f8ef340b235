"""DeepMind Control Suite worlds on MJX: ``dmc/<domain>_<task>``.

Most worlds are MuJoCo Playground's ports of the DM Control Suite (PyPI ``playground``, import
``mujoco_playground``); the quadruped, which Playground lacks, is built on MJX from dm_control's
own XML in ``worlds/dmc_quadruped.py`` with URLB's task rewards. Playground and dm_control are
imported only when such a world is built (both are slow to import).

| world                    | source                 | obs | act | ``position(state)``                       | cell  |
| ------------------------ | ---------------------- | --- | --- | ----------------------------------------- | ----- |
| dmc/cheetah_run          | Playground CheetahRun  |  17 |   6 | root x (``rootx`` joint)                  | 1.0   |
| dmc/walker_{stand,walk,run} | Playground Walker*  |  24 |   6 | root x (``rootx`` joint)                  | 1.0   |
| dmc/hopper_{stand,hop}   | Playground Hopper*     |  15 |   4 | root x (``rootx`` joint)                  | 1.0   |
| dmc/humanoid_{stand,walk,run} | Playground Humanoid* | 67 | 21 | torso xy (free joint)                   | 1.0   |
| dmc/point_mass_easy      | Playground PointMass   |   4 |   2 | mass xy (arena is ±0.3)                   | 0.03  |
| dmc/reacher_easy         | Playground ReacherEasy |   6 |   2 | fingertip xy (reach radius ≈ 0.22)        | 0.02  |
| dmc/finger_spin          | Playground FingerSpin  |   9 |   2 | spinner tip xz relative to its hinge      | 0.02  |
| dmc/quadruped_{stand,walk,run,jump} | ours (dm_control XML, URLB rewards) | 78 | 12 | torso xy | 1.0 |

Positions are what METRA's coverage uses: x only for the planar runners (cheetah, walker,
hopper), the torso's xy for the 3-D bodies; for the manipulators, the thing the task is about
(the mass, the fingertip, the spinner's tip). Joint-based positions read ``qpos`` (the current
state); fingertip and spinner tip read the body poses MJX last computed.

Details that differ from a plain pass-through:

- ``impl``: Playground 0.2 defaults to the Warp implementation of MJX; the worlds pick
  ``impl="jax"`` when JAX runs on CPU (the Playground ``config_overrides={"impl": ...}``), and
  leave Playground's default on an accelerator. Pass ``impl=`` to choose. The quadruped always
  uses ``"jax"`` (it also runs on GPU).
- Reset and step states are cast with ``strong_types`` so that they have identical types (Playground's
  reset leaves, e.g., ``data.time`` weakly typed; see DESIGN.md's compile trap).
- Reward and done are Playground's (done is Playground's NaN flag; time limits are the
  ``TimeLimit`` wrapper's job); metrics are Playground's reward terms.
- Walker: Playground 0.2 puts the torso's zz orientation where dm_control's ``height``
  observation (the torso's z) belongs; the world puts the height back (index 14).
- Reacher: Playground 0.2 builds its model with ``MjSpec.find_body``, which MuJoCo 3.17 lacks
  (``load_playground`` builds it with ``MjSpec.body``), and its reset observation measures the
  fingertip-to-target vector before placing the target; the world recomputes it.
- Observations and rewards of Playground's ports read body poses and sensors of the last MJX
  sub-step (``mjx.step`` runs kinematics before it integrates), one sub-step behind dm_control,
  whose (legacy) step ends with ``mj_step1``; quantities read from ``qpos``/``qvel`` are current.
- Playground's ports are not dm_control's simulations: they turn ``eulerdamp`` off, cap the
  solver at 2 to 4 iterations, shorten some sub-steps (reacher 0.02 -> 0.005 s, finger 0.01 ->
  0.005 s with ``implicitfast``) and prune contacts (``max_geom_pairs``). From the same state,
  joint velocities after one control step differ from ``dm_control.suite.load``'s by O(0.1 to 1)
  (cheetah, reacher, humanoid: mostly ``eulerdamp``; walker, humanoid: the solver caps), and
  Playground's humanoid resets to the model's default pose (qpos0) without dm_control's joint
  randomisation.
  With dm_control's model given the port's settings, MJX agrees with MuJoCo C to ~1e-5 except
  on steps where a pruned contact matters (``tests/test_dmc.py`` states the tolerances).
- ``config_overrides`` go to Playground's config (e.g. ``{"impl": "warp"}``) or, for the
  quadruped, to ``worlds.dmc_quadruped.Quadruped`` (``iterations``, ``ls_iterations``,
  ``self_collisions``: faster, less faithful).

Episode length: dm_control's episodes are 1000 control steps (``episode_length=1000``, the default
here, as URLB); the Hydra configs use 200-step episodes, as METRA does for state-based worlds.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from worlds import xla_cpu
from worlds.base import State, World, WorldSpec, strong_types


@dataclasses.dataclass(frozen=True)
class DMCEntry:
    source: str  # "playground" or "quadruped"
    env: str  # Playground env name, or the quadruped task
    obs_size: int
    position: str  # how position(state) is read, see DMCWorld.position
    position_size: int
    coverage_cell: float


DMC_WORLDS: dict[str, DMCEntry] = {
    "cheetah_run": DMCEntry("playground", "CheetahRun", 17, "rootx", 1, 1.0),
    "walker_stand": DMCEntry("playground", "WalkerStand", 24, "rootx", 1, 1.0),
    "walker_walk": DMCEntry("playground", "WalkerWalk", 24, "rootx", 1, 1.0),
    "walker_run": DMCEntry("playground", "WalkerRun", 24, "rootx", 1, 1.0),
    "hopper_stand": DMCEntry("playground", "HopperStand", 15, "rootx", 1, 1.0),
    "hopper_hop": DMCEntry("playground", "HopperHop", 15, "rootx", 1, 1.0),
    "humanoid_stand": DMCEntry("playground", "HumanoidStand", 67, "free_xy", 2, 1.0),
    "humanoid_walk": DMCEntry("playground", "HumanoidWalk", 67, "free_xy", 2, 1.0),
    "humanoid_run": DMCEntry("playground", "HumanoidRun", 67, "free_xy", 2, 1.0),
    "point_mass_easy": DMCEntry("playground", "PointMass", 4, "mass_xy", 2, 0.03),
    "reacher_easy": DMCEntry("playground", "ReacherEasy", 6, "fingertip_xy", 2, 0.02),
    "finger_spin": DMCEntry("playground", "FingerSpin", 9, "spinner_tip_xz", 2, 0.02),
    "quadruped_stand": DMCEntry("quadruped", "stand", 78, "free_xy", 2, 1.0),
    "quadruped_walk": DMCEntry("quadruped", "walk", 78, "free_xy", 2, 1.0),
    "quadruped_run": DMCEntry("quadruped", "run", 78, "free_xy", 2, 1.0),
    "quadruped_jump": DMCEntry("quadruped", "jump", 78, "free_xy", 2, 1.0),
}

WALKER_HEIGHT_INDEX = 14  # after the 7 bodies' (xx, xz) orientations


def default_impl() -> str | None:
    """``"jax"`` on CPU; ``None`` (Playground's default, Warp) on an accelerator."""
    return "jax" if jax.default_backend() == "cpu" else None


def load_playground(env_name: str, config_overrides: dict | None = None):
    """``mujoco_playground.dm_control_suite.load``, with a fix for Playground 0.2.0's reacher.

    Playground 0.2.0 builds the reacher through ``MjSpec.find_body`` whenever the string
    ``mujoco.__version__ >= "3.3.0"`` is false, which it is for "3.17.0" (a string comparison),
    and MuJoCo 3.17 has no ``find_body``. The reacher is built here the same way with
    ``MjSpec.body``.
    """
    from mujoco_playground import dm_control_suite  # slow import: only when a world is built

    if env_name in ("ReacherEasy", "ReacherHard"):
        return _reacher(env_name, config_overrides)
    return dm_control_suite.load(env_name, config_overrides=config_overrides or None)


def _reacher(env_name: str, config_overrides: dict | None):
    import mujoco
    from mujoco import mjx
    from mujoco_playground._src import mjx_env
    from mujoco_playground._src.dm_control_suite import common, reacher

    target_size = reacher.BIG_TARGET if env_name == "ReacherEasy" else reacher.SMALL_TARGET

    class Reacher(reacher.Reacher):
        def __init__(self):
            mjx_env.MjxEnv.__init__(self, reacher.default_config(), config_overrides or None)
            self._target_size = target_size
            self._xml_path = reacher._XML_PATH.as_posix()
            self._model_assets = common.get_assets()
            spec = mujoco.MjSpec.from_string(reacher._XML_PATH.read_text(), self._model_assets)
            spec.body("target").first_geom().size[0] = target_size
            self._mj_model = spec.compile()
            self._mj_model.opt.timestep = self.sim_dt
            self._mjx_model = mjx.put_model(self._mj_model, impl=self._config.impl)
            self._post_init()

    return Reacher()


class DMCWorld(World):
    """A DM Control Suite task on MJX, through the World protocol.

    ``state.physics`` is the Playground ``State`` (its ``.data`` is the ``mjx.Data``) for the
    Playground ports, and the ``mjx.Data`` itself for the quadruped.
    """

    def __init__(
        self,
        name: str,
        impl: str | None = None,
        episode_length: int = 1000,
        coverage_cell: float | None = None,
        config_overrides: dict | None = None,
    ):
        if name not in DMC_WORLDS:
            raise ValueError(f"unknown dmc world {name!r}; known: {sorted(DMC_WORLDS)}")
        xla_cpu.install()  # MJX's batched Cholesky would deadlock XLA:CPU (worlds/xla_cpu.py)
        self.name = name
        self.entry = entry = DMC_WORLDS[name]
        if entry.source == "playground":
            impl = impl or default_impl()
            overrides = dict(config_overrides or {})
            if impl is not None:
                overrides["impl"] = impl
            self.env = load_playground(entry.env, overrides)
            self.mj_model = self.env.mj_model
            action_size = int(self.env.action_size)
        else:
            from worlds.dmc_quadruped import Quadruped

            self.env = Quadruped(entry.env, impl=impl or "jax", **dict(config_overrides or {}))
            self.mj_model = self.env.mj_model
            action_size = self.env.action_size
        self._position_index = self._position_indices()
        self._spec = WorldSpec(
            name=f"dmc/{name}",
            obs_size=entry.obs_size,
            action_size=action_size,
            episode_length=int(episode_length),
            position_size=entry.position_size,
            coverage_cell=float(entry.coverage_cell if coverage_cell is None else coverage_cell),
        )

    @property
    def spec(self) -> WorldSpec:
        return self._spec

    # --- protocol ----------------------------------------------------------------------------

    def reset(self, key) -> State:
        if self.entry.source == "quadruped":
            return self._wrap_quadruped(self.env.reset(key), {})
        pstate = self.env.reset(key)
        if self.entry.env.startswith("Reacher"):
            # Playground places the target (a mocap body) after its last mjx.forward, so its reset
            # observation measures to_target from the old target position; recompute the poses.
            from mujoco import mjx

            model = self.env.mjx_model
            poses = mjx.kinematics if model.impl == mjx.Impl.JAX else mjx.forward
            data = poses(model, pstate.data)
            pstate = pstate.replace(data=data, obs=self.env._get_obs(data, pstate.info))
        return self._wrap_playground(pstate, {})

    def step(self, state: State, action) -> State:
        if self.entry.source == "quadruped":
            return self._wrap_quadruped(self.env.step(state.physics, action), state.info)
        # Playground's step writes its reward terms into the metrics dict it is given: hand it a
        # copy so the caller's state is never mutated.
        pstate = state.physics.replace(metrics=dict(state.physics.metrics))
        return self._wrap_playground(self.env.step(pstate, jnp.clip(action, -1.0, 1.0)), state.info)

    def position(self, state: State) -> jax.Array:
        data = self.data(state)
        kind, idx = self.entry.position, self._position_index
        if kind in ("rootx", "free_xy", "mass_xy"):
            return data.qpos[idx]
        if kind == "fingertip_xy":
            return data.geom_xpos[idx, :2]
        # spinner_tip_xz: the tip site relative to the spinner body's origin (its hinge)
        tip, spinner = idx
        return (data.site_xpos[tip] - data.xpos[spinner])[jnp.array([0, 2])]

    # --- helpers -----------------------------------------------------------------------------

    def data(self, state: State):
        """The ``mjx.Data`` inside a state."""
        return state.physics if self.entry.source == "quadruped" else state.physics.data

    def _position_indices(self):
        m, kind = self.mj_model, self.entry.position
        if kind == "rootx":
            adr = int(m.jnt_qposadr[m.joint("rootx").id])
            return slice(adr, adr + 1)
        if kind in ("free_xy", "mass_xy"):
            return slice(0, 2)  # the free joint / the two slide joints come first in qpos
        if kind == "fingertip_xy":
            return int(m.geom("finger").id)
        return int(m.site("tip").id), int(m.body("spinner").id)

    def _wrap_playground(self, pstate, info) -> State:
        pstate = strong_types(pstate)
        obs = pstate.obs
        if self.entry.env.startswith("Walker"):
            torso = self.mj_model.body("torso").id
            obs = obs.at[WALKER_HEIGHT_INDEX].set(pstate.data.xpos[torso, 2])
        return State(obs=obs, reward=pstate.reward, done=pstate.done, metrics=dict(pstate.metrics), info=info, physics=pstate)

    def _wrap_quadruped(self, data, info) -> State:
        data = strong_types(data)
        reward, metrics = self.env.reward(data)
        done = (jnp.isnan(data.qpos).any() | jnp.isnan(data.qvel).any()).astype(jnp.float32)
        return State(
            obs=self.env.observation(data),
            reward=jnp.asarray(reward, jnp.float32),
            done=done,
            metrics={k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()},
            info=info,
            physics=data,
        )
