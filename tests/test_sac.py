"""Multi-head SAC (algos/sac.py) on probe problems with known answers, plus its exact losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.sac import SAC, SACConfig

HIDDEN = (64, 64)
B = 256


def _train(sac: SAC, make_batch, n_updates: int, seed: int = 0):
    """``n_updates`` jitted SAC updates, each on a fresh batch from ``make_batch(key) -> (batch, rewards)``."""

    @jax.jit
    def train(key):
        k_init, k_train = jax.random.split(key)

        def body(params, key):
            k_batch, k_update = jax.random.split(key)
            batch, rewards = make_batch(k_batch)
            return sac.update(params, batch, rewards, k_update)

        return jax.lax.scan(body, sac.init(k_init), jax.random.split(k_train, n_updates))

    return train(jax.random.PRNGKey(seed))


def _q(sac: SAC, critic, obs, action):
    """All critics' heads, jitted (eager flax applies compile op by op): [n_critics, B, K]."""
    return np.asarray(jax.jit(sac.critic_net.apply)(critic, jnp.asarray(obs), jnp.asarray(action)))


def _greedy(sac: SAC, params, obs):
    obs = jnp.asarray(obs)
    return np.asarray(jax.jit(lambda p, o: sac.act(p, o, _no_skill(o), None, deterministic=True))(params, obs))


def _no_skill(obs):
    """The zero-width skill of a learner probed without an objective."""
    return jnp.zeros((obs.shape[0], 0), obs.dtype)


def _uniform(key, shape, lim=1.0):
    return jax.random.uniform(key, shape, minval=-lim, maxval=lim)


# ---- probe 1: a one-step contextual bandit --------------------------------------------------


def test_bandit_probe_finds_optimal_action_and_value():
    """obs ~ U[-.8,.8], r = 1 - (a - obs)^2, every step terminal: the best action is a = obs with
    value 1, and Q(s, a) = r(s, a) exactly."""
    sac = SAC(SACConfig(hidden=HIDDEN, learning_rate=3e-3, init_alpha=1e-4, learn_alpha=False), 1, 1)

    def make_batch(key):
        k_obs, k_act = jax.random.split(key)
        obs = _uniform(k_obs, (B, 1), 0.8)
        action = _uniform(k_act, (B, 1))  # off-policy data: uniform actions
        batch = {"obs": obs, "skill": _no_skill(obs), "next_obs": obs, "action": action, "terminal": jnp.ones((B,))}
        return batch, 1.0 - (action - obs) ** 2

    params, metrics = _train(sac, make_batch, 1500)

    obs = np.linspace(-0.8, 0.8, 17, dtype=np.float32)[:, None]
    action = _greedy(sac, params, obs)
    assert np.mean(np.abs(action - obs)) < 0.05
    assert np.max(np.abs(action - obs)) < 0.15

    # The value of the optimal action is 1, for both critics of the ensemble.
    q_best = _q(sac, params.critic, obs, obs)
    assert q_best.shape == (2, 17, 1)
    np.testing.assert_allclose(q_best, 1.0, atol=0.05)

    # The critic fits r(s, a) over the whole action range, not only near the optimum.
    o, a = np.meshgrid(np.linspace(-0.8, 0.8, 9), np.linspace(-1, 1, 9))
    o, a = o.reshape(-1, 1).astype(np.float32), a.reshape(-1, 1).astype(np.float32)
    q = _q(sac, params.critic, o, a)[..., 0]
    assert np.mean(np.abs(q - (1 - (a - o) ** 2)[:, 0])) < 0.03
    assert float(metrics["loss/critic"][-1]) < 1e-3


# ---- probe 2: discounting --------------------------------------------------------------------


def test_discount_probe_value_is_geometric_sum():
    """Reward 1 forever (terminal = 0) and alpha ~ 0: Q = 1 / (1 - gamma) everywhere."""
    gamma = 0.8
    cfg = SACConfig(hidden=HIDDEN, learning_rate=3e-3, init_alpha=1e-6, learn_alpha=False, gamma=gamma, tau=0.05)
    sac = SAC(cfg, 2, 2)

    def make_batch(key):
        k_obs, k_act = jax.random.split(key)
        obs = _uniform(k_obs, (B, 2))
        batch = {"obs": obs, "skill": _no_skill(obs), "next_obs": jnp.roll(obs, 1, 0), "action": _uniform(k_act, (B, 2)), "terminal": jnp.zeros((B,))}
        return batch, jnp.ones((B, 1))

    params, _ = _train(sac, make_batch, 800)
    batch, _ = make_batch(jax.random.PRNGKey(99))
    q = _q(sac, params.critic, batch["obs"], batch["action"])
    np.testing.assert_allclose(q.mean(), 1 / (1 - gamma), atol=0.15)
    assert np.max(np.abs(q - 1 / (1 - gamma))) < 0.4


def test_terminal_stops_bootstrapping():
    """Same rewards with terminal = 1 give Q = 1, not 1 / (1 - gamma) = 5."""
    sac = SAC(SACConfig(hidden=HIDDEN, learning_rate=3e-3, init_alpha=1e-6, learn_alpha=False, gamma=0.8, tau=0.05), 2, 2)

    def make_batch(key):
        k_obs, k_act = jax.random.split(key)
        obs = _uniform(k_obs, (B, 2))
        batch = {"obs": obs, "skill": _no_skill(obs), "next_obs": jnp.roll(obs, 1, 0), "action": _uniform(k_act, (B, 2)), "terminal": jnp.ones((B,))}
        return batch, jnp.ones((B,))  # a flat [B] reward vector is accepted for one head

    params, _ = _train(sac, make_batch, 300)
    batch, _ = make_batch(jax.random.PRNGKey(99))
    q = _q(sac, params.critic, batch["obs"], batch["action"])
    np.testing.assert_allclose(q, 1.0, atol=0.1)


# ---- multi-head critic ----------------------------------------------------------------------


def test_multi_head_critic_fits_each_term():
    """Two reward terms on a one-step problem: r0 = a_0, r1 = -a_1^2. Head k must fit term k, and
    the actor (weights 1, 1) must maximise the sum: a_0 -> 1, a_1 -> 0."""
    sac = SAC(SACConfig(hidden=HIDDEN, learning_rate=3e-3, init_alpha=1e-4, learn_alpha=False), 1, 2, n_rewards=2)

    def make_batch(key):
        k_obs, k_act = jax.random.split(key)
        obs = _uniform(k_obs, (B, 1))
        action = _uniform(k_act, (B, 2))
        batch = {"obs": obs, "skill": _no_skill(obs), "next_obs": obs, "action": action, "terminal": jnp.ones((B,))}
        return batch, jnp.stack([action[:, 0], -action[:, 1] ** 2], -1)

    params, metrics = _train(sac, make_batch, 1500)
    batch, rewards = make_batch(jax.random.PRNGKey(99))
    q = _q(sac, params.critic, batch["obs"], batch["action"])  # [critics, B, heads]
    r = np.asarray(rewards)
    assert q.shape == (2, B, 2)
    for k in range(2):
        err_own = np.mean(np.abs(q[..., k] - r[None, :, k]))
        err_other = np.mean(np.abs(q[..., k] - r[None, :, 1 - k]))
        assert err_own < 0.03, (k, err_own)
        assert err_other > 10 * err_own, (k, err_own, err_other)
    assert np.mean(np.abs(q[..., 0] - q[..., 1])) > 0.3  # the heads differ
    assert "sac/critic_loss_head0" in metrics and "sac/critic_loss_head1" in metrics

    action = _greedy(sac, params, batch["obs"])
    assert np.all(action[:, 0] > 0.95)
    assert np.all(np.abs(action[:, 1]) < 0.15)


def test_critic_and_actor_losses_match_formula():
    """One update's reported losses equal the hand-written multi-head soft targets: head k regresses
    r_k + gamma (1 - d) (min_c Q'_ck(s', a') - alpha / sum(w) log pi(a'|s')), with Q' the target
    critic; the actor minimises alpha log pi - sum_k w_k Q_k."""
    weights, alpha, gamma, scale = (1.0, 3.0), 0.2, 0.9, 2.0
    cfg = SACConfig(
        hidden=HIDDEN, init_alpha=alpha, gamma=gamma, reward_scale=scale, head_weights=weights, learning_rate=0.0
    )
    sac = SAC(cfg, 2, 2, n_rewards=2, skill_size=1)  # the networks see (obs, skill): 3 inputs
    params = sac.init(jax.random.PRNGKey(0))
    # Make the target critic differ from the critic, so that using the wrong one shows.
    params = params.replace(target_critic=jax.tree.map(lambda x: 1.3 * x + 0.01, params.target_critic))
    keys = jax.random.split(jax.random.PRNGKey(1), 5)
    n = 32
    obs, next_obs = jax.random.normal(keys[0], (n, 3)), jax.random.normal(keys[1], (n, 3))
    batch = {
        "obs": obs[:, :2],
        "skill": obs[:, 2:],  # the same skill on both sides of a transition
        "next_obs": next_obs[:, :2],
        "action": _uniform(keys[2], (n, 2)),
        "terminal": (jax.random.uniform(keys[3], (n,)) < 0.3).astype(jnp.float32),
    }
    rewards = jax.random.normal(keys[4], (n, 2))
    key = jax.random.PRNGKey(7)
    _, metrics = jax.jit(sac.update)(params, batch, rewards, key)

    # The policy's samples and the networks' outputs, drawn with the keys the update uses.
    @jax.jit
    def pieces(params):
        k_next, k_now = jax.random.split(key)
        next_inputs = jnp.concatenate([batch["next_obs"], batch["skill"]], -1)  # SAC's own layout
        inputs = jnp.concatenate([batch["obs"], batch["skill"]], -1)
        next_action, next_logp = sac.policy.dist(params.actor, next_inputs)[0].sample_and_log_prob(seed=k_next)
        action, logp = sac.policy.dist(params.actor, inputs)[0].sample_and_log_prob(seed=k_now)
        return (
            sac.critic_net.apply(params.target_critic, next_inputs, next_action),
            next_logp,
            sac.critic_net.apply(params.critic, inputs, batch["action"]),
            sac.critic_net.apply(params.critic, inputs, action),
            logp,
        )

    next_q, next_logp, q, q_pi, logp = (np.asarray(x, np.float64) for x in pieces(params))
    next_q = next_q.min(0)
    share = 1.0 / sum(weights)
    soft_next = next_q - share * alpha * next_logp[:, None]
    target = scale * np.asarray(rewards, np.float64) + gamma * (1 - np.asarray(batch["terminal"]))[:, None] * soft_next
    per_head = np.mean((q - target[None]) ** 2, axis=1)  # [critics, heads]
    np.testing.assert_allclose(float(metrics["loss/critic"]), per_head.mean(-1).sum(), rtol=1e-4)
    for k in range(2):
        np.testing.assert_allclose(float(metrics[f"sac/critic_loss_head{k}"]), per_head[:, k].mean(), rtol=1e-4)

    # Learning rate 0: the critic is unchanged, so the actor loss uses the same critic.
    expected_actor = np.mean(alpha * logp - q_pi.min(0) @ np.asarray(weights))
    np.testing.assert_allclose(float(metrics["loss/actor"]), expected_actor, rtol=1e-4)


# ---- entropy tuning -------------------------------------------------------------------------


def _one_update(cfg: SACConfig):
    sac = SAC(cfg, 2, 3)
    params = sac.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    batch = {
        "obs": jax.random.normal(keys[0], (B, 2)),
        "skill": jnp.zeros((B, 0)),
        "next_obs": jax.random.normal(keys[1], (B, 2)),
        "action": _uniform(keys[2], (B, 3)),
        "terminal": jnp.zeros((B,)),
    }
    new, metrics = jax.jit(sac.update)(params, batch, jnp.zeros((B, 1)), jax.random.PRNGKey(2))
    return sac, params, new, metrics


@pytest.mark.parametrize("scale", [-5.0, 0.5, 5.0])
def test_alpha_moves_against_entropy_gap(scale):
    """Target entropy -scale * action_size: scale -5 is unreachable (entropy below target, alpha
    must rise), scale 5 is trivially exceeded (alpha must fall); scale 0.5 checks the sign rule."""
    sac, old, new, metrics = _one_update(SACConfig(hidden=HIDDEN, learn_alpha=True, target_entropy_scale=scale))
    target_entropy = -float(old.hparams["target_entropy_scale"]) * 3
    assert target_entropy == -scale * 3
    gap = float(metrics["sac/entropy"]) - target_entropy
    assert abs(gap) > 1e-3
    moved = float(new.log_alpha) - float(old.log_alpha)
    assert np.sign(moved) == -np.sign(gap)
    if scale < 0:
        assert moved > 0
    if scale > 1:
        assert moved < 0
    # loss/alpha = log_alpha * (entropy - target): its gradient wrt log_alpha is the gap.
    np.testing.assert_allclose(float(metrics["loss/alpha"]), float(old.log_alpha) * gap, rtol=1e-4)


def test_fixed_alpha_stays_fixed():
    _, old, new, _ = _one_update(SACConfig(hidden=HIDDEN, learn_alpha=False, init_alpha=0.05, target_entropy_scale=-5.0))
    assert float(new.log_alpha) == float(old.log_alpha)
    np.testing.assert_allclose(float(jnp.exp(new.log_alpha)), 0.05, rtol=1e-6)


# ---- configuration errors -------------------------------------------------------------------


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="head_weights"):
        SAC(SACConfig(hidden=HIDDEN, head_weights=(1.0, 1.0, 1.0)), 2, 2, n_rewards=2)
    with pytest.raises(ValueError, match="head_weights"):
        SAC(SACConfig(hidden=HIDDEN, head_weights=(1.0,)), 2, 2, n_rewards=2)
    with pytest.raises(ValueError):
        SAC(SACConfig(hidden=HIDDEN, head_weights=(0.0, 0.0)), 2, 2, n_rewards=2)
    with pytest.raises(ValueError):
        SAC(SACConfig(hidden=HIDDEN), 2, 2, n_rewards=0)
    SAC(SACConfig(hidden=HIDDEN, head_weights=(1.0, 0.5)), 2, 2, n_rewards=2)  # a matching config builds
