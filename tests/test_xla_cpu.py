"""The XLA:CPU Cholesky workaround (worlds/xla_cpu.py): batched Cholesky on CPU is lowered to
XLA's own op instead of jaxlib's LAPACK kernel that can deadlock the intra-op pool."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import worlds
from worlds import xla_cpu

pytestmark = pytest.mark.skipif(not xla_cpu.affected(), reason="this jaxlib has no parallel LAPACK batch path")


def test_unrolled_cholesky_matches_numpy_and_flags_non_positive_definite():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 4, 7, 7))
    spd = a @ np.swapaxes(a, -1, -2) + 7 * np.eye(7)
    np.testing.assert_allclose(xla_cpu.unrolled_cholesky(jnp.asarray(spd, jnp.float32)), np.linalg.cholesky(spd), rtol=1e-4, atol=1e-5)
    spd[1, 2, 3, 3] = -1.0  # one matrix stops being positive definite: only it becomes NaN
    out = np.asarray(xla_cpu.unrolled_cholesky(jnp.asarray(spd, jnp.float32)))
    assert np.isnan(out[1, 2]).all() and np.isfinite(np.delete(out.reshape(12, 7, 7), 6, axis=0)).all()


def test_version_gate():
    assert xla_cpu.affected("0.10.2") and xla_cpu.affected("0.4.38")
    assert not xla_cpu.affected("0.11.0") and not xla_cpu.affected("1.0.0")


def _lowered(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


def test_batched_cholesky_avoids_lapack_and_matches_numpy():
    assert xla_cpu.install() and xla_cpu.install()  # idempotent
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 5, 5)).astype(np.float32)
    spd = a @ a.transpose(0, 2, 1) + 5 * np.eye(5, dtype=np.float32)
    batched = _lowered(lambda x: jnp.linalg.cholesky(x), spd)
    assert "potrf" not in batched and "stablehlo.cholesky" not in batched  # the unrolled jnp factorisation
    assert "potrf" in _lowered(lambda x: jnp.linalg.cholesky(x), spd[0])  # one matrix keeps LAPACK
    big = np.stack([np.eye(xla_cpu.UNROLL_MAX + 1, dtype=np.float32)] * 2)
    assert "stablehlo.cholesky" in _lowered(lambda x: jnp.linalg.cholesky(x), big)  # XLA's op beyond the unroll limit
    np.testing.assert_allclose(jax.jit(jnp.linalg.cholesky)(spd), np.linalg.cholesky(spd), rtol=1e-5, atol=1e-5)
    # A matrix that is not positive definite gives NaNs, as LAPACK's path does.
    not_pd = np.asarray(jax.jit(jnp.linalg.cholesky)(-np.stack([np.eye(3, dtype=np.float32)] * 2)))
    rows, cols = np.tril_indices(3)
    assert np.isnan(not_pd[:, rows, cols]).all()
    # Solves through the factor, batched as MJX's Newton solver does.
    b = rng.normal(size=(6, 5)).astype(np.float32)
    solve = jax.jit(jax.vmap(lambda m, v: jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(m), v)))
    np.testing.assert_allclose(solve(spd, b), np.linalg.solve(spd, b[..., None])[..., 0], rtol=1e-4, atol=1e-5)


def test_vmapped_quadruped_step_has_no_lapack_cholesky():
    """The program that hung: MJX's Newton solver under vmap. Building the world installs the fix."""
    world = worlds.make("dmc/quadruped_walk")
    # Shapes only: lowering needs no values, and an eager vmapped MJX reset costs minutes.
    states = jax.eval_shape(jax.vmap(world.reset), jax.random.split(jax.random.PRNGKey(0), 4))
    actions = jax.ShapeDtypeStruct((4, world.spec.action_size), jnp.float32)
    text = _lowered(jax.vmap(world.step), states, actions)
    assert "potrf" not in text and "sqrt" in text
