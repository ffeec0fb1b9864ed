"""Fixtures shared by test modules: each C helper library (:mod:`sgjax.kernels`) against
the Python/numpy method it replaces, which the package uses where it does not build."""

from __future__ import annotations

import pytest

from sgjax import analogy, ctokens, textfloat


def _method(param: str, monkeypatch, module, name: str, build: str) -> str:
    """``module.name()`` (the module's choice of library) made to give None (``param``
    "python": the Python/numpy method) or the library ``sgjax.kernels.<build>()`` makes
    (skipped where it does not build: no C++ compiler). (sgjax.kernels imports JAX, so it
    is imported here, not when the tests are collected.)"""
    if param == "python":
        monkeypatch.setattr(module, name, lambda: None)
    else:
        from sgjax import kernels  # noqa: PLC0415

        lib = getattr(kernels, build)()
        if lib is None:
            pytest.skip("the C library does not build here (no C++ compiler)")
        monkeypatch.setattr(module, name, lambda: lib)
    return param


@pytest.fixture(params=["python", "c"])
def tokens_method(request, monkeypatch):
    """The corpus's tokens counted and looked up by Python/numpy or by tokens.cc."""
    return _method(request.param, monkeypatch, ctokens, "library", "tokens_library")


@pytest.fixture(params=["python", "c"])
def textfloat_method(request, monkeypatch):
    """format_rows by numpy or by textfloat.cc."""
    return _method(request.param, monkeypatch, textfloat, "_library", "textfloat_library")


@pytest.fixture(params=["python", "c"])
def analogy_method(request, monkeypatch):
    """The analogy search by numpy or by analogy.cc."""
    return _method(request.param, monkeypatch, analogy, "_library", "analogy_library")
