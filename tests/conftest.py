"""Test-wide setup: JAX's persistent compilation cache, and the repo root on ``sys.path``.

In CI the package is pip-installed; the path insert only helps a plain ``pytest`` from a clone.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/skillax/jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
