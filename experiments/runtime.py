"""Process-wide JAX settings shared by the CLIs and the tests."""

from __future__ import annotations

import os


def enable_compilation_cache(path: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (repeated runs skip most compiles)."""
    import jax

    path = path or os.environ.get("SKILLAX_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "skillax", "jax"))
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
