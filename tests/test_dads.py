"""DADS (skills/dads.py): mixture density and rewards against numpy, the normaliser, planning over
skills with a hand-made skill dynamics, vmapped seeds, and an end-to-end run on the point world."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from skills.base import UniformBoxPrior
from tests.specs import spec_of
from skills.dads import DADS, DADSConfig, Moments, dads_reward, mixture

OBS = 2
HIDDEN = (32, 32)


def _dads(obs_size: int = OBS, **kw) -> DADS:
    return DADS(DADSConfig(**{"hidden": HIDDEN, **kw}), obs_size)


def _batch(dads: DADS, key, n: int = 16, obs_size: int = OBS, step=None) -> dict:
    """Transitions whose step depends on the skill: s' = s + 0.1 z (+ noise), padded with zeros."""
    k_obs, k_skill, k_noise = jax.random.split(key, 3)
    obs = jax.random.normal(k_obs, (n, obs_size))
    skill = dads.sample(k_skill, n)
    move = 0.1 * jnp.pad(skill, ((0, 0), (0, obs_size - skill.shape[1]))) if step is None else step
    return {
        "obs": obs,
        "next_obs": obs + move + 0.01 * jax.random.normal(k_noise, (n, obs_size)),
        "skill": skill,
        "action": jnp.zeros((n, 2)),
        "terminal": jnp.zeros((n,)),
    }


# ---- the mixture density ------------------------------------------------------------------------


def _np_mixture_logpdf(x, logits, means, stds):
    """log sum_k softmax(logits)_k prod_s N(x_s; means_ks, stds_ks) in float64. x [B, S]."""
    x, logits, means, stds = (np.asarray(a, np.float64) for a in (x, logits, means, stds))
    log_w = logits - logsumexp(logits, -1, keepdims=True)  # [B, K]
    comp = norm.logpdf(x[:, None, :], means, stds).sum(-1)  # [B, K]
    return logsumexp(log_w + comp, -1)


def test_mixture_log_prob_matches_scipy():
    rng = np.random.default_rng(0)
    b, k, s = 6, 4, 3
    logits = rng.normal(size=(b, k)) * 2
    means = rng.normal(size=(b, k, s))
    stds = rng.uniform(0.3, 2.0, size=(b, k, s))
    x = rng.normal(size=(b, s)) * 1.5
    got = mixture(*(jnp.asarray(a, jnp.float32) for a in (logits, means, stds))).log_prob(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), _np_mixture_logpdf(x, logits, means, stds), rtol=1e-5, atol=1e-5)
    # One component: a plain diagonal Gaussian.
    one = mixture(jnp.zeros((b, 1)), jnp.asarray(means[:, :1], jnp.float32), jnp.ones((b, 1, s))).log_prob(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(one), norm.logpdf(x, means[:, 0], 1.0).sum(-1), rtol=1e-5)


@pytest.mark.parametrize("learn_variance", [False, True])
def test_model_log_prob_is_the_mixture_of_the_network_heads(learn_variance):
    """log q(s'-s|s,z) from the raw network output, the normaliser and scipy, by hand."""
    dads = _dads(3, learn_variance=learn_variance, num_components=3)
    params = dads.init(jax.random.PRNGKey(0))
    # Non-trivial moments, so that both normalisations and the Jacobian matter.
    params = params.replace(
        obs_moments=Moments(jnp.array([0.5, -1.0, 2.0]), jnp.array([4.0, 0.25, 1.0])),
        delta_moments=Moments(jnp.array([0.1, 0.0, -0.2]), jnp.array([0.04, 0.09, 0.01])),
    )
    batch = _batch(dads, jax.random.PRNGKey(1), n=8, obs_size=3)
    got = np.asarray(dads.log_prob(params, batch["obs"], batch["next_obs"], batch["skill"]))

    obs, nxt, z = (np.asarray(batch[k], np.float64) for k in ("obs", "next_obs", "skill"))
    in_std = np.sqrt(np.array([4.0, 0.25, 1.0]) + 1e-3)
    out_mean, out_std = np.array([0.1, 0.0, -0.2]), np.sqrt(np.array([0.04, 0.09, 0.01]) + 1e-3)
    x = (obs - np.array([0.5, -1.0, 2.0])) / in_std
    out = np.asarray(dads.net.apply(params.model, jnp.asarray(np.concatenate([x, z], -1), jnp.float32)), np.float64)
    k, s = 3, 3
    logits = out[:, :k]
    means = out[:, k : k + k * s].reshape(-1, k, s)
    stds = np.clip(np.log1p(np.exp(out[:, k + k * s :].reshape(-1, k, s))), 0.3, 10.0) if learn_variance else np.ones_like(means)
    target = (nxt - obs - out_mean) / out_std
    want = _np_mixture_logpdf(target, logits, means, stds) - np.log(out_std).sum()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.std(want) > 1e-2  # not a comparison of constants


# ---- the reward ---------------------------------------------------------------------------------

LOGP = np.array([0.0, 3.0, -2.0, 100.0], np.float32)
LOGP_ALT = np.array(
    [
        [0.0, 0.0, 0.0],  # every alternative as likely as the true skill
        [1.0, -1.0, 2.5],
        [-80.0, -3.0, 1.0],  # -80 - (-2) < -50: clipped in the code form
        [160.0, 90.0, 99.0],  # exp overflows float32 without log-sum-exp; 160 - 100 > 50: clipped
    ],
    np.float32,
)


def _np_paper(logp, alt):
    logp, alt = np.float64(logp), np.float64(alt)
    return logp - (logsumexp(alt, -1) - np.log(alt.shape[-1]))


def _np_code(logp, alt):
    logp, alt = np.float64(logp), np.float64(alt)
    n = alt.shape[-1]
    return np.log(n + 1) - np.log(1 + np.sum(np.exp(np.clip(alt - logp[:, None], -50, 50)), -1))


@pytest.mark.parametrize("form, np_form", [("paper", _np_paper), ("code", _np_code)])
def test_reward_forms_match_numpy(form, np_form):
    got = np.asarray(dads_reward(jnp.asarray(LOGP), jnp.asarray(LOGP_ALT), form))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np_form(LOGP, LOGP_ALT), rtol=1e-5, atol=1e-4)
    assert abs(got[0]) < 1e-6  # no information in z: zero reward in both forms


def test_reward_forms_differ_where_they_should():
    # The code form counts the true skill among L + 1 and is capped at log(L + 1); the paper's is not.
    logp, alt = jnp.array([0.0]), jnp.array([[-30.0, -30.0, -30.0]])
    np.testing.assert_allclose(float(dads_reward(logp, alt, "code")[0]), np.log(4.0), rtol=1e-5)
    np.testing.assert_allclose(float(dads_reward(logp, alt, "paper")[0]), 30.0, rtol=1e-5)
    with pytest.raises(ValueError, match="reward_form"):
        dads_reward(logp, alt, "other")


@pytest.mark.parametrize("form", ["paper", "code"])
def test_objective_reward_uses_prior_samples_and_the_model(form):
    dads = _dads(prior_samples=5, reward_form=form)
    params = dads.init(jax.random.PRNGKey(0))
    batch = _batch(dads, jax.random.PRNGKey(1), n=7)
    r = np.asarray(jax.jit(dads.reward)(params, batch))
    assert r.shape == (7, 1) and dads.n_rewards == 1
    # The same L prior skills per transition, from the key the params carry.
    alt = dads.prior.sample(params.reward_key, 7 * 5).reshape(5, 7, 2)
    assert np.all(np.abs(np.asarray(alt)) <= 1.0)
    logp = dads.log_prob(params, batch["obs"], batch["next_obs"], batch["skill"])
    logp_alt = np.stack([np.asarray(dads.log_prob(params, batch["obs"], batch["next_obs"], a)) for a in alt], -1)
    want = (_np_paper if form == "paper" else _np_code)(np.asarray(logp), logp_alt)
    np.testing.assert_allclose(r[:, 0], want, rtol=1e-4, atol=1e-5)


# ---- the update -----------------------------------------------------------------------------------


def test_normaliser_pools_batches_exactly_then_averages_exponentially():
    dads = _dads(normalizer_momentum=0.9)  # exact pooling for the first 1/(1 - 0.9) = 10 batches
    params = dads.init(jax.random.PRNGKey(0))
    update = jax.jit(dads.update)
    b1, b2 = _batch(dads, jax.random.PRNGKey(1)), _batch(dads, jax.random.PRNGKey(2))
    b2 = {**b2, "obs": b2["obs"] * 3 + 1, "next_obs": b2["next_obs"] * 3 + 1}  # different moments
    p1, _ = update(params, b1, jax.random.PRNGKey(3))
    p2, _ = update(p1, b2, jax.random.PRNGKey(4))
    obs = np.concatenate([b1["obs"], b2["obs"]])
    delta = np.concatenate([b1["next_obs"] - b1["obs"], b2["next_obs"] - b2["obs"]])
    np.testing.assert_allclose(np.asarray(p1.obs_moments.mean), np.mean(b1["obs"], 0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(p2.obs_moments.mean), obs.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(p2.obs_moments.var), obs.var(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(p2.delta_moments.var), delta.var(0), rtol=1e-4)
    assert float(p2.count) == 32
    # Long after: a new batch moves the mean by (1 - momentum) of the gap, no less.
    late = p2.replace(count=jnp.float32(1e6))
    p3, _ = update(late, b1, jax.random.PRNGKey(5))
    gap = np.mean(b1["obs"], 0) - np.asarray(p2.obs_moments.mean)
    np.testing.assert_allclose(np.asarray(p3.obs_moments.mean - p2.obs_moments.mean), 0.1 * gap, rtol=1e-4)
    # Without normalisation the moments stay the identity.
    raw = _dads(normalize=False)
    q, _ = jax.jit(raw.update)(raw.init(jax.random.PRNGKey(0)), b2, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(np.asarray(q.obs_moments.mean), 0.0)


def test_update_learns_skill_dependent_dynamics():
    dads = _dads(learning_rate=3e-3)
    params = dads.init(jax.random.PRNGKey(0))
    update = jax.jit(dads.update)
    batch = _batch(dads, jax.random.PRNGKey(1), n=128)
    first = None
    keys = []
    for i in range(100):
        params, metrics = update(params, batch, jax.random.PRNGKey(i))
        first = float(metrics["loss/dynamics"]) if first is None else first
        keys.append(tuple(np.asarray(params.reward_key)))
    assert float(metrics["loss/dynamics"]) < first - 0.5  # maximum likelihood makes progress
    np.testing.assert_allclose(float(metrics["dads/logp"]), -float(metrics["loss/dynamics"]), rtol=1e-6)
    assert float(metrics["dads/logp_gain"]) > 0.5  # the true skill predicts the step better
    assert len(set(keys)) == len(keys)  # the reward's prior samples are renewed every update
    # And the reward now favours the skill that made the step.
    r = jax.jit(dads.reward)(params, batch)
    assert float(jnp.mean(r)) > 0.5


def test_learning_rate_is_sweepable():
    dads = _dads()
    params = dads.init(jax.random.PRNGKey(0))
    batch = _batch(dads, jax.random.PRNGKey(1))
    frozen = dads.sweepable()["learning_rate"](params, 0.0)
    new, _ = jax.jit(dads.update)(frozen, batch, jax.random.PRNGKey(2))
    for a, b in zip(jax.tree.leaves(new.model), jax.tree.leaves(params.model)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    moved, _ = jax.jit(dads.update)(params, batch, jax.random.PRNGKey(2))
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(jax.tree.leaves(moved.model), jax.tree.leaves(params.model)))


# ---- planning over skills -------------------------------------------------------------------------


def _velocity_dynamics(dads: DADS, scale: float):
    """Hand-made skill dynamics whose every component predicts s' - s = scale * z exactly.

    Hidden (4, 4) ReLU layers carry (z1, -z1, z2, -z2); the output head subtracts the pairs."""
    assert dads.config.hidden == (4, 4) and not dads.config.normalize
    k, s = dads.config.num_components, dads.state_size
    w0 = np.zeros((s + 2, 4), np.float32)
    w0[s, 0], w0[s, 1], w0[s + 1, 2], w0[s + 1, 3] = 1, -1, 1, -1
    w2 = np.zeros((4, k + k * s), np.float32)
    for c in range(k):
        w2[0, k + c * s], w2[1, k + c * s] = scale, -scale
        w2[2, k + c * s + 1], w2[3, k + c * s + 1] = scale, -scale
    layers = {
        "Dense_0": {"kernel": w0, "bias": np.zeros(4, np.float32)},
        "Dense_1": {"kernel": np.eye(4, dtype=np.float32), "bias": np.zeros(4, np.float32)},
        "Dense_2": {"kernel": w2, "bias": np.zeros(k + k * s, np.float32)},
    }
    params = dads.init(jax.random.PRNGKey(0))
    model = jax.tree.map(jnp.asarray, {"params": layers})
    assert jax.tree.structure(model) == jax.tree.structure(params.model)
    return params.replace(model=model)


def _planner(**kw) -> tuple[DADS, object]:
    dads = _dads(hidden=(4, 4), normalize=False, **kw)
    return dads, _velocity_dynamics(dads, 0.2)


def test_hand_made_dynamics_predicts_scale_times_skill():
    dads, params = _planner()
    s = jnp.array([[1.0, 2.0], [-3.0, 0.5]])
    z = jnp.array([[0.5, -1.0], [0.25, 0.75]])
    np.testing.assert_allclose(np.asarray(dads.predict(params, s, z)), np.asarray(s + 0.2 * z), rtol=1e-6)


@pytest.mark.parametrize("planning_horizon", [1, 3])
def test_planning_heads_for_the_goal(planning_horizon):
    dads, params = _planner(planning_horizon=planning_horizon)
    angles = 2 * np.pi * np.arange(8) / 8
    obs = jnp.asarray(np.tile([[1.0, -2.0]], (8, 1)), jnp.float32)
    goal = obs + 7 * jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], -1), jnp.float32)
    z = np.asarray(jax.jit(dads.goal_skill)(params, obs, goal))
    assert z.shape == (8, 2) and np.all(np.abs(z) <= 1.0)
    direction = np.asarray(goal - obs)
    cos = np.sum(z * direction, -1) / (np.linalg.norm(z, axis=-1) * np.linalg.norm(direction, axis=-1))
    assert np.all(cos > 0.95), cos
    assert np.all(np.max(np.abs(z), -1) > 0.8), z  # far goals: full speed along the way
    # Pure and deterministic: the same observation plans the same skill.
    np.testing.assert_array_equal(z, np.asarray(jax.jit(dads.goal_skill)(params, obs, goal)))


def test_planning_uses_the_predicted_trajectory():
    """A goal 0.1 ahead: holding a fast skill for 10 predicted steps overshoots, so plan a slow one."""
    dads, params = _planner()
    obs = jnp.array([[0.0, 0.0]])
    z = np.asarray(dads.goal_skill(params, obs, obs + jnp.array([[0.1, 0.0]])))[0]
    assert 0.0 < z[0] < 0.5 and abs(z[1]) < 0.2, z
    # ... and a shorter primitive reaches further per step: it asks for a faster skill.
    short, _ = _planner(primitive_horizon=1)
    z1 = np.asarray(short.goal_skill(params, obs, obs + jnp.array([[0.1, 0.0]])))[0]
    assert z1[0] > z[0] + 0.1, (z1, z)


def test_planning_compares_only_plan_dims():
    """obs = (x, y, junk): the goal's junk entry must not matter."""
    dads, params = _planner(plan_dims=2, observation_size=2)
    obs = jnp.array([[0.0, 0.0, 5.0]])
    a = dads.goal_skill(params, obs, jnp.array([[5.0, 5.0, 0.0]]))
    b = dads.goal_skill(params, obs, jnp.array([[5.0, 5.0, -100.0]]))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b))
    assert np.all(np.asarray(a) > 0.5)


# ---- options -----------------------------------------------------------------------------------


def test_observation_size_and_input_omit():
    full = _batch(_dads(), jax.random.PRNGKey(1), n=8, obs_size=5)
    # observation_size=2: the model sees and predicts only obs[:2].
    dads = _dads(5, observation_size=2)
    params = dads.init(jax.random.PRNGKey(0))
    junk = {**full, "obs": full["obs"].at[:, 2:].add(3.0), "next_obs": full["next_obs"].at[:, 2:].add(-7.0)}
    lp = dads.log_prob(params, full["obs"], full["next_obs"], full["skill"])
    np.testing.assert_allclose(np.asarray(lp), np.asarray(dads.log_prob(params, junk["obs"], junk["next_obs"], full["skill"])))
    # input_omit=2: translating x-y changes nothing (the step is the same).
    inv = _dads(5, input_omit=2)
    p = inv.init(jax.random.PRNGKey(0))
    moved = {k: full[k].at[:, :2].add(4.0) for k in ("obs", "next_obs")}
    np.testing.assert_allclose(
        np.asarray(inv.log_prob(p, full["obs"], full["next_obs"], full["skill"])),
        np.asarray(inv.log_prob(p, moved["obs"], moved["next_obs"], full["skill"])),
        rtol=1e-6,
    )
    # ... but the other entries are inputs.
    other = {k: full[k].at[:, 3].add(4.0) for k in ("obs", "next_obs")}
    assert not np.allclose(
        np.asarray(inv.log_prob(p, full["obs"], full["next_obs"], full["skill"])),
        np.asarray(inv.log_prob(p, other["obs"], other["next_obs"], full["skill"])),
    )


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"reward_form": "exact"}, "reward_form"),
        ({"plan_dims": 3}, "plan_dims"),
        ({"observation_size": 5}, "observation_size"),
        ({"input_omit": 2}, "input_omit"),
        ({"prior_samples": 0}, "prior_samples"),
        ({"refine_steps": 0}, "refine_steps"),
        ({"normalizer_momentum": 1.0}, "normalizer_momentum"),
        ({"no_such": 1}, "no option"),
    ],
)
def test_bad_options_are_value_errors(options, fragment):
    import skills

    with pytest.raises(ValueError, match=fragment):
        skills.make("dads", options, spec_of(OBS))


def test_uniform_box_prior():
    z = np.asarray(UniformBoxPrior(3).sample(jax.random.PRNGKey(0), 20_000))
    assert z.shape == (20_000, 3) and z.min() >= -1.0 and z.max() <= 1.0
    np.testing.assert_allclose(z.mean(0), 0.0, atol=0.02)
    np.testing.assert_allclose(z.var(0), 1 / 3, atol=0.02)  # variance of U[-1, 1]


def test_yaml_config_matches_the_defaults():
    """algo=dads builds DADS, and its YAML repeats the dataclass defaults (they cannot drift apart)."""
    from experiments.config import build, compose

    world, objective, learner, _ = build(compose(["algo=dads"]))
    assert isinstance(objective, DADS) and objective.skill_size == 2
    defaults = dataclasses.asdict(DADSConfig())
    got = dataclasses.asdict(objective.config)
    assert {k: v for k, v in got.items() if k != "hidden"} == {k: v for k, v in defaults.items() if k != "hidden"}
    assert learner.config.init_alpha == 0.1 and learner.config.learning_rate == 3e-4


# ---- in the loop: vmapped seeds and evaluation ------------------------------------------------------


def test_vmapped_seeds_train_and_plan():
    from algos.loop import LoopConfig, make_train
    from algos.sac import SAC, SACConfig
    from experiments.eval_protocol import Evaluator
    from worlds.point import PointWorld

    world = PointWorld(episode_length=12)
    dads = _dads(prior_samples=4, num_candidates=8, refine_steps=2, primitive_horizon=3)
    sac = SAC(SACConfig(hidden=HIDDEN), world.spec.obs_size, world.spec.action_size, skill_size=dads.skill_size)
    loop = LoopConfig(num_envs=4, rollout_length=8, updates_per_epoch=3, batch_size=32, buffer_size=500, prefill_steps=64, eval_episodes=4)
    trainer = make_train(loop, world, dads, sac)
    train = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)), static_argnums=1)
    state, metrics = train(jax.random.split(jax.random.PRNGKey(0), 2), 2)
    assert metrics["loss/dynamics"].shape == (2, 2)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())
    assert not np.allclose(np.asarray(metrics["loss/dynamics"][0]), np.asarray(metrics["loss/dynamics"][1]))
    assert not np.array_equal(np.asarray(state.objective.reward_key[0]), np.asarray(state.objective.reward_key[1]))
    rows, _, _ = Evaluator(trainer, 4, seed=0)(state, 2)
    assert len(rows) == 2 and all(0.0 <= r["eval/goal_success"] <= 1.0 and np.isfinite(r["eval/goal_distance"]) for r in rows)


# ---- end to end -------------------------------------------------------------------------------------


class _RandomGoalSkill:
    """The baseline for planning: one random skill from the prior per goal, held all episode."""

    def __init__(self, objective, key):
        self.objective, self.key = objective, key

    def __getattr__(self, name):
        return getattr(self.objective, name)

    def goal_skill(self, params, obs, goal_obs):
        return self.objective.sample(self.key, obs.shape[0])


@pytest.mark.slow
def test_dads_on_point_learns_predictable_skills_and_plans_to_goals(tmp_path):
    from algos.loop import make_train
    from experiments import train
    from experiments.config import build
    from experiments.eval_protocol import goal_metrics
    from worlds.base import goal_positions

    cfg = train.resolve_config(
        [
            "algo=dads",
            f"run_dir={tmp_path}",
            "total_steps=24000",
            "eval_every=30",
            "network.hidden=[128,128]",
            "algo.objective.prior_samples=16",
            "progress=false",
            "plots=false",
            "tensorboard=false",
        ]
    )
    result = train.run(cfg)
    last = result.rows[-1]
    assert last["step"] == 24000
    world, objective, learner, loop = build(cfg)
    trainer = make_train(loop, world, objective, learner)
    state = jax.tree.map(lambda x: x[0], result.state)

    # 1. On fresh rollouts of the trained policy, the skill-dynamics model predicts the steps better
    #    with the skill than with the skill input zeroed.
    _, fresh = jax.jit(trainer.rollout, static_argnums=1)(state, 100)
    fresh = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), fresh)
    logp = float(jnp.mean(objective.log_prob(state.objective, fresh["obs"], fresh["next_obs"], fresh["skill"])))
    logp_zeroed = float(jnp.mean(objective.log_prob(state.objective, fresh["obs"], fresh["next_obs"], jnp.zeros_like(fresh["skill"]))))
    print(f"held-out log q: with skill {logp:.3f}, skill zeroed {logp_zeroed:.3f}")
    assert logp > logp_zeroed + 0.1

    # 2. Planning over skills reaches goals more often than a random skill per goal (4 draws) and
    #    than random actions (the Evaluator's own baseline).
    goals = jnp.asarray(goal_positions(world.spec))
    key = jax.random.PRNGKey(7)
    planned = jax.jit(trainer.eval_goals)(state.learner, state.objective, key, goals)[-1]
    plan_success, plan_distance = goal_metrics(planned, goals, world.spec.goal_threshold)
    random = []
    for i in range(4):
        baseline = make_train(loop, world, _RandomGoalSkill(objective, jax.random.PRNGKey(100 + i)), learner)
        final = jax.jit(baseline.eval_goals)(state.learner, state.objective, key, goals)[-1]
        random.append(goal_metrics(final, goals, world.spec.goal_threshold))
    random_success, random_distance = np.mean(random, 0)
    print(f"goal success: planning {plan_success:.3f} (distance {plan_distance:.2f}), random skill {random_success:.3f} ({random_distance:.2f})")
    assert plan_success >= 0.25 and plan_success > random_success
    assert plan_distance < random_distance
    assert last["eval/goal_success"] > last["eval/goal_success_random"], last
