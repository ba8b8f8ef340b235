"""A workaround for a deadlock in jaxlib's CPU LAPACK Cholesky (jaxlib 0.10.x and older).

The hang: jaxlib's batched Cholesky kernel (``lapack_?potrf_ffi``) splits its batch over XLA:CPU's
intra-op thread pool and blocks until the pieces are done, while it is itself running on a worker
of that same pool. When XLA's thunk executor runs as many of these calls at once as the pool has
workers (2 on a 2-core machine), every worker waits for work that no free worker can pick up, and
the program stops with idle CPUs. MJX's Newton solver factorises one Hessian per world in every
solver iteration, so vmapped MJX worlds (``dmc/*``, ``brax/*``) hit it: ``dmc/quadruped_walk`` with
64 worlds hung in 7 of 13 tries. ``gdb`` on a hung process shows every ``tf_XLAEigen`` thread in
``BlockingCounter::Wait`` under ``jax::ParallelBatchMap`` / ``CholeskyFactorization`` /
``lapack_spotrf_ffi``. jaxlib 0.11 builds without that parallel batch path.

The fix: on CPU, batched Cholesky is lowered to XLA's own Cholesky op, which XLA expands into plain
HLO (no custom call, no re-entry into the pool). Unbatched Cholesky keeps LAPACK. The result is
the same factorisation (non-positive-definite inputs give NaNs either way); GPU and TPU lowerings
are untouched. ``install()`` is idempotent and is called when a physics world is built.
"""

from __future__ import annotations

import math

import jax
import jaxlib

FIXED_IN = (0, 11)  # first jaxlib release without the parallel LAPACK batch path
_installed = False


def affected(version: str = jaxlib.__version__) -> bool:
    """Does this jaxlib have the parallel batched LAPACK kernels?"""
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    return major_minor < FIXED_IN


def install() -> bool:
    """Lower batched Cholesky on CPU to XLA's expander; returns whether the patch is active."""
    global _installed
    if _installed or not affected():
        return _installed
    from jax._src.lax import linalg  # the two lowerings being chosen between are jax's own
    from jax.interpreters import mlir

    def cholesky_cpu(ctx, operand):
        batch = math.prod(ctx.avals_in[0].shape[:-2])
        if batch > 1:
            return linalg._cholesky_lowering(ctx, operand)
        return linalg._cholesky_cpu_lowering(ctx, operand)

    mlir.register_lowering(jax.lax.linalg.cholesky_p, cholesky_cpu, platform="cpu")
    _installed = True
    return True
