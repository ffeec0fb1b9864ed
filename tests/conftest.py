"""Fixtures shared by test modules: each C helper library (:mod:`sgjax.kernels`) against
the Python/numpy method it replaces, which the package uses where it does not build."""

from __future__ import annotations

import pytest

from sgjax import analogy, ctokens, textfloat


def _built(name: str):
    """``sgjax.kernels.<name>_library()``, the test skipped where it does not build (no C++
    compiler). (sgjax.kernels imports JAX, so it is imported here, not when the tests are
    collected.)"""
    from sgjax import kernels  # noqa: PLC0415

    lib = getattr(kernels, f"{name}_library")()
    if lib is None:
        pytest.skip(f"the C library {name}.cc does not build here (no C++ compiler)")
    return lib


@pytest.fixture
def c_library():
    """``c_library("tokens")``: that C helper library, or the test skipped (:func:`_built`)."""
    return _built


def _method(param: str, monkeypatch, module, name: str, build: str) -> str:
    """``module.name()`` (the module's choice of library) made to give None (``param``
    "python": the Python/numpy method) or the C library ``build`` (:func:`_built`)."""
    lib = None if param == "python" else _built(build)
    monkeypatch.setattr(module, name, lambda: lib)
    return param


@pytest.fixture(params=["python", "c"])
def tokens_method(request, monkeypatch):
    """The corpus's tokens counted and looked up by Python/numpy or by tokens.cc."""
    return _method(request.param, monkeypatch, ctokens, "library", "tokens")


@pytest.fixture(params=["python", "c"])
def textfloat_method(request, monkeypatch):
    """format_rows by numpy or by textfloat.cc."""
    return _method(request.param, monkeypatch, textfloat, "_library", "textfloat")


@pytest.fixture(params=["python", "c"])
def analogy_method(request, monkeypatch):
    """The analogy search by numpy or by analogy.cc."""
    return _method(request.param, monkeypatch, analogy, "_library", "analogy")
