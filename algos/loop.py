"""The jitted training loop: ``make_train(config, world, objective, learner)``.

An epoch is a sequence of *phases*, each ``(state, data) -> (state, data, metrics)``:

- ``collect``: a ``lax.scan`` rollout of the skill-conditioned policy in ``num_envs`` worlds
  (the world bound to its params from the TrainState);
- ``add``: the transitions into the replay buffer;
- ``update``: a ``lax.scan`` of ``updates_per_epoch`` gradient steps (objective first, then the
  learner on rewards recomputed with the just-updated objective, as METRA does).

A method that needs another phase (train a world model, roll out in it) subclasses ``Trainer``
and returns a longer ``phases()``; nothing here is copied. Everything a run needs to continue
lives in one ``TrainState`` pytree. The contracts of the parts are ``skills/base.py``
(objectives), ``algos/base.py`` (learners) and ``worlds/base.py`` (worlds).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from algos.base import Learner, check_learner
from algos.buffer import Replay
from algos.trajectory_buffer import TrajectoryReplay
from worlds.base import State, World
from worlds.wrappers import wrap_for_eval, wrap_for_training


# The name of the vmapped axis over run members (seeds x swept settings). Worlds reduce their
# "any episode ended" flag over it so that resets stay behind a real ``lax.cond`` under vmap.
MEMBER_AXIS = "members"


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    num_envs: int = 16
    rollout_length: int = 50  # env steps per world per epoch
    updates_per_epoch: int = 50
    batch_size: int = 256
    buffer_size: int = 100_000
    prefill_steps: int = 2_000  # random-action steps collected before the first epoch
    eval_episodes: int = 48
    # Reset worlds behind a lax.cond only on steps where an episode ends, instead of every step
    # (much faster for worlds with costly resets, e.g. DMC); see worlds.wrappers.AutoReset.
    conditional_reset: bool = True

    def validate(self):
        for name in ("num_envs", "rollout_length", "updates_per_epoch", "batch_size", "buffer_size", "eval_episodes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.prefill_steps < 0:
            raise ValueError(f"prefill_steps must be >= 0, got {self.prefill_steps}")
        if self.buffer_size < self.batch_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must be at least batch_size ({self.batch_size})")
        if max(self.prefill_steps, self.steps_per_epoch) < self.batch_size:
            raise ValueError(
                f"the first batch of {self.batch_size} needs at least that many stored transitions: "
                f"raise prefill_steps ({self.prefill_steps}) or num_envs*rollout_length ({self.steps_per_epoch})"
            )
        if self.steps_per_epoch > self.buffer_size:
            raise ValueError(f"one epoch ({self.steps_per_epoch} steps) does not fit in buffer_size ({self.buffer_size})")
        prefill = self.prefill_rollout_length * self.num_envs  # prefill_steps rounded up to whole rollouts
        if prefill > self.buffer_size:
            raise ValueError(f"the prefill ({prefill} steps) does not fit in buffer_size ({self.buffer_size})")

    @property
    def steps_per_epoch(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def prefill_rollout_length(self) -> int:
        return -(-self.prefill_steps // self.num_envs)


@struct.dataclass
class TrainState:
    learner: Any
    objective: Any
    buffer: Any
    world: State  # batched over num_envs
    world_params: Any  # learnable parameters of the world ({} for physics)
    skill: jax.Array  # [num_envs, skill_size]
    key: jax.Array
    env_steps: jax.Array
    epoch: jax.Array


@dataclasses.dataclass
class Trainer:
    """The pure functions of one training run. All of them can be jitted and vmapped over seeds."""

    config: LoopConfig
    world: World
    objective: Any  # a skills.base.SkillObjective
    learner: Learner
    replay: Replay

    def __post_init__(self):
        self.env = wrap_for_training(
            self.world, self.config.num_envs, sync_axis=MEMBER_AXIS, conditional_reset=self.config.conditional_reset
        )

    # ---- state ---------------------------------------------------------------------------------
    def init(self, key) -> TrainState:
        k_learner, k_objective, k_world, k_skill, k_world_params, key = jax.random.split(key, 6)
        n = self.config.num_envs
        world_params = self.world.init_params(k_world_params)
        state = TrainState(
            learner=self.learner.init(k_learner),
            objective=self.objective.init(k_objective),
            buffer=self.replay.init(),
            world=self.env.bind(world_params).reset(k_world),
            world_params=world_params,
            skill=self.objective.sample(k_skill, n),
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            epoch=jnp.zeros((), jnp.int32),
        )
        if self.config.prefill_steps > 0:
            state, transitions = self.rollout(state, self.config.prefill_rollout_length, random_actions=True)
            state = state.replace(buffer=self.replay.add(state.buffer, transitions))
        return state

    # ---- hyperparameters as leaves -----------------------------------------------------------------
    def sweepable(self) -> dict:
        """Hyperparameters that live in the TrainState, so one program can vmap over them:
        ``'learner.<name>'`` / ``'objective.<name>'`` -> ``set(state, value) -> state``."""
        out = {}
        for name, setter in self.learner.sweepable().items():
            out[f"learner.{name}"] = lambda state, v, setter=setter: state.replace(learner=setter(state.learner, v))
        for name, setter in self.objective.sweepable().items():
            out[f"objective.{name}"] = lambda state, v, setter=setter: state.replace(objective=setter(state.objective, v))
        return out

    def set_hyperparameters(self, state: TrainState, values: dict) -> TrainState:
        """``values``: {'learner.learning_rate': 3e-4, ...} (scalars, or traced under vmap)."""
        setters = self.sweepable()
        for name, value in values.items():
            state = setters[name](state, value)
        return state

    # ---- acting ---------------------------------------------------------------------------------
    def rollout(self, state: TrainState, length: int, random_actions: bool = False):
        """``length`` steps in every world; returns the new state and [length, num_envs, ...] transitions."""
        n = self.config.num_envs
        env = self.env.bind(state.world_params)
        has_terms = bool(self.world.spec.reward_terms)

        def step(carry, _):
            world, skill, key = carry
            key, k_act, k_skill = jax.random.split(key, 3)
            if random_actions:
                action = self.learner.random_action(k_act, n)
            else:
                action = self.learner.act(state.learner, world.obs, skill, k_act)
            nxt = env.step(world, action)
            transition = {
                "obs": world.obs,
                "action": action,
                "next_obs": nxt.info["final_obs"],
                "skill": skill,
                "reward": nxt.reward,  # the world's own (task) reward, for finetuning
                "done": nxt.done,  # episode ends (termination or time limit), for trajectory replay
                # Bootstrap through time limits: only a real termination zeroes the future.
                "terminal": nxt.done * (1.0 - nxt.info["truncation"]),
            }
            if has_terms:  # the world's named reward terms (costs, ...), for objectives that use them
                transition["terms"] = env.reward_terms(nxt)
            new_skill = jnp.where(nxt.done[:, None] > 0, self.objective.sample(k_skill, n), skill)
            return (nxt, new_skill, key), transition

        key, k_roll = jax.random.split(state.key)
        (world, skill, _), transitions = jax.lax.scan(step, (state.world, state.skill, k_roll), None, length)
        state = state.replace(world=world, skill=skill, key=key, env_steps=state.env_steps + length * n)
        return state, transitions

    # ---- learning -------------------------------------------------------------------------------
    def update_step(self, learner_params, objective_params, batch, key):
        """One gradient step: objective first, then the learner on freshly recomputed rewards."""
        k_objective, k_learner = jax.random.split(key)
        batch = self.objective.relabel(objective_params, batch, k_objective)  # e.g. skill <- future goal
        objective_params, objective_metrics = self.objective.update(objective_params, batch, k_objective)
        rewards = self.objective.reward(objective_params, batch)
        learner_params, learner_metrics = self.learner.update(learner_params, batch, rewards, k_learner)
        reward_metrics = {f"reward/{name}": jnp.mean(rewards[:, k]) for k, name in enumerate(self.objective.reward_names)}
        return learner_params, objective_params, {**objective_metrics, **learner_metrics, **reward_metrics}

    def updates(self, state: TrainState):
        """``updates_per_epoch`` gradient steps on batches from the buffer; metrics are their mean."""

        def body(carry, _):
            learner_params, objective_params, key = carry
            key, k_sample, k_update = jax.random.split(key, 3)
            batch = self.replay.sample(state.buffer, k_sample)
            learner_params, objective_params, metrics = self.update_step(learner_params, objective_params, batch, k_update)
            return (learner_params, objective_params, key), metrics

        key, k_updates = jax.random.split(state.key)
        (learner_params, objective_params, _), metrics = jax.lax.scan(
            body, (state.learner, state.objective, k_updates), None, self.config.updates_per_epoch
        )
        state = state.replace(learner=learner_params, objective=objective_params, key=key)
        return state, jax.tree.map(jnp.mean, metrics)

    # ---- the epoch, in phases ----------------------------------------------------------------------
    def collect(self, state: TrainState, data: dict):
        """Roll the policy out for ``rollout_length`` steps; the transitions go to ``data``."""
        state, transitions = self.rollout(state, self.config.rollout_length)
        return state, {**data, "transitions": transitions}, {}

    def add(self, state: TrainState, data: dict):
        """The collected transitions into the replay buffer."""
        return state.replace(buffer=self.replay.add(state.buffer, data["transitions"])), data, {}

    def update(self, state: TrainState, data: dict):
        state, metrics = self.updates(state)
        return state, data, metrics

    def phases(self) -> tuple:
        """The epoch's phases in order; each maps ``(state, data) -> (state, data, metrics)``, where
        ``data`` carries what a phase hands to the next (e.g. the collected transitions)."""
        return (self.collect, self.add, self.update)

    def epoch(self, state: TrainState):
        data, metrics = {}, {}
        for phase in self.phases():
            state, data, phase_metrics = phase(state, data)
            metrics.update(phase_metrics)
        return state.replace(epoch=state.epoch + 1), metrics

    def run(self, state: TrainState, n_epochs: int):
        """``n_epochs`` epochs as one scan; metrics are stacked per epoch."""
        return jax.lax.scan(lambda s, _: self.epoch(s), state, None, n_epochs)

    # ---- many members in one program ---------------------------------------------------------------
    def init_members(self):
        """Jitted ``keys [members] -> TrainState`` with a leading member axis."""
        return jax.jit(jax.vmap(self.init, axis_name=MEMBER_AXIS))

    def run_members(self):
        """Jitted ``(state, n_epochs) -> (state, metrics [members, n_epochs])``; donates the state."""
        run = jax.vmap(self.run, in_axes=(0, None), axis_name=MEMBER_AXIS)
        return jax.jit(run, static_argnums=1, donate_argnums=0)

    def train(self, key, n_epochs: int):
        """The whole run as one pure function of the key (PureJaxRL style)."""
        return self.run(self.init(key), n_epochs)

    # ---- evaluation -----------------------------------------------------------------------------
    def _eval_episode(self, n: int, key, policy, random_actions):
        """One fixed-length episode in ``n`` worlds, no auto-reset. ``policy(obs, goal_obs, key)``.

        Returns a dict of trajectories [episode_length + 1, n, ...]: ``position`` and, for worlds
        with objects, ``object``. The goal observations (start observation with its leading
        ``position_size`` entries replaced) are what zero-shot goal reaching aims at."""
        env = wrap_for_eval(self.world, n)
        has_objects = self.world.spec.object_size > 0
        k_reset, k_act = jax.random.split(key)

        def observe(world):
            out = {"position": env.position(world), "reward": world.reward}
            if has_objects:
                out["object"] = env.object_position(world)
            return out

        def step(world, key):
            # ``random_actions`` may be traced, so that the policy and its random-action baseline
            # share one compiled program (physics compiles are the slow part on CPU).
            action = jnp.where(random_actions, self.learner.random_action(key, n), policy(world.obs, key))
            world = env.step(world, action)
            return world, observe(world)

        world = env.reset(k_reset)
        _, trajectory = jax.lax.scan(step, world, jax.random.split(k_act, self.world.spec.episode_length))
        return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest], 0), observe(world), trajectory), world

    def _act(self, learner_params, obs, skill, key):
        return self.learner.act(learner_params, obs, skill, key, deterministic=True)

    def eval_positions(self, learner_params, key, n_episodes: int, random_actions=False):
        """Deterministic rollouts of ``n_episodes`` random skills (or uniformly random actions).

        Returns (trajectories {'position': [T+1, n, P], maybe 'object'}, skills [n, skill_size])."""
        k_skill, k_episode = jax.random.split(key)
        skills = self.objective.sample(k_skill, n_episodes)
        policy = lambda obs, key: self._act(learner_params, obs, skills, key)  # noqa: E731
        trajectories, _ = self._eval_episode(n_episodes, k_episode, policy, random_actions)
        return trajectories, skills

    def eval_returns(self, learner_params, key, skills, random_actions=False):
        """Undiscounted task return of one deterministic episode per skill ([n, skill_size] -> [n])."""
        policy = lambda obs, key: self._act(learner_params, obs, skills, key)  # noqa: E731
        trajectories, _ = self._eval_episode(skills.shape[0], key, policy, random_actions)
        return jnp.sum(trajectories["reward"][1:], 0)

    def eval_goals(self, learner_params, objective_params, key, goals, random_actions=False):
        """Zero-shot goal reaching: one deterministic episode per goal position (goals: [G, P]).

        At every step the skill is ``objective.goal_skill(params, obs, goal_obs)``, re-aimed as the
        agent moves. Returns the position trajectories [T+1, G, P]."""
        n_goals, n_pos = goals.shape
        # The same reset as the episode's own (same key split), for the start observations.
        start = wrap_for_eval(self.world, n_goals).reset(jax.random.split(key)[0]).obs
        goal_obs = start.at[:, :n_pos].set(goals)

        def policy(obs, key):
            skill = self.objective.goal_skill(objective_params, obs, goal_obs)
            return self._act(learner_params, obs, skill, key)

        trajectories, _ = self._eval_episode(n_goals, key, policy, random_actions)
        return trajectories["position"]


# Fields of every stored transition; worlds and replay may add more (``terms``, ``future_obs``).
CORE_FIELDS = ("obs", "action", "next_obs", "skill", "reward", "terminal", "done")


def make_train(config: LoopConfig, world: World, objective, learner: Learner, trainer_cls=None) -> Trainer:
    """Build the training functions for ``world x objective x learner``.

    ``objective`` follows ``skills.base.SkillObjective`` (algos does not import skills); the
    checks here are the ones that need all three parts. ``trainer_cls`` may be a ``Trainer``
    subclass with more epoch phases."""
    config.validate()
    if not isinstance(world, World):
        raise TypeError(f"{type(world).__name__} is not a World (worlds/base.py)")
    check_learner(learner)
    spec = world.spec
    if learner.skill_size != objective.skill_size:
        raise ValueError(f"the learner takes skills of size {learner.skill_size}, the objective samples {objective.skill_size}")
    if learner.n_rewards != objective.n_rewards:
        raise ValueError(f"the learner has {learner.n_rewards} reward heads, the objective gives {objective.n_rewards} terms")
    example = {
        "obs": jnp.zeros((spec.obs_size,), jnp.float32),
        "action": jnp.zeros((spec.action_size,), jnp.float32),
        "next_obs": jnp.zeros((spec.obs_size,), jnp.float32),
        "skill": jnp.zeros((objective.skill_size,), jnp.float32),
        "reward": jnp.zeros((), jnp.float32),
        "terminal": jnp.zeros((), jnp.float32),
        "done": jnp.zeros((), jnp.float32),
    }
    if spec.reward_terms:
        example["terms"] = jnp.zeros((len(spec.reward_terms),), jnp.float32)
    available = set(example) | ({"future_obs"} if objective.replay == "trajectories" else set())
    missing = sorted(set(objective.requires) - available)
    if missing:
        raise ValueError(
            f"objective {type(objective).__name__} needs transition field(s) {', '.join(missing)}, which world "
            f"{spec.name} (reward terms: {list(spec.reward_terms) or 'none'}) and {objective.replay} replay do not give"
        )
    if objective.replay == "trajectories":
        replay = TrajectoryReplay(
            config.buffer_size, config.batch_size, example, config.num_envs, spec.episode_length, objective.future_discount
        )
    else:
        replay = Replay(config.buffer_size, config.batch_size, example)
    return (trainer_cls or Trainer)(config, world, objective, learner, replay)
