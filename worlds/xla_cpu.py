"""A workaround for a deadlock in jaxlib's CPU LAPACK Cholesky (jaxlib 0.10.x and older).

The hang: jaxlib's batched Cholesky kernel (``lapack_?potrf_ffi``) splits its batch over XLA:CPU's
intra-op thread pool and blocks until the pieces are done, while it is itself running on a worker
of that same pool. When XLA's thunk executor runs as many of these calls at once as the pool has
workers (2 on a 2-core machine), every worker waits for work that no free worker can pick up, and
the program stops with idle CPUs. MJX's Newton solver factorises one Hessian per world in every
solver iteration, so vmapped MJX worlds (``dmc/*``, ``brax/*``) hit it (README's design notes
give how often). ``gdb`` on a hung process shows every ``tf_XLAEigen`` thread in
``BlockingCounter::Wait`` under ``jax::ParallelBatchMap`` / ``CholeskyFactorization`` /
``lapack_spotrf_ffi``. jaxlib 0.11 builds without that parallel batch path.

The fix: on CPU, batched Cholesky of matrices up to ``UNROLL_MAX`` rows (MJX's Hessians are
nv x nv: 2 to 27 here) is lowered to a column-by-column factorisation written in jnp ops and
unrolled at trace time: plain fused HLO, no custom call, no re-entry into the pool, and close to
LAPACK's speed at these sizes, where XLA's own Cholesky op is several times slower (README's
design notes give the measured table). Larger batched matrices use XLA's
op; unbatched Cholesky keeps LAPACK. Non-positive-definite inputs give NaNs, as LAPACK's lowering
does. GPU and TPU lowerings are untouched. ``install()`` is idempotent and is called when a
physics world is built.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jaxlib

FIXED_IN = (0, 11)  # first jaxlib release without the parallel LAPACK batch path
UNROLL_MAX = 64  # larger matrices: XLA's Cholesky op (trace size grows with n)
_installed = False


def affected(version: str = jaxlib.__version__) -> bool:
    """Does this jaxlib have the parallel batched LAPACK kernels?"""
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    return major_minor < FIXED_IN


def unrolled_cholesky(a: jax.Array) -> jax.Array:
    """Lower Cholesky factor of each [..., n, n] matrix (lower triangle read), one column per
    unrolled step: column j = (a[j:, j] - L[j:, :j] L[j, :j]) / sqrt(its first entry)."""
    n = a.shape[-1]
    factor = jnp.zeros_like(a)
    pivots = []
    for j in range(n):
        column = a[..., j:, j] - jnp.einsum("...ik,...k->...i", factor[..., j:, :j], factor[..., j, :j])
        pivots.append(column[..., 0])
        factor = factor.at[..., j:, j].set(column / jnp.sqrt(column[..., :1]))
    positive_definite = jnp.all(jnp.stack(pivots, -1) > 0, axis=-1)
    return jnp.where(positive_definite[..., None, None], factor, jnp.nan)


def install() -> bool:
    """Lower batched Cholesky on CPU to XLA's expander; returns whether the patch is active."""
    global _installed
    if _installed or not affected():
        return _installed
    from jax._src.lax import linalg  # the two lowerings being chosen between are jax's own
    from jax.interpreters import mlir

    unrolled = mlir.lower_fun(unrolled_cholesky, multiple_results=False)

    def cholesky_cpu(ctx, operand):
        shape = ctx.avals_in[0].shape
        if math.prod(shape[:-2]) == 1:
            return linalg._cholesky_cpu_lowering(ctx, operand)  # LAPACK, no batch to split
        if shape[-1] <= UNROLL_MAX:
            return unrolled(ctx, operand)
        return linalg._cholesky_lowering(ctx, operand)  # XLA's op

    mlir.register_lowering(jax.lax.linalg.cholesky_p, cholesky_cpu, platform="cpu")
    _installed = True
    return True
