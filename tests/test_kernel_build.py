"""Where a C++ compiler is, the fused CPU kernel must build: tests/test_kernels.py skips
when it is not available, so without this test a source that no longer compiles would
pass the suite (the step falling back to XLA's)."""

from __future__ import annotations

import jax
import pytest

from sgjax import kernels


def test_the_kernel_builds_where_a_compiler_is():
    if jax.default_backend() != "cpu":
        pytest.skip("the fused kernel is for the CPU backend")
    try:
        kernels.compiler()
    except RuntimeError as e:
        pytest.skip(str(e))
    assert kernels.available(), kernels.why()
