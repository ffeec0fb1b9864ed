"""The C helper libraries (``sgjax/kernels/{textfloat,tokens,analogy}.cc``) for modules that
must not import JAX themselves (:mod:`sgjax.textfloat`, :mod:`sgjax.ctokens`,
:mod:`sgjax.analogy`). Building one (:mod:`sgjax.kernels`) imports JAX, so a library is
used only where JAX is imported already (a run); a script that formats, counts or
evaluates alone runs the module's numpy method instead, with the same results. Arrays go
to the C functions as their data addresses (``a.ctypes.data``: their ``c_void_p``
arguments take the integer)."""

from __future__ import annotations

import ctypes
import sys


def library(name: str) -> ctypes.CDLL | None:
    """``sgjax.kernels.<name>_library()`` where JAX is imported (None where the library
    does not build: no compiler), else None."""
    if "jax" not in sys.modules:
        return None
    from sgjax import kernels  # noqa: PLC0415 (imports JAX)

    return getattr(kernels, f"{name}_library")()
