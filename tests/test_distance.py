"""METRA (skills/distance.py, METRA constraint) against hand-written numpy formulas, for continuous and discrete skills."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skills.base import OneHotPrior, UnitSpherePrior, make_prior
from skills.distance import DistanceSkills, MetraConfig, dual_losses, skill_reward

OBS = 3
HIDDEN = (64, 64)


def _metra(skill_type: str, skill_dim: int, **kw) -> DistanceSkills:
    return DistanceSkills(MetraConfig(skill_type=skill_type, skill_dim=skill_dim, hidden=HIDDEN, **kw), OBS)


def _batch(metra: DistanceSkills, key, n: int = 16, step: float = 1.0) -> dict:
    k_obs, k_move, k_skill = jax.random.split(key, 3)
    obs = jax.random.normal(k_obs, (n, OBS))
    return {
        "obs": obs,
        "next_obs": obs + step * jax.random.normal(k_move, (n, OBS)),
        "skill": metra.sample(k_skill, n),
        "action": jnp.zeros((n, 2)),
        "terminal": jnp.zeros((n,)),
    }


def _np_dphi(metra: DistanceSkills, params, batch) -> np.ndarray:
    """phi(s') - phi(s), each side through the real phi network on its own."""
    now = np.asarray(metra.phi_net.apply(params.phi, batch["obs"]), np.float64)
    nxt = np.asarray(metra.phi_net.apply(params.phi, batch["next_obs"]), np.float64)
    return nxt - now


def _np_reward(dphi: np.ndarray, z: np.ndarray, discrete: bool) -> np.ndarray:
    if not discrete:
        return np.einsum("bd,bd->b", dphi, z)
    k = z.shape[-1]
    mask = (z - 1.0 / k) * k / (k - 1)  # +1 on the skill's own coordinate, -1/(K-1) elsewhere
    return np.einsum("bd,bd->b", dphi, mask)


# ---- reward -----------------------------------------------------------------------------------


@pytest.mark.parametrize("skill_type,skill_dim", [("continuous", 2), ("continuous", 5), ("discrete", 4), ("discrete", 2)])
def test_reward_matches_numpy_formula(skill_type, skill_dim):
    metra = _metra(skill_type, skill_dim)
    params = metra.init(jax.random.PRNGKey(0))
    batch = _batch(metra, jax.random.PRNGKey(1))
    r = np.asarray(metra.reward(params, batch))
    assert r.shape == (16, 1) and metra.n_rewards == 1
    dphi = _np_dphi(metra, params, batch)
    expected = _np_reward(dphi, np.asarray(batch["skill"], np.float64), skill_type == "discrete")
    np.testing.assert_allclose(r[:, 0], expected, rtol=1e-4, atol=1e-5)
    assert np.std(expected) > 1e-3  # the comparison is not between two near-zero vectors


def test_discrete_reward_is_own_minus_mean_of_others():
    """The centred mask is r = dphi_z - mean_{k != z} dphi_k."""
    dphi = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]], np.float32)
    z = np.eye(4, dtype=np.float32)[[2, 0]]
    r = np.asarray(skill_reward(jnp.asarray(dphi), jnp.asarray(z), discrete=True))
    np.testing.assert_allclose(r, [3.0 - (1 + 2 + 4) / 3, -1.0 - (0.5 + 0.0 + 2.0) / 3], rtol=1e-6)
    r_cont = np.asarray(skill_reward(jnp.asarray(dphi), jnp.asarray(z), discrete=False))
    np.testing.assert_allclose(r_cont, [3.0, -1.0])


def test_reward_is_zero_without_motion():
    metra = _metra("continuous", 3)
    params = metra.init(jax.random.PRNGKey(0))
    batch = _batch(metra, jax.random.PRNGKey(1), step=0.0)
    np.testing.assert_allclose(np.asarray(metra.reward(params, batch)), 0.0, atol=1e-6)


# ---- dual losses ------------------------------------------------------------------------------

REWARD = np.array([0.5, -1.0, 2.0], np.float32)
DPHI = np.array([[0.1, 0.2], [1.5, -1.0], [0.0, 0.9]], np.float32)  # mean sq: 0.025, 1.625, 0.405
SLACK = 0.1
LOG_LAMBDA = np.float32(np.log(3.0))


def _np_dual(reward, dphi, log_lambda, slack):
    pen = np.minimum(slack, 1.0 - np.mean(dphi.astype(np.float64) ** 2, -1))
    lam = np.exp(np.float64(log_lambda))
    return pen, -np.mean(reward + lam * pen), log_lambda * np.mean(pen)


def test_dual_losses_match_numpy():
    pen, phi_loss, lambda_loss = dual_losses(jnp.asarray(REWARD), jnp.asarray(DPHI), jnp.asarray(LOG_LAMBDA), 1.0, SLACK)
    e_pen, e_phi, e_lambda = _np_dual(REWARD, DPHI, LOG_LAMBDA, SLACK)
    np.testing.assert_allclose(np.asarray(pen), e_pen, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(pen), [0.1, -0.625, 0.1], rtol=1e-5)  # slack clips rows 0 and 2
    np.testing.assert_allclose(float(phi_loss), e_phi, rtol=1e-5)
    np.testing.assert_allclose(float(lambda_loss), e_lambda, rtol=1e-5)


def test_dual_gradients():
    r, d, ll = jnp.asarray(REWARD), jnp.asarray(DPHI), jnp.asarray(LOG_LAMBDA)
    e_pen = _np_dual(REWARD, DPHI, LOG_LAMBDA, SLACK)[0]

    # d lambda_loss / d log_lambda = mean(pen): negative (violated) -> gradient descent raises lambda.
    g_lambda = jax.grad(lambda x: dual_losses(r, d, x, 1.0, SLACK)[2])(ll)
    np.testing.assert_allclose(float(g_lambda), np.mean(e_pen), rtol=1e-5)
    assert float(g_lambda) < 0

    # lambda is a constant inside the phi loss.
    g_phi_wrt_lambda = jax.grad(lambda x: dual_losses(r, d, x, 1.0, SLACK)[1])(ll)
    assert float(g_phi_wrt_lambda) == 0.0

    # ... and the penalty is a constant inside the lambda loss.
    g_lambda_wrt_dphi = jax.grad(lambda x: dual_losses(r, x, ll, 1.0, SLACK)[2])(d)
    np.testing.assert_array_equal(np.asarray(g_lambda_wrt_dphi), 0.0)

    # d phi_loss / d dphi: only rows where the slack does not bind carry the penalty's gradient,
    # -lambda * d pen / d dphi / B = lambda * 2 dphi / (D B).
    g_dphi = np.asarray(jax.grad(lambda x: dual_losses(r, x, ll, 1.0, SLACK)[1])(d))
    b, dim = DPHI.shape
    expected = np.zeros_like(DPHI)
    expected[1] = np.exp(LOG_LAMBDA) * 2 * DPHI[1] / (dim * b)
    np.testing.assert_allclose(g_dphi, expected, rtol=1e-5, atol=1e-7)

    # d phi_loss / d reward = -1/B.
    g_r = np.asarray(jax.grad(lambda x: dual_losses(x, d, ll, 1.0, SLACK)[1])(r))
    np.testing.assert_allclose(g_r, -np.ones(b) / b, rtol=1e-6)


# ---- one update -------------------------------------------------------------------------------


def test_defaults():
    cfg = MetraConfig()
    assert cfg.init_lambda == 30.0 and cfg.slack == 1e-3
    metra = DistanceSkills(MetraConfig(hidden=HIDDEN), OBS)
    params = metra.init(jax.random.PRNGKey(0))
    np.testing.assert_allclose(float(jnp.exp(params.log_lambda)), 30.0, rtol=1e-5)


@pytest.mark.parametrize("skill_type,skill_dim", [("continuous", 2), ("discrete", 4)])
def test_update_moves_lambda_the_right_way(skill_type, skill_dim):
    metra = _metra(skill_type, skill_dim)
    params = metra.init(jax.random.PRNGKey(0))
    update = jax.jit(metra.update)

    # Far-apart pairs: ||dphi||^2 / D > 1, the constraint is violated, lambda must grow.
    far = _batch(metra, jax.random.PRNGKey(1), step=50.0)
    dphi = _np_dphi(metra, params, far)
    assert np.mean(dphi**2, -1).mean() > 1.0 + 10 * metra.config.slack  # precondition
    new, metrics = update(params, far, jax.random.PRNGKey(2))
    assert float(new.log_lambda) > float(params.log_lambda)

    # The reported phi loss is the hand formula at the pre-update phi.
    r = _np_reward(dphi, np.asarray(far["skill"], np.float64), metra.prior.discrete)
    _, e_phi, e_lambda = _np_dual(r, dphi, float(params.log_lambda), metra.config.slack)
    np.testing.assert_allclose(float(metrics["loss/phi"]), e_phi, rtol=1e-3)
    np.testing.assert_allclose(float(metrics["loss/lambda"]), e_lambda, rtol=1e-3)

    # Identical pairs: dphi = 0, penalty = slack > 0, the constraint holds, lambda must shrink.
    still = _batch(metra, jax.random.PRNGKey(1), step=0.0)
    new, metrics = update(params, still, jax.random.PRNGKey(2))
    assert float(new.log_lambda) < float(params.log_lambda)
    np.testing.assert_allclose(float(metrics["distance/penalty"]), metra.config.slack, rtol=1e-5)


def test_update_increases_reward_on_fixed_batch():
    """phi ascends r + lambda*pen: a few steps on one batch raise the objective phi maximises."""
    metra = _metra("continuous", 2, learning_rate=1e-3)
    params = metra.init(jax.random.PRNGKey(0))
    batch = _batch(metra, jax.random.PRNGKey(1), n=64, step=0.1)
    update = jax.jit(metra.update)
    first = None
    for i in range(20):
        params, metrics = update(params, batch, jax.random.PRNGKey(i))
        first = float(metrics["loss/phi"]) if first is None else first
    assert float(metrics["loss/phi"]) < first


# ---- priors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 7])
def test_unit_sphere_prior(dim):
    z = np.asarray(UnitSpherePrior(dim).sample(jax.random.PRNGKey(0), 1000))
    assert z.shape == (1000, dim)
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, rtol=1e-5)
    if dim > 1:
        assert np.all(np.abs(z.mean(0)) < 0.1)  # no preferred direction


def test_one_hot_prior():
    k, n = 5, 10_000
    z = np.asarray(OneHotPrior(k).sample(jax.random.PRNGKey(0), n))
    assert z.shape == (n, k)
    assert set(np.unique(z)) == {0.0, 1.0}
    np.testing.assert_array_equal(z.sum(-1), 1.0)
    freq = z.mean(0)
    np.testing.assert_allclose(freq, 1.0 / k, atol=0.02)


def test_make_prior():
    assert make_prior("continuous", 3) == UnitSpherePrior(3)
    assert make_prior("discrete", 4) == OneHotPrior(4)
    for bad in [("discrete", 1), ("continuous", 0), ("gaussian", 2)]:
        with pytest.raises(ValueError):
            make_prior(*bad)


# ---- the rest of the family: CSD's distance and model, LSD's Lipschitz phi ----------------------

from skills.distance import CSDConfig, LSDConfig, csd_distance, gaussian_nll  # noqa: E402


def test_csd_distance_matches_hand_formula():
    rng = np.random.default_rng(0)
    delta, mean, log_std = (rng.normal(size=(5, 3)).astype(np.float32) for _ in range(3))
    c = np.exp(-log_std)
    c_hat = c / np.exp(np.mean(np.log(c), -1, keepdims=True))  # unit-determinant precision
    want = np.mean((delta - mean) ** 2 * c_hat**2, -1)
    np.testing.assert_allclose(np.asarray(csd_distance(delta, mean, log_std)), want, rtol=1e-5)


def test_csd_distance_is_large_for_rare_directions():
    # The model says dim 0 moves a lot (sigma 1) and dim 1 barely (sigma 0.01): the same step
    # along the hard dim 1 is far more "distant" than along the easy dim 0.
    mean = np.zeros((1, 2), np.float32)
    log_std = np.log(np.array([[1.0, 0.01]], np.float32))
    easy = float(csd_distance(np.array([[0.1, 0.0]], np.float32), mean, log_std)[0])
    hard = float(csd_distance(np.array([[0.0, 0.1]], np.float32), mean, log_std)[0])
    assert hard > 1000 * easy


def test_gaussian_nll_matches_hand_formula():
    rng = np.random.default_rng(1)
    delta, mean, log_std = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
    sigma = np.exp(log_std)
    want = np.sum(0.5 * ((delta - mean) / sigma) ** 2 + np.log(sigma) + 0.5 * np.log(2 * np.pi), -1)
    np.testing.assert_allclose(np.asarray(gaussian_nll(delta, mean, log_std)), want, rtol=1e-5)


def test_csd_update_fits_the_transition_model_and_uses_its_distance():
    csd = DistanceSkills(CSDConfig(hidden=HIDDEN, learning_rate=1e-3), OBS)
    assert csd.config.init_lambda == 3000.0 and csd.config.slack == 1e-6
    params = csd.init(jax.random.PRNGKey(0))
    batch = _batch(csd, jax.random.PRNGKey(1), n=64, step=0.3)
    mean, log_std = csd._model(params.model, batch["obs"])
    delta = batch["next_obs"] - batch["obs"]
    np.testing.assert_allclose(
        np.asarray(csd.distance(params, batch)), np.asarray(csd_distance(delta, mean, log_std)), rtol=1e-5
    )
    update = jax.jit(csd.update)
    first = None
    for i in range(200):
        params, metrics = update(params, batch, jax.random.PRNGKey(i))
        first = first if first is not None else float(metrics["loss/model"])
    assert float(metrics["loss/model"]) < first - 1.0  # maximum likelihood makes progress
    # The penalty uses d_CSD, not 1: recompute it by hand from the reported pieces.
    dphi = np.asarray(_np_dphi(csd, params, batch))
    d = np.asarray(csd.distance(params, batch))
    penalty = np.minimum(1e-6, d - np.mean(dphi**2, -1))
    _, _, lambda_loss = dual_losses(jnp.zeros(64), jnp.asarray(dphi), params.log_lambda, jnp.asarray(d), 1e-6)
    np.testing.assert_allclose(float(lambda_loss), float(params.log_lambda) * penalty.mean(), rtol=1e-4)


def test_lsd_phi_is_one_lipschitz_and_has_no_dual():
    lsd = DistanceSkills(LSDConfig(hidden=(64, 64), skill_dim=3), OBS)
    params = lsd.init(jax.random.PRNGKey(0))
    # Make the raw weights large so that an unnormalised network would be far from 1-Lipschitz.
    params = params.replace(phi=jax.tree.map(lambda w: 10.0 * w, params.phi))
    x = jax.random.normal(jax.random.PRNGKey(1), (512, OBS)) * 3
    y = x + 0.1 * jax.random.normal(jax.random.PRNGKey(2), (512, OBS))
    ratio = jnp.linalg.norm(lsd.embed(params, x) - lsd.embed(params, y), axis=-1) / jnp.linalg.norm(x - y, axis=-1)
    assert float(ratio.max()) <= 1.0 + 1e-3
    batch = _batch(lsd, jax.random.PRNGKey(3))
    new, metrics = jax.jit(lsd.update)(params, batch, jax.random.PRNGKey(4))
    assert "loss/lambda" not in metrics
    assert float(new.log_lambda) == float(params.log_lambda)
    np.testing.assert_allclose(float(metrics["loss/phi"]), -float(jnp.mean(lsd.reward(params, batch))), rtol=1e-5)


@pytest.mark.parametrize("skill_type, skill_dim", [("continuous", 3), ("discrete", 4)])
def test_goal_skill_points_from_phi_s_to_phi_g(skill_type, skill_dim):
    metra = _metra(skill_type, skill_dim)
    params = metra.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, OBS))
    goal = jax.random.normal(jax.random.PRNGKey(2), (6, OBS))
    diff = np.asarray(metra.embed(params, goal) - metra.embed(params, obs))
    z = np.asarray(metra.goal_skill(params, obs, goal))
    if skill_type == "continuous":
        np.testing.assert_allclose(z, diff / np.linalg.norm(diff, axis=-1, keepdims=True), rtol=1e-4)
    else:
        np.testing.assert_array_equal(z, np.eye(skill_dim)[np.argmax(diff, -1)])
