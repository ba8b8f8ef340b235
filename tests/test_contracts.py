"""The written contracts (skills/base.py, algos/base.py, worlds/base.py) and the loop's extension
points: a new objective, world or phase is new code in a new file, never an edit of the loop."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import algos
import skills
from algos.loop import LoopConfig, Trainer, make_train
from skills.base import NoGoalReaching, OneHotPrior, SkillObjective
from worlds.base import State, World, WorldSpec
from worlds.point import PointWorld

ROOT = Path(__file__).resolve().parents[1]
SMALL = LoopConfig(num_envs=4, rollout_length=10, updates_per_epoch=4, batch_size=32, buffer_size=2000, prefill_steps=64, eval_episodes=4)
HIDDEN = [32, 32]


# ---- a toy objective, defined only here --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EastConfig:
    n_skills: int = 2
    speed_weight: float = 1.0


class EastObjective(SkillObjective):
    """Rewards moving east (+x), whatever the skill: the policy must learn to go right."""

    def __init__(self, config: EastConfig, obs_size: int):
        self.config = config
        self.prior = OneHotPrior(config.n_skills)

    def init(self, key):
        return {"weight": jnp.float32(self.config.speed_weight)}

    def sweepable(self):
        return {"speed_weight": lambda p, v: {**p, "weight": jnp.asarray(v, jnp.float32)}}

    def reward(self, params, batch):
        return params["weight"] * (batch["next_obs"][:, :1] - batch["obs"][:, :1])


@pytest.fixture(scope="module")
def east():
    skills.register("east", EastObjective, EastConfig)
    yield
    del skills.OBJECTIVES["east"]


def _parts(world, objective_name="east", objective_options=None, **learner_options):
    objective = skills.make(objective_name, objective_options or {}, world.spec)
    learner = algos.make_learner("sac", {"hidden": HIDDEN, **learner_options}, world.spec, objective.skill_size, objective.n_rewards)
    return objective, learner


def test_a_toy_objective_from_a_test_file_trains_through_the_registry(east):
    """Registered from this file (no edit of skills/__init__.py), built by name like any other,
    trained by the unchanged loop: its deterministic policy ends far east, random actions do not."""
    world = PointWorld(episode_length=20, max_speed=0.5)
    objective, learner = _parts(world, learning_rate=3e-3)
    assert objective.skill_size == 2 and not objective.goal_reaching
    trainer = make_train(SMALL, world, objective, learner)
    state, metrics = jax.jit(trainer.train, static_argnums=1)(jax.random.PRNGKey(0), 60)
    assert "reward/skill" in metrics and "sac/q_head0" in metrics
    key = jax.random.PRNGKey(1)
    policy, _ = jax.jit(trainer.eval_positions, static_argnums=2)(state.learner, key, 8, False)
    random, _ = jax.jit(trainer.eval_positions, static_argnums=2)(state.learner, key, 8, True)
    east_policy = float(np.mean(np.asarray(policy["position"])[-1, :, 0]))
    east_random = float(np.mean(np.asarray(random["position"])[-1, :, 0]))
    # 20 steps of at most 0.5 east: the policy should get most of the way; random walks stay near 0.
    assert east_policy > 5.0, east_policy
    assert abs(east_random) < 2.0, east_random


def test_registries_take_only_contract_classes(east):
    with pytest.raises(TypeError, match="not a SkillObjective"):
        skills.register("bad", object, EastConfig)
    with pytest.raises(TypeError, match="dataclass"):
        skills.register("bad", EastObjective, dict)
    with pytest.raises(TypeError, match="not a Learner"):
        algos.register_learner("bad", EastObjective, EastConfig)
    with pytest.raises(ValueError, match="no option"):
        skills.make("east", {"n_skill": 3}, PointWorld().spec)
    assert "bad" not in skills.OBJECTIVES and "bad" not in algos.LEARNERS


def test_defaults_of_the_objective_contract(east):
    objective = skills.make("east", {"n_skills": 3}, PointWorld().spec)
    batch = {"obs": jnp.zeros((5, 2)), "skill": jnp.zeros((5, 3))}
    assert objective.relabel(None, batch, None) is batch  # identity
    assert objective.update({"w": 1}, batch, None) == ({"w": 1}, {})
    assert objective.replay == "transitions" and objective.requires == () and objective.eval_goals is None
    assert objective.reward_names == ("skill",)
    np.testing.assert_array_equal(objective.skill_candidates(jax.random.PRNGKey(0), 10), np.eye(3))  # every discrete skill
    with pytest.raises(NoGoalReaching, match="no zero-shot goal reaching"):
        objective.goal_skill(None, batch["obs"], batch["obs"])


def test_no_probing_of_objectives_or_learners():
    """The loop, evaluation and finetuning use the written hooks, never hasattr/getattr on the parts."""
    probe = re.compile(r"(hasattr|getattr)\((self\.|trainer\.|trainer_p\.|setup\.)?(objective|learner|world)\b")
    found = []
    for path in [*ROOT.glob("algos/*.py"), *ROOT.glob("experiments/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if probe.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


# ---- the skill beside the observation ------------------------------------------------------------


def test_the_learner_gets_the_skill_as_its_own_input(east):
    """act(params, obs, skill, ...) and batches with a ``skill`` field: SAC's actor reads both, so
    changing only the skill changes the action."""
    world = PointWorld()
    objective, learner = _parts(world, objective_options={"n_skills": 4})
    params = learner.init(jax.random.PRNGKey(0))
    obs = jnp.zeros((4, 2))
    actions = np.asarray(learner.act(params, obs, jnp.eye(4), None, deterministic=True))
    assert actions.shape == (4, 2)
    assert len({tuple(np.round(a, 6)) for a in actions}) == 4


# ---- reward terms from the world -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CostlyPoint(PointWorld):
    """The point world with one named reward term: a cost of 1 on steps that end left of x = 0."""

    @property
    def spec(self) -> WorldSpec:
        return self._spec(name="costly_point", reward_terms=("cost",))

    def step(self, state, action):
        nxt = super().step(state, action)
        cost = (nxt.physics[0] < 0.0).astype(jnp.float32)
        return nxt.replace(metrics={"cost": cost})

    def reset(self, key):
        return super().reset(key).replace(metrics={"cost": jnp.zeros((), jnp.float32)})

    def reward_terms(self, state):
        return state.metrics["cost"][None]


class CostAware(EastObjective):
    """Two heads: east speed and the world's cost term."""

    n_rewards = 2
    requires = ("terms",)
    reward_names = ("east", "cost")

    def reward(self, params, batch):
        return jnp.concatenate([super().reward(params, batch), -batch["terms"][:, :1]], -1)


def test_world_reward_terms_reach_transitions_and_heads():
    world = CostlyPoint(episode_length=10, start_noise=1.0)
    objective = CostAware(EastConfig(), world.spec.obs_size)
    learner = algos.make_learner("sac", {"hidden": HIDDEN}, world.spec, objective.skill_size, objective.n_rewards)
    trainer = make_train(SMALL, world, objective, learner)
    state = trainer.init(jax.random.PRNGKey(0))
    _, transitions = jax.jit(lambda s: trainer.rollout(s, 12))(state)
    terms = np.asarray(transitions["terms"])  # [T, num_envs, 1]
    assert terms.shape == (12, SMALL.num_envs, 1)
    # The stored cost is the one of the step's own next state (also across auto-resets).
    np.testing.assert_array_equal(terms[..., 0], (np.asarray(transitions["next_obs"])[..., 0] < 0).astype(np.float32))
    assert 0 < terms.mean() < 1
    _, metrics = jax.jit(trainer.epoch)(state)
    assert {"reward/east", "reward/cost", "sac/q_head0", "sac/q_head1"} <= set(metrics)
    assert float(metrics["reward/cost"]) <= 0.0


def test_an_objective_that_needs_world_terms_is_refused_before_compile():
    world = PointWorld()
    objective = CostAware(EastConfig(), world.spec.obs_size)
    learner = algos.make_learner("sac", {"hidden": HIDDEN}, world.spec, objective.skill_size, objective.n_rewards)
    with pytest.raises(ValueError, match="needs transition field.*terms"):
        make_train(SMALL, world, objective, learner)


def test_head_weights_are_traced_and_sweepable():
    world = CostlyPoint(episode_length=10)
    objective = CostAware(EastConfig(), world.spec.obs_size)
    learner = algos.make_learner("sac", {"hidden": HIDDEN, "head_weights": [1.0, 1.0]}, world.spec, 2, 2)
    trainer = make_train(SMALL, world, objective, learner)
    assert {"learner.head_weights", "objective.speed_weight"} <= set(trainer.sweepable())
    states = trainer.init_members()(jax.random.split(jax.random.PRNGKey(0), 2))
    weights = jnp.asarray([[1.0, 0.0], [0.5, 2.0]])
    states = jax.vmap(trainer.set_hyperparameters)(states, {"learner.head_weights": weights})
    np.testing.assert_array_equal(states.learner.hparams["head_weights"], weights)


# ---- worlds with parameters, bound inside the epoch -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class DriftWorld(World):
    """A 1-D world whose drift per step is a learnable parameter held in the TrainState."""

    drift: jax.Array | float = 0.0

    @property
    def spec(self):
        return WorldSpec(name="drift", obs_size=1, action_size=1, episode_length=50, position_size=1, coverage_cell=1.0)

    def init_params(self, key):
        return {"drift": jnp.float32(0.25)}

    def bind(self, params):
        return DriftWorld(drift=params["drift"])

    def reset(self, key):
        zero = jnp.zeros((1,), jnp.float32)
        return State(obs=zero, reward=jnp.zeros(()), done=jnp.zeros(()), physics=zero)

    def step(self, state, action):
        x = state.physics + self.drift + 0.0 * action
        return state.replace(obs=x, physics=x)

    def position(self, state):
        return state.physics


def test_world_params_live_in_the_state_and_drive_the_rollout(east):
    world = DriftWorld()
    objective, learner = _parts(world)
    trainer = make_train(dataclasses.replace(SMALL, prefill_steps=0), world, objective, learner)
    state = trainer.init(jax.random.PRNGKey(0))
    assert float(state.world_params["drift"]) == 0.25
    rollout = jax.jit(lambda s: trainer.rollout(s, 5)[1]["next_obs"])
    np.testing.assert_allclose(np.asarray(rollout(state))[:, 0, 0], 0.25 * np.arange(1, 6), rtol=1e-6)
    faster = state.replace(world_params={"drift": jnp.float32(1.0)})
    np.testing.assert_allclose(np.asarray(rollout(faster))[:, 0, 0], np.arange(1, 6), rtol=1e-6)


# ---- epoch phases ----------------------------------------------------------------------------------


class CountingPhases(Trainer):
    """A trainer with one more phase after the update: what a model-training phase would add."""

    def count(self, state, data):
        return state, data, {"phase/transitions": jnp.float32(data["transitions"]["obs"].shape[0] * data["transitions"]["obs"].shape[1])}

    def phases(self):
        return (*super().phases(), self.count)


def test_a_trainer_subclass_adds_a_phase(east):
    world = PointWorld(episode_length=10)
    trainer = make_train(SMALL, world, *_parts(world), trainer_cls=CountingPhases)
    state, metrics = jax.jit(trainer.epoch)(trainer.init(jax.random.PRNGKey(0)))
    assert float(metrics["phase/transitions"]) == SMALL.steps_per_epoch
    assert "loss/critic" in metrics and int(state.epoch) == 1


# ---- multi-agent blocks ----------------------------------------------------------------------------


def test_world_spec_agent_blocks():
    single = PointWorld().spec
    assert (single.n_agents, single.agent_obs_size, single.agent_action_size, single.agent_state_size) == (1, 2, 2, 2)
    team = WorldSpec("team", obs_size=12, action_size=6, episode_length=10, position_size=2, coverage_cell=1.0,
                     n_agents=3, agent_obs_size=4, agent_action_size=2, agent_state_size=2)  # fmt: skip
    assert team.agent_obs_size * team.n_agents == team.obs_size
    with pytest.raises(ValueError, match="3 agents need agent_obs_size"):
        WorldSpec("team", obs_size=12, action_size=6, episode_length=10, position_size=2, coverage_cell=1.0, n_agents=3)
    with pytest.raises(ValueError, match="do not make obs_size"):
        WorldSpec("team", obs_size=12, action_size=6, episode_length=10, position_size=2, coverage_cell=1.0,
                  n_agents=3, agent_obs_size=5, agent_action_size=2, agent_state_size=2)  # fmt: skip


def test_sizes_of_learner_and_objective_must_agree(east):
    world = PointWorld()
    objective = skills.make("east", {"n_skills": 3}, world.spec)
    learner = algos.make_learner("sac", {"hidden": HIDDEN}, world.spec, 2, 1)
    with pytest.raises(ValueError, match="skills of size 2"):
        make_train(SMALL, world, objective, learner)
