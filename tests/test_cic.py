"""CIC (skills/cic.py): CPC loss, kNN particle reward and running statistics against hand-written
numpy; the rewards through the real networks; coverage on the point world after a short run."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import skills
from tests.specs import spec_of
from skills.base import UniformBoxPrior
from skills.cic import CIC, CICConfig, RunningStats, cpc_loss, cpc_reward, knn_distances, knn_reward
from tests.test_train import TINY

OBS = 4
D = 4
HIDDEN = (32, 32)
T = 0.5


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _np_cpc(k, q, form):
    s = k @ q.T / T  # s_ij = k_i . q_j / T
    if form == "paper":
        return -np.mean(np.diag(_np_log_softmax(s)))
    sim = np.exp(q @ k.T / T)  # the reference: for each skill, a sum over transitions
    neg = np.maximum(sim.sum(-1) - np.exp(1 / T), 1e-6)
    return -np.mean(np.log(np.exp(np.sum(q * k, -1) / T) / (neg + 1e-6)))


def _np_knn(x, k):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, -1)[:, :k]


# ---- CPC ----------------------------------------------------------------------------------------


def test_cpc_on_hand_computed_values():
    # Three orthogonal transitions, each matched to its own skill: s_ii = 1/T = 2, s_ij = 0.
    eye = jnp.eye(3)
    paper = float(cpc_loss(eye, eye, T, "paper"))
    np.testing.assert_allclose(paper, np.log(1 + 2 * np.exp(-2.0)), rtol=1e-6)  # -(2 - log(e^2 + 2))
    code = float(cpc_loss(eye, eye, T, "code"))  # the negatives' sum minus e^{1/T} is exactly 2
    np.testing.assert_allclose(code, np.log(2 + 1e-6) - 2.0, rtol=1e-6)
    # The MI estimate per sample is log B - (its loss term): log 3 - log(1 + 2 e^-2) for each.
    np.testing.assert_allclose(np.asarray(cpc_reward(eye, eye, T)), np.log(3) - np.log(1 + 2 * np.exp(-2.0)), rtol=1e-6)


@pytest.mark.parametrize("form", ["paper", "code"])
def test_cpc_loss_matches_numpy(form):
    rng = np.random.default_rng(0)
    k, q = _unit(rng.normal(size=(6, D))), _unit(rng.normal(size=(6, D)))
    q[2] = k[2]  # one near-perfect pair, so that the terms differ in size
    got = float(cpc_loss(jnp.asarray(k, jnp.float32), jnp.asarray(q, jnp.float32), T, form))
    np.testing.assert_allclose(got, _np_cpc(k, q, form), rtol=1e-5)


def test_cpc_reward_matches_numpy_and_the_loss():
    rng = np.random.default_rng(1)
    k, q = _unit(rng.normal(size=(8, D))), _unit(rng.normal(size=(8, D)))
    r = np.asarray(cpc_reward(jnp.asarray(k, jnp.float32), jnp.asarray(q, jnp.float32), T))
    s = k @ q.T / T
    np.testing.assert_allclose(r, np.diag(s) - np.log(np.exp(s).sum(-1)) + np.log(8), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.mean(), np.log(8) - _np_cpc(k, q, "paper"), rtol=1e-5)


# ---- kNN particle entropy -----------------------------------------------------------------------

LINE = np.array([[0.0], [1.0], [3.0], [7.0], [15.0], [31.0]], np.float32)  # all gaps distinct


def test_knn_distances_on_hand_computed_values():
    got = np.asarray(knn_distances(jnp.asarray(LINE), 2))
    want = [[1, 3], [1, 2], [2, 3], [4, 6], [8, 12], [16, 24]]  # itself excluded, nearest first
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # r = log(1 + mean_j max(d_j / scale - clip, 0)) with scale 2, clip 0.5: point 0 -> [0, 1] -> log 1.5
    r = np.asarray(knn_reward(jnp.asarray(got), 2.0, 0.5))
    np.testing.assert_allclose(r, np.log1p(np.mean(np.maximum(np.asarray(want) / 2 - 0.5, 0), -1)), rtol=1e-6)
    assert r[0] == pytest.approx(np.log(1.5))


def test_knn_matches_numpy_in_higher_dimensions():
    x = np.random.default_rng(2).normal(size=(40, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(knn_distances(jnp.asarray(x), 12)), _np_knn(x, 12), rtol=1e-5)
    with pytest.raises(ValueError, match="knn_k"):
        knn_distances(jnp.asarray(x[:12]), 12)


def test_running_stats_match_numpy_over_several_batches():
    rng = np.random.default_rng(3)
    chunks = [rng.normal(2.0, 3.0, size=n) for n in (50, 7, 200)]
    stats = RunningStats.create()
    for c in chunks:
        stats = stats.update(jnp.asarray(c, jnp.float32))
    everything = np.concatenate(chunks)
    np.testing.assert_allclose(float(stats.mean), everything.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(stats.var), everything.var(), rtol=1e-4)


# ---- the objective ------------------------------------------------------------------------------


def _cic(**kw) -> CIC:
    return CIC(CICConfig(skill_dim=D, hidden=HIDDEN, knn_k=3, **kw), OBS)


def _batch(cic, key, n: int = 16) -> dict:
    k_obs, k_next, k_skill = jax.random.split(key, 3)
    return {
        "obs": jax.random.normal(k_obs, (n, OBS)),
        "next_obs": jax.random.normal(k_next, (n, OBS)),
        "skill": cic.sample(k_skill, n),
        "action": jnp.zeros((n, 2)),
        "terminal": jnp.zeros((n,)),
    }


def _np_embeddings(cic, nets, batch):
    """k, q and f(s') from each network applied on its own, normalised in numpy."""
    f_now = np.asarray(cic.state_net.apply(nets["state"], batch["obs"]))
    f_next = np.asarray(cic.state_net.apply(nets["state"], batch["next_obs"]))
    g = np.asarray(cic.pred_net.apply(nets["pred"], np.concatenate([f_now, f_next], -1)))
    h = np.asarray(cic.skill_net.apply(nets["skill"], batch["skill"]))
    return _unit(g), _unit(h), f_next.astype(np.float64)


@pytest.mark.parametrize("reward_form", ["paper", "code"])
def test_reward_through_the_networks_matches_numpy(reward_form):
    cic = _cic(reward_form=reward_form)
    params = cic.init(jax.random.PRNGKey(0))
    params = params.replace(knn_stats=params.knn_stats.replace(var=jnp.asarray(0.25)))  # sigma = 0.5
    batch = _batch(cic, jax.random.PRNGKey(1))
    k, q, f_next = _np_embeddings(cic, params.nets, batch)
    particles = k if reward_form == "paper" else f_next
    entropy = np.log1p(np.mean(np.maximum(_np_knn(particles, 3) / 0.5 - 5e-4, 0), -1))
    r = np.asarray(cic.reward(params, batch))
    if reward_form == "paper":
        s = k @ q.T / T
        assert r.shape == (16, 2) and cic.n_rewards == 2
        np.testing.assert_allclose(r[:, 1], np.diag(_np_log_softmax(s)) + np.log(16), rtol=1e-4, atol=1e-5)
    else:
        assert r.shape == (16, 1) and cic.n_rewards == 1
    np.testing.assert_allclose(r[:, 0], entropy, rtol=1e-4, atol=1e-6)
    assert np.std(entropy) > 1e-3


def test_code_form_reward_ignores_the_skill_and_the_paper_form_does_not():
    batch_skills = lambda cic, b: {**b, "skill": cic.sample(jax.random.PRNGKey(9), 16)}  # noqa: E731
    for form, depends in (("code", False), ("paper", True)):
        cic = _cic(reward_form=form)
        params = cic.init(jax.random.PRNGKey(0))
        batch = _batch(cic, jax.random.PRNGKey(1))
        same = np.allclose(np.asarray(cic.reward(params, batch)), np.asarray(cic.reward(params, batch_skills(cic, batch))))
        assert same != depends, form


def test_update_learns_skills_from_transitions_and_tracks_knn_scale():
    """next_obs = obs + z: transitions determine skills, so CPC accuracy climbs and the loss falls."""
    cic = CIC(CICConfig(skill_dim=D, hidden=(64, 64), knn_k=3, learning_rate=1e-3), OBS)
    params = cic.init(jax.random.PRNGKey(0))
    batch = _batch(cic, jax.random.PRNGKey(1), n=64)
    batch["next_obs"] = batch["obs"] + batch["skill"]
    k, _, _ = _np_embeddings(cic, params.nets, batch)
    distances = _np_knn(k, 3)
    update = jax.jit(cic.update)
    params, first = update(params, batch, jax.random.PRNGKey(0))
    # The running statistics saw the pre-update kNN distances of the transition embedding.
    np.testing.assert_allclose(float(params.knn_stats.mean), distances.mean(), rtol=1e-3)
    np.testing.assert_allclose(float(first["cic/knn_distance_std"]), distances.std(), rtol=1e-3)
    for i in range(300):
        params, metrics = update(params, batch, jax.random.PRNGKey(i))
    assert float(first["cic/accuracy"]) < 0.2
    assert float(metrics["cic/accuracy"]) > 0.9
    # Cosine logits within [-1/T, 1/T] keep L_cpc well above 0: it falls by over a nat (4.3 -> 2.6).
    assert float(metrics["loss/cpc"]) < float(first["loss/cpc"]) - 1.0


def test_registry_prior_and_bad_options():
    cic = skills.make("cic", {"skill_dim": 8, "hidden": [32]}, spec_of(3))
    assert isinstance(cic, CIC) and cic.skill_size == 8 and cic.n_rewards == 2
    assert CICConfig().temperature == 0.5 and CICConfig().knn_k == 12
    assert skills.make("cic", {"reward_form": "code"}, spec_of(3)).n_rewards == 1
    for bad in [{"reward_form": "nope"}, {"cpc_form": "nope"}, {"temperature": 0.0}, {"skill_dim": 0}]:
        with pytest.raises(ValueError):
            skills.make("cic", bad, spec_of(3))
    z = np.asarray(UniformBoxPrior(5, 0.0, 1.0).sample(jax.random.PRNGKey(0), 4000))
    assert z.shape == (4000, 5) and z.min() >= 0.0 and z.max() < 1.0
    np.testing.assert_allclose(z.mean(0), 0.5, atol=0.02)


def test_sweepable_learning_rate_reaches_the_optimizer():
    cic = _cic()
    params = cic.init(jax.random.PRNGKey(0))
    batch = _batch(cic, jax.random.PRNGKey(1))
    frozen, _ = cic.update(cic.sweepable()["learning_rate"](params, 0.0), batch, jax.random.PRNGKey(2))
    moved, _ = cic.update(params, batch, jax.random.PRNGKey(2))
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, frozen.nets, params.nets)))
    assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, moved.nets, params.nets)))


# ---- through the training loop ------------------------------------------------------------------


def test_vmapped_seeds_through_the_cli_with_the_code_variants(tmp_path):
    from experiments import train

    args = ["algo=cic", "algo.objective.reward_form=code", "algo.objective.cpc_form=code", "num_seeds=2"]
    result = train.run(train.resolve_config(TINY + args + [f"run_dir={tmp_path}", "total_steps=80"]))
    a, b = result.rows
    for row in (a, b):
        assert np.isfinite(row["loss/cpc"]) and "sac/critic_loss_head0" in row and "sac/critic_loss_head1" not in row
    assert a["loss/cpc"] != b["loss/cpc"]


@pytest.mark.slow
def test_cic_on_point_covers_more_than_random_actions(tmp_path):
    from experiments import train

    run_dir = tmp_path / "cic"
    assert train.main(["algo=cic", f"run_dir={run_dir}", "total_steps=32000", "eval_every=20", "progress=false", "plots=false"]) == 0
    last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["step"] == 32000
    assert last["eval/coverage"] >= 2 * last["eval/coverage_random"], last
    # The transition embedding carries skill information: the InfoNCE bound log B - L_cpc is positive.
    assert last["loss/cpc"] < np.log(256) - 0.5, last
    assert np.isfinite(last["sac/critic_loss_head1"])  # the CPC head of the paper's reward
