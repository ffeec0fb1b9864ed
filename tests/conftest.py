"""Fixtures shared by test modules."""

from __future__ import annotations

import pytest

from sgjax import ctokens


@pytest.fixture(params=["python", "c"])
def tokens_method(request, monkeypatch):
    """The corpus's tokens counted and looked up by Python/numpy, or by the C library of
    :mod:`sgjax.ctokens` (which the pipeline uses where JAX is imported)."""
    if request.param == "python":
        monkeypatch.setattr(ctokens, "library", lambda: None)
    else:
        from sgjax import kernels

        lib = kernels.tokens_library()
        if lib is None:
            pytest.skip("the C library does not build here (no C++ compiler)")
        monkeypatch.setattr(ctokens, "library", lambda: lib)
    return request.param
