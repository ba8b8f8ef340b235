"""URLB's quadruped tasks (stand, walk, run, jump) on MJX, built from dm_control's own model.

MuJoCo Playground 0.2 has no quadruped, so this module builds one:

- **Model.** ``dm_control.suite.quadruped.make_model`` with dm_control's shipped assets
  (``dm_control.suite.common.ASSETS``): the very XML string ``dm_control.suite.load('quadruped',
  'walk')`` compiles (walls, ball, target, terrain height field and range finders stripped, as
  dm_control does for these tasks). Nothing is downloaded. MJX (``impl="jax"``) compiles it as
  it is: the ellipsoid torso, the tendon equality couplings, the filter actuators and the
  accelerometer/gyro/velocimeter/force/torque/subtreecom sensors are all supported, so nothing
  had to be stripped beyond what dm_control strips itself.
- **Speed.** MJX-JAX has no broad phase: it evaluates all 191 candidate contact pairs (35 with
  the floor, 156 between the body's own parts) every sub-step, and under ``vmap`` the Newton
  solver runs until the slowest world converges (dm_control's caps: 100 iterations, 50 line
  search). Faithful by default; two opt-in changes, both off by default, trade fidelity for
  speed the way Playground's ports do: ``iterations``/``ls_iterations`` caps and
  ``self_collisions=False`` (only body-floor contacts). Measured here with 16 worlds on CPU:
  168 control steps/s as shipped, 685 with ``iterations=4, ls_iterations=8``, 731 without self
  collisions, 2,053 with both.
- **Step.** ``CONTROL_TIMESTEP / timestep`` = 4 ``mjx.step`` calls, then the position and
  velocity stages are recomputed at the new state (``kinematics``, ``com_pos``, ``sensor_pos``,
  ``com_vel``, ``sensor_vel``). That is what dm_control's (legacy) ``Physics.step`` does with its
  trailing ``mj_step1``: the observation and reward see body poses and velocity sensors of the
  *new* state, while acceleration-stage sensors (accelerometer, force, torque) come from the last
  sub-step, exactly as in dm_control.
- **Actions** in [-1, 1] are mapped affinely onto each actuator's ``ctrlrange`` (lift actuators
  reach 1.1, extend actuators 0.8), as URLB's ``action_scale.Wrapper`` does.
- **Reset** follows dm_control's ``Move.initialize_episode``: a uniformly random orientation
  (normalised Gaussian quaternion), joints at zero, and the lowest height on dm_control's 1 cm
  grid at which the body does not touch the floor. dm_control finds that height by stepping up
  and calling ``mj_forward`` until ``ncon == 0``; here it is computed in closed form from each
  floor-colliding geom's lowest point, which gives the same grid height.
- **Rewards** are written from URLB's task definitions (``custom_dmc_tasks/quadruped.py``) and
  dm_control's ``Move`` task:
  ``upright = tol(torso_zz, (1, inf), margin=2, linear, value_at_margin=0)``;
  stand ``= upright``; walk/run ``= upright * tol(velocimeter_x, (v, inf), margin=v, linear, 0.5)``
  with v = 0.5 / 5; jump ``= upright * tol(com_z, (1, inf), margin=1, linear, 0.5)``.
- **Observation** (78 numbers, dm_control's order): hinge qpos (16), hinge qvel (16), actuator
  activations (12), torso velocimeter (3), torso zz (1), accelerometer + gyro (6, sensor order),
  arcsinh of the toe force and torque sensors (24).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

CONTROL_TIMESTEP = 0.02
TIME_LIMIT = 20.0  # seconds, as dm_control and URLB: 1000 control steps
TASKS = {  # task -> (floor size as dm_control/URLB build it, reward kind, target)
    "stand": (20 * 0.5, "stand", 0.0),
    "walk": (20 * 0.5, "move", 0.5),
    "run": (20 * 5.0, "move", 5.0),
    "jump": (20 * 0.5, "jump", 1.0),
}
OBS_SIZE = 78


def tolerance(x, lower: float, upper: float, margin: float, value_at_margin: float):
    """dm_control's ``rewards.tolerance`` with the linear sigmoid (the only one these tasks use)."""
    in_bounds = (lower <= x) & (x <= upper)
    d = jnp.where(x < lower, lower - x, x - upper) / margin
    scaled = d * (1.0 - value_at_margin)
    outside = jnp.where(jnp.abs(scaled) < 1.0, 1.0 - scaled, 0.0)
    return jnp.where(in_bounds, 1.0, outside)


def model_xml(task: str) -> tuple[str, dict]:
    """dm_control's quadruped XML for ``task`` and its assets (all shipped in dm-control)."""
    from dm_control.suite import common
    from dm_control.suite import quadruped as dmc_quadruped

    floor_size = TASKS[task][0]
    return dmc_quadruped.make_model(floor_size=floor_size), common.ASSETS


def _lowest_point(gtype, size, pos, mat):
    """Lowest world z of a primitive geom (sphere, capsule, ellipsoid, cylinder, box)."""
    zrow = mat[2]  # z components of the geom's local axes
    ax = jnp.abs(zrow[2])
    sphere = size[0]
    capsule = ax * size[1] + size[0]
    ellipsoid = jnp.sqrt(jnp.sum((zrow * size) ** 2))
    cylinder = ax * size[1] + size[0] * jnp.sqrt(jnp.clip(1.0 - ax**2, 0.0, 1.0))
    box = jnp.sum(jnp.abs(zrow) * size)
    G = mujoco.mjtGeom
    types = [G.mjGEOM_SPHERE, G.mjGEOM_CAPSULE, G.mjGEOM_ELLIPSOID, G.mjGEOM_CYLINDER]
    extent = jnp.select([gtype == int(t) for t in types], [sphere, capsule, ellipsoid, cylinder], box)
    return pos[2] - extent


class Quadruped:
    """One URLB quadruped task as a pair of pure functions on ``mjx.Data``."""

    def __init__(
        self,
        task: str = "walk",
        impl: str = "jax",
        iterations: int | None = None,
        ls_iterations: int | None = None,
        self_collisions: bool = True,
    ):
        if task not in TASKS:
            raise ValueError(f"unknown quadruped task {task!r}; known: {sorted(TASKS)}")
        if impl != "jax":
            # The step refreshes the position/velocity stages with MJX-JAX functions; the JAX
            # implementation also runs on GPU.
            raise ValueError("the quadruped worlds support impl='jax' only")
        self.task = task
        _, self._kind, self._target = TASKS[task]
        xml, assets = model_xml(task)
        m = mujoco.MjModel.from_xml_string(xml, assets)
        if iterations is not None:
            m.opt.iterations = int(iterations)
        if ls_iterations is not None:
            m.opt.ls_iterations = int(ls_iterations)
        if not self_collisions:  # body geoms keep contype 1 (they still hit the floor) but attract nothing
            m.geom_conaffinity[m.geom_bodyid != 0] = 0
        self.mj_model = m
        self.mjx_model = mjx.put_model(m, impl=impl)
        self.n_substeps = int(round(CONTROL_TIMESTEP / m.opt.timestep))
        self.action_size = int(m.nu)

        S = mujoco.mjtSensor
        hinges = np.flatnonzero(m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
        self._hinge_qpos = m.jnt_qposadr[hinges]
        self._hinge_dof = m.jnt_dofadr[hinges]
        self._torso = m.body("torso").id
        self._root_qpos = m.jnt_qposadr[m.joint("root").id]

        def sensor_idx(*types):
            ids = np.flatnonzero(np.isin(m.sensor_type, types))
            return np.concatenate([np.arange(m.sensor_adr[i], m.sensor_adr[i] + m.sensor_dim[i]) for i in ids])

        self._velocimeter = sensor_idx(S.mjSENS_VELOCIMETER)
        self._imu = sensor_idx(S.mjSENS_GYRO, S.mjSENS_ACCELEROMETER)
        self._force_torque = sensor_idx(S.mjSENS_FORCE, S.mjSENS_TORQUE)
        self._com = sensor_idx(S.mjSENS_SUBTREECOM)
        lo, hi = m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1]
        self._ctrl_mid, self._ctrl_half = (hi + lo) / 2, (hi - lo) / 2

        floor = m.geom("floor").id
        collides = ((m.geom_contype & m.geom_conaffinity[floor]) | (m.geom_conaffinity & m.geom_contype[floor])) != 0
        self._floor_geoms = np.flatnonzero(collides & (m.geom_bodyid != 0))

    # --- physics ---------------------------------------------------------------------------

    def _make_data(self, qpos):
        data = mjx.make_data(self.mj_model, impl="jax")
        return data.replace(qpos=qpos)

    def clearance_height(self, quat):
        """dm_control's ``_find_non_contacting_height`` for root orientation ``quat`` at x=y=0."""
        qpos = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        qpos = qpos.at[self._root_qpos + 3 : self._root_qpos + 7].set(quat)
        qpos = qpos.at[self._root_qpos : self._root_qpos + 3].set(0.0)
        data = mjx.kinematics(self.mjx_model, self._make_data(qpos))
        g = self._floor_geoms
        m = self.mj_model
        lowest = jax.vmap(_lowest_point)(
            jnp.asarray(m.geom_type[g]), jnp.asarray(m.geom_size[g], jnp.float32), data.geom_xpos[g], data.geom_xmat[g]
        )
        depth = jnp.maximum(-jnp.min(lowest), 0.0)
        # dm_control tries z = 0, 0.01, 0.02, ... and keeps the first one without contacts.
        return jnp.floor(depth / 0.01 + 1.0) * 0.01

    def reset(self, key) -> mjx.Data:
        quat = jax.random.normal(key, (4,))
        quat = quat / jnp.linalg.norm(quat)
        z = self.clearance_height(quat)
        qpos = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        qpos = qpos.at[self._root_qpos + 3 : self._root_qpos + 7].set(quat)
        qpos = qpos.at[self._root_qpos : self._root_qpos + 3].set(jnp.stack([0.0, 0.0, z]))
        return mjx.forward(self.mjx_model, self._make_data(qpos))

    def ctrl(self, action):
        """Actions in [-1, 1] -> each actuator's ctrlrange (URLB's action_scale wrapper)."""
        return self._ctrl_mid + self._ctrl_half * jnp.clip(action, -1.0, 1.0)

    def step(self, data: mjx.Data, action) -> mjx.Data:
        m = self.mjx_model
        data = data.replace(ctrl=self.ctrl(action).astype(data.ctrl.dtype))
        data = jax.lax.scan(lambda d, _: (mjx.step(m, d), None), data, None, length=self.n_substeps)[0]
        # dm_control's trailing mj_step1: position/velocity quantities at the new state.
        data = mjx.kinematics(m, data)
        data = mjx.com_pos(m, data)
        data = mjx.sensor_pos(m, data)
        data = mjx.com_vel(m, data)
        return mjx.sensor_vel(m, data)

    # --- task --------------------------------------------------------------------------------

    def observation(self, d: mjx.Data):
        s = d.sensordata
        return jnp.concatenate(
            [
                d.qpos[self._hinge_qpos],
                d.qvel[self._hinge_dof],
                d.act,
                s[self._velocimeter],
                d.xmat[self._torso, 2, 2][None],
                s[self._imu],
                jnp.arcsinh(s[self._force_torque]),
            ]
        )

    def reward(self, d: mjx.Data):
        upright = tolerance(d.xmat[self._torso, 2, 2], 1.0, jnp.inf, 2.0, 0.0)
        metrics = {"reward/upright": upright}
        if self._kind == "stand":
            return upright, metrics
        if self._kind == "move":
            term = tolerance(d.sensordata[self._velocimeter][0], self._target, jnp.inf, self._target, 0.5)
            metrics["reward/move"] = term
        else:  # jump
            term = tolerance(d.sensordata[self._com][2], self._target, jnp.inf, self._target, 0.5)
            metrics["reward/jump"] = term
        return upright * term, metrics

    def torso_xy(self, d: mjx.Data):
        return d.qpos[self._root_qpos : self._root_qpos + 2]
