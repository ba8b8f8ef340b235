"""Contrastive RL: energies and InfoNCE losses against numpy, geometric goal relabelling within
episodes, a critic that learns, the CLI, and single-goal CRL reaching a hard goal without reward."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.crl import CRL, CRLConfig, contrastive_loss, energy_matrix, energy_pairs
from algos.loop import LoopConfig, make_train
from algos.trajectory_buffer import TrajectoryReplay, geometric_offsets
from experiments import train
from experiments.eval_protocol import goals_reached
from skills.goals import GoalConfig, GoalSkills, SingleGoalConfig
from worlds.point import MAZES, PointWorld

RNG = np.random.default_rng(0)
PHI = RNG.normal(size=(5, 3)).astype(np.float32)
PSI = RNG.normal(size=(5, 3)).astype(np.float32)


def np_energy(phi, psi, energy):
    out = np.zeros((len(phi), len(psi)))
    for i in range(len(phi)):
        for j in range(len(psi)):
            d = phi[i] - psi[j]
            out[i, j] = {"dot": phi[i] @ psi[j], "l2": -(d @ d), "neg_norm": -np.sqrt(d @ d + 1e-6)}[energy]
    return out


def np_lse(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


@pytest.mark.parametrize("energy", ["dot", "l2", "neg_norm"])
def test_energies_match_numpy(energy):
    expected = np_energy(PHI, PSI, energy)
    np.testing.assert_allclose(energy_matrix(jnp.asarray(PHI), jnp.asarray(PSI), energy), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(energy_pairs(jnp.asarray(PHI), jnp.asarray(PSI), energy), np.diag(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss", ["forward", "backward", "symmetric"])
@pytest.mark.parametrize("penalty", [0.0, 0.1])
def test_losses_match_numpy(loss, penalty):
    logits = np_energy(PHI, PSI, "dot")
    n = len(logits)
    # Cross-entropy with the diagonal, written out with explicit softmaxes.
    p_goal = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # softmax over goals, per (s, a)
    p_sa = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)  # softmax over (s, a), per goal
    forward = -np.mean([np.log(p_goal[i, i]) for i in range(n)])
    backward = -np.mean([np.log(p_sa[j, j]) for j in range(n)])
    value = {"forward": forward, "backward": backward, "symmetric": (forward + backward) / 2}[loss]
    value += penalty * np.mean(np_lse(logits, 1) ** 2)
    got, _ = contrastive_loss(jnp.asarray(logits, jnp.float32), loss, penalty)
    np.testing.assert_allclose(float(got), value, rtol=1e-5)


def test_unknown_energy_and_loss_are_rejected():
    with pytest.raises(ValueError, match="unknown energy"):
        CRL(CRLConfig(energy="cosine"), 4, 2)
    with pytest.raises(ValueError, match="unknown contrastive loss"):
        CRL(CRLConfig(loss="binary"), 4, 2)


def test_geometric_offsets_follow_gamma_power():
    gamma, k_max, n = 0.8, 12, 200_000
    k = np.asarray(geometric_offsets(jax.random.PRNGKey(0), jnp.full((n,), k_max), gamma))
    assert k.min() >= 1 and k.max() <= k_max
    expected = gamma ** np.arange(k_max)
    expected /= expected.sum()
    observed = np.bincount(k, minlength=k_max + 1)[1:] / n
    np.testing.assert_allclose(observed, expected, atol=4e-3)
    assert np.all(np.asarray(geometric_offsets(jax.random.PRNGKey(1), jnp.ones((100,)), gamma)) == 1)


def _episodic_transitions(steps, num_envs, seed):
    """Transitions [steps, num_envs] whose obs are (episode id, time in episode); random episode ends."""
    rng = np.random.default_rng(seed)
    obs = np.zeros((steps, num_envs, 2), np.float32)
    nxt = np.zeros_like(obs)
    done = np.zeros((steps, num_envs), np.float32)
    for e in range(num_envs):
        episode, t = 1000 * e, 0
        for s in range(steps):
            obs[s, e] = (episode, t)
            nxt[s, e] = (episode, t + 1)
            t += 1
            if rng.random() < 0.08 or t == 30:
                done[s, e], episode, t = 1.0, episode + 1, 0
    return {"obs": obs, "next_obs": nxt, "done": done}


def test_trajectory_replay_never_crosses_an_episode_and_wraps():
    num_envs, slots = 3, 64
    example = {"obs": jnp.zeros(2), "next_obs": jnp.zeros(2), "done": jnp.zeros(())}
    replay = TrajectoryReplay(num_envs * slots, 512, example, num_envs, horizon=30, gamma=0.9)
    data = _episodic_transitions(200, num_envs, seed=1)  # 200 steps > 64 slots: the ring wraps
    state = replay.init()
    for start in range(0, 200, 25):
        state = replay.add(state, jax.tree.map(lambda x: x[start : start + 25], data))
        batch = jax.tree.map(np.asarray, replay.sample(state, jax.random.PRNGKey(start)))
        now, future, k = batch["obs"], batch["future_obs"], batch["offset"]
        assert np.all(future[:, 0] == now[:, 0]), "a goal from another episode"
        np.testing.assert_array_equal(future[:, 1], now[:, 1] + k)  # exactly k steps later
        assert np.all(k >= 1)
    assert int(state.count) == slots  # the ring is full and has wrapped


def test_trajectory_replay_offsets_within_long_episodes_are_geometric():
    """Far from an episode's end the truncation is negligible: the histogram is gamma^(k-1)."""
    gamma, steps = 0.7, 400
    example = {"obs": jnp.zeros(2), "next_obs": jnp.zeros(2), "done": jnp.zeros(())}
    replay = TrajectoryReplay(steps, 4096, example, 1, horizon=steps, gamma=gamma)
    t = np.arange(steps, dtype=np.float32)
    data = {
        "obs": np.stack([np.zeros(steps), t], -1)[:, None].astype(np.float32),
        "next_obs": np.stack([np.zeros(steps), t + 1], -1)[:, None].astype(np.float32),
        "done": np.zeros((steps, 1), np.float32),
    }
    state = replay.add(replay.init(), data)
    ks = []
    for i in range(20):
        batch = replay.sample(state, jax.random.PRNGKey(i))
        keep = np.asarray(batch["obs"][:, 1]) < steps - 40  # at least 40 steps from the newest
        ks.append(np.asarray(batch["offset"])[keep])
    k = np.concatenate(ks)
    observed = np.bincount(k, minlength=11)[1:11] / len(k)
    expected = (1 - gamma) * gamma ** np.arange(10)
    np.testing.assert_allclose(observed, expected, atol=0.01)


def test_critic_learns_true_future_goals():
    """Toy: the goal is s + a (+ noise). After a short training the forward InfoNCE picks the true
    goal among 64 far above chance (1/64)."""
    learner = CRL(CRLConfig(hidden=(64, 64), repr_dim=16, learning_rate=1e-3), obs_size=2, action_size=2, skill_size=2)
    params = learner.init(jax.random.PRNGKey(0))

    def batch(key):
        k1, k2, k3 = jax.random.split(key, 3)
        s = jax.random.uniform(k1, (64, 2), minval=-1, maxval=1)
        a = jax.random.uniform(k2, (64, 2), minval=-1, maxval=1)
        g = s + a + 0.05 * jax.random.normal(k3, (64, 2))
        return {"obs": s, "skill": g, "action": a}

    @jax.jit
    def step(params, key):
        k_batch, k_update = jax.random.split(key)
        return learner.update(params, batch(k_batch), jnp.zeros((64, 1)), k_update)

    _, first = step(params, jax.random.PRNGKey(1))
    for i in range(300):
        params, metrics = step(params, jax.random.PRNGKey(100 + i))
    held_out = batch(jax.random.PRNGKey(999_999))
    logits = learner.logits(params, held_out["obs"], held_out["action"], held_out["skill"])
    accuracy = float(np.mean(np.argmax(np.asarray(logits), 1) == np.arange(64)))
    assert float(first["crl/accuracy"]) < 0.15
    assert accuracy > 0.5, accuracy
    assert float(metrics["loss/critic"]) < float(first["loss/critic"])


def test_goal_skills():
    crl = GoalSkills(GoalConfig(goal_size=2), obs_size=2)
    goals = np.asarray(crl.sample(jax.random.PRNGKey(0), 500))
    assert goals.shape == (500, 2) and goals.min() >= -10 and goals.max() <= 10 and goals.std() > 4
    sg = GoalSkills(SingleGoalConfig(fixed_goal=(0.0, -8.0)), obs_size=2)
    np.testing.assert_array_equal(sg.sample(jax.random.PRNGKey(0), 3), [[0.0, -8.0]] * 3)
    np.testing.assert_array_equal(sg.eval_goals, [[0.0, -8.0]])
    obs, goal_obs = jnp.ones((4, 2)), jnp.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(sg.goal_skill(None, obs, goal_obs), goal_obs)
    batch = {"skill": jnp.zeros((4, 2)), "future_obs": goal_obs, "obs": obs}
    np.testing.assert_array_equal(sg.relabel(None, batch, None)["skill"], goal_obs)
    with pytest.raises(ValueError, match="fixed_goal"):
        GoalSkills(SingleGoalConfig(), obs_size=2)


def test_spiral_and_u_goals_are_far_by_path():
    """The hard goals lie behind walls: the straight segment from the start to them is blocked."""
    for maze, goal in (("u", (0.0, -8.0)), ("spiral", (8.0, 8.0)), ("wall", (0.0, 6.0))):
        world = PointWorld(maze=maze)
        line = np.linspace(0, 1, 400)[:, None] * np.asarray(goal)[None]
        blocked = [not bool(world._free(jnp.asarray(p, jnp.float32))) for p in line]
        assert any(blocked), maze
        assert bool(world._free(jnp.zeros(2))) and bool(world._free(jnp.asarray(goal, jnp.float32)))
    assert len(MAZES["spiral"]) == 7


def _loop(goal=(0.0, -8.0), num_envs=8):
    world = PointWorld(maze="u", max_speed=0.5, episode_length=100)
    objective = GoalSkills(SingleGoalConfig(fixed_goal=goal), world.spec.obs_size)
    learner = CRL(CRLConfig(hidden=(64, 64), repr_dim=32), world.spec.obs_size, world.spec.action_size, skill_size=2)
    config = LoopConfig(
        num_envs=num_envs, rollout_length=50, updates_per_epoch=50, batch_size=128, buffer_size=40_000, prefill_steps=800
    )
    return make_train(config, world, objective, learner)


def test_loop_relabels_goals_from_the_same_trajectory():
    trainer = _loop(num_envs=4)
    assert isinstance(trainer.replay, TrajectoryReplay)
    state = trainer.init(jax.random.PRNGKey(0))
    # Rollouts aim at g*; the learner's batch has relabelled goals instead.
    np.testing.assert_array_equal(state.skill, [[0.0, -8.0]] * 4)
    batch = trainer.replay.sample(state.buffer, jax.random.PRNGKey(1))
    relabelled = trainer.objective.relabel(state.objective, batch, None)
    np.testing.assert_array_equal(relabelled["skill"], batch["future_obs"])
    # A point moves at most max_speed per step: the goal is within offset * max_speed of the state.
    gap = np.linalg.norm(np.asarray(batch["future_obs"] - batch["obs"]), axis=-1)
    assert np.all(gap <= 0.5 * np.asarray(batch["offset"]) * np.sqrt(2) + 1e-5)
    state, metrics = jax.jit(trainer.epoch)(state)
    assert np.isfinite(float(metrics["loss/critic"]))


@pytest.mark.slow
def test_cli_crl_and_sgcrl_with_vmapped_seeds(tmp_path):
    from tests.test_train import TINY, rows

    for algo, world in (("crl", "point"), ("sgcrl", "point_maze_u")):
        run = tmp_path / algo
        train.main([f"algo={algo}", f"world={world}", f"run_dir={run}", "total_steps=160", "num_seeds=2", *TINY])
        last = [r for r in rows(run) if "eval/goal_success" in r]
        assert {r["seed"] for r in last} == {0, 1}
        assert all(np.isfinite(r["loss/critic"]) for r in rows(run) if "loss/critic" in r)
        assert "crl/accuracy" in rows(run)[-1]
        assert all(r["eval/goal_success"] <= r["eval/goal_reached"] <= 1.0 for r in last)  # a pass counts too



@pytest.mark.slow
def test_crl_on_brax_ant_smoke_run(tmp_path):
    """CRL on Brax Ant through the CLI: goals are the torso's xy (the observation's first two
    entries), relabelled from Ant trajectories; it trains and evaluates goal reaching."""
    from tests.test_train import TINY, rows

    run = tmp_path / "ant"
    args = ["algo=crl", "world=brax/ant", f"run_dir={run}", "total_steps=160", "world.options.episode_length=20", *TINY]
    assert train.main(args + ["loop.prefill_steps=40"]) == 0
    logged = rows(run)
    assert [r["step"] for r in logged] == [80, 160]
    for r in logged:
        assert np.isfinite(r["loss/critic"]) and 0.0 <= r["crl/accuracy"] <= 1.0
        assert 0.0 <= r["eval/goal_success"] <= 1.0 and np.isfinite(r["eval/goal_distance"])


def test_sgcrl_without_a_goal_is_a_config_error(tmp_path, capsys):
    from tests.test_train import TINY

    assert train.main(["algo=sgcrl", "world=point", f"run_dir={tmp_path / 'bad'}", "total_steps=160", *TINY]) == 2
    assert "sgcrl needs a fixed_goal" in capsys.readouterr().err


def test_goals_reached_counts_a_pass_that_final_success_misses():
    from experiments.eval_protocol import goal_metrics

    # Two goals, three steps: episode 0 passes 0.5 from its goal at step 1 and ends 3 away;
    # episode 1 never comes closer than 1.5 (the threshold is 1).
    goals = np.array([[2.0, 0.0], [0.0, 5.0]])
    trajectories = np.array([[[0.0, 0.0], [0.0, 0.0]], [[1.5, 0.0], [0.0, 2.0]], [[5.0, 0.0], [0.0, 3.5]]])
    np.testing.assert_array_equal(goals_reached(trajectories, goals, 1.0), [True, False])
    success, distance = goal_metrics(trajectories[-1], goals, 1.0)
    assert success == 0.0 and distance == pytest.approx((3.0 + 1.5) / 2)


def _reached(positions, goal):
    """Per episode [T+1, n, 2]: did it come within 1 of ``goal`` at any step?"""
    return goals_reached(positions, np.broadcast_to(np.asarray(goal), np.shape(positions)[1:]), 1.0)


def _sgcrl_success_curve(world, goal, critic, evaluations, epochs_per_evaluation, seeds=3, buffer_size=40_000):
    """Train SGCRL (epochs of 8 worlds x 50 steps = 400 env steps and 50 updates of 64x64 nets) on
    ``world`` with the single goal ``goal``, vmapped over seeds, with no reward. After every
    ``epochs_per_evaluation`` epochs, one deterministic g*-conditioned episode per seed.
    Returns (reached [evaluations, seeds], success of 256 uniformly random episodes)."""
    objective = GoalSkills(SingleGoalConfig(fixed_goal=goal), world.spec.obs_size)
    learner = CRL(CRLConfig(hidden=(64, 64), repr_dim=32, **critic), world.spec.obs_size, world.spec.action_size, skill_size=2)
    config = LoopConfig(num_envs=8, rollout_length=50, updates_per_epoch=50, batch_size=128, buffer_size=buffer_size, prefill_steps=800)
    trainer = make_train(config, world, objective, learner)
    state = jax.jit(jax.vmap(trainer.init))(jax.random.split(jax.random.PRNGKey(0), seeds))
    run = jax.jit(jax.vmap(lambda s: trainer.run(s, epochs_per_evaluation)))
    goals = jnp.asarray([goal], jnp.float32)
    evaluate = jax.jit(jax.vmap(lambda lp, op, k: trainer.eval_goals(lp, op, k, goals), in_axes=(0, 0, None)))
    one = lambda tree: jax.tree.map(lambda x: x[0], tree)  # noqa: E731
    random = trainer.eval_goals(one(state.learner), one(state.objective), jax.random.PRNGKey(1), jnp.repeat(goals, 256, 0), True)
    reached = []
    for evaluation in range(1, evaluations + 1):
        state, metrics = run(state)
        assert np.all(np.isfinite(np.asarray(metrics["loss/critic"])))
        positions = evaluate(state.learner, state.objective, jax.random.PRNGKey(evaluation))[:, :, 0]  # [seeds, T+1, 2]
        reached.append(_reached(np.swapaxes(positions, 0, 1), goal))
    return np.asarray(reached), float(np.mean(_reached(random, goal)))


@pytest.mark.slow
def test_single_goal_crl_reaches_its_goal_without_reward():
    """SGCRL in the U maze (start inside the U, goal (7, 7) out through its open top, ~10 away):
    3 vmapped seeds, no reward, a few thousand steps. Deterministic goal-conditioned episodes reach
    the goal far more often than 256 uniformly random episodes (which never do)."""
    world = PointWorld(maze="u", max_speed=0.5, episode_length=100)
    critic = dict(energy="neg_norm", logsumexp_penalty=0.1)
    reached, random_success = _sgcrl_success_curve(world, (7.0, 7.0), critic, evaluations=8, epochs_per_evaluation=10)
    curve = reached.mean(1).tolist()
    print(f"success per 10 epochs (4000 env steps/seed): {curve}; random: {random_success}")
    assert random_success < 0.05
    assert np.mean(curve[-4:]) >= 0.6, curve


@pytest.mark.slow
def test_single_goal_crl_goes_round_a_wall_to_its_goal():
    """The hard-goal signature, on world=point_maze_wall's layout and moves: g* = (0, 6) is straight
    behind a wall, so the greedy way ends at the wall and g* takes a detour round an end. With the
    paper's critic (dot energy, 0.01 logsumexp^2), no reward and no entropy bonus, 4 vmapped seeds
    of 200k env steps: some seed gets round the wall and back to g* (measured: one seed within 20k
    steps, another from 140k on), which no uniformly random episode does (0 of 256).
    The U and spiral goals need the paper's millions of steps (README, SGCRL)."""
    world = PointWorld(maze="wall", max_speed=1.0, substeps=2, episode_length=50)
    critic = dict(energy="dot", logsumexp_penalty=0.01)
    reached, random_success = _sgcrl_success_curve(
        world, (0.0, 6.0), critic, evaluations=10, epochs_per_evaluation=50, seeds=4, buffer_size=400_000
    )
    print(f"seeds reaching g* per 20k env steps/seed: {reached.sum(1).tolist()}; random success: {random_success}")
    assert random_success == 0.0
    assert reached.sum() >= 3, reached  # g*-episodes reach it at 3 of the 40 evaluations, at least


@pytest.mark.slow
def test_sgcrl_resumed_run_equals_uninterrupted_run(tmp_path):
    """The trajectory buffer (and its write position) lives in the checkpointed TrainState."""
    from tests.test_train import TINY, _leaves

    args = TINY + ["algo=sgcrl", "world=point_maze_u"]
    straight = train.run(train.resolve_config(args + [f"run_dir={tmp_path / 'a'}", "total_steps=160"]))
    train.run(train.resolve_config(args + [f"run_dir={tmp_path / 'b'}", "total_steps=80"]))
    resumed = train.run(train.resolve_config([f"resume={tmp_path / 'b'}", "total_steps=160"]))
    assert int(resumed.state.epoch[0]) == 4
    for a, b in zip(_leaves(straight.state), _leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
