"""Fused CPU kernels: the negative-sampling step as one XLA FFI custom call.

On a CPU the XLA program of a small-batch step is a chain of ~100 small ops (gathers, dot
products, scatters) whose fixed costs and intermediate arrays leave the two cores of a
laptop-class machine half idle (BENCHMARKS.md, "Where a step's time goes"). ``ns_step.cc``
does the same minibatch step (every example's gradient at the parameters before the step,
then all added; plain SGD, whose update is ``scale * g``) in one C++ loop per example, with
the rows in cache and both cores busy, updating the tables in place. It computes the
explicit rule of :mod:`sgjax.outputs.negative` for word2vec.c's skip-gram orientation with
shared negatives (the default skip-gram) and for CBOW (both updates, mean or sum); the test
suite checks it against the XLA step (``tests/test_kernels.py``).

It is built on first use with the system's C++ compiler (``$CXX``, else ``g++``) against the
FFI headers shipped with jaxlib, into the cache directory of :mod:`sgjax.timing`, and
registered with :func:`jax.ffi.register_ffi_target`. ``train.kernel``: ``auto`` uses it
where the model, optimizer, dtype and backend allow and it builds, else the XLA step;
``xla`` never; ``cpu`` requires it (an error says why not).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SOURCE = Path(__file__).with_name("ns_step.cc")
TARGET = "sgjax_ns_step"
#: ns_step.cc's modes: (input side, cbow_mean, cbow_update) -> mode.
MODES = {
    ("skipgram_context", True, "word2vec"): 0,
    ("skipgram_context", True, "paper"): 0,
    ("skipgram_context", False, "word2vec"): 0,
    ("skipgram_context", False, "paper"): 0,
    ("cbow", True, "word2vec"): 1,
    ("cbow", True, "paper"): 2,
    ("cbow", False, "word2vec"): 3,
    ("cbow", False, "paper"): 3,  # the sum's gradient is EH for both
}
_state: dict[str, Any] = {}


def _flags() -> list[str]:
    return ["-O3", "-march=native", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC"]


def _build() -> Path:
    """The shared library, compiled once per source, flags and jaxlib version."""
    from sgjax.timing import default_cache_dir

    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError("no C++ compiler (set CXX or install g++)")
    key = hashlib.sha256(
        SOURCE.read_bytes() + " ".join([cxx, *_flags(), jax.__version__]).encode()
    ).hexdigest()[:16]
    out = Path(default_cache_dir()).parent / "kernels" / f"ns_step-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        lib = Path(tmp) / out.name
        cmd = [cxx, *_flags(), f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(lib)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip()[-500:]}")
        os.replace(lib, out)  # atomic: a concurrent build leaves one complete library
    return out


def available() -> bool:
    """Whether the kernel is built and registered (built on the first call); :func:`why`
    says why not."""
    if "ok" not in _state:
        try:
            lib = ctypes.cdll.LoadLibrary(str(_build()))
            jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.SgjaxNsStep), platform="cpu")
            _state.update(ok=True, lib=lib)
        except (OSError, RuntimeError, AttributeError) as e:
            _state.update(ok=False, why=str(e))
    return bool(_state["ok"])


def why() -> str:
    return _state.get("why", "")


def mode_for(spec: Any, dtype: Any, backend: str, devices: int = 1) -> int | None:
    """ns_step.cc's mode for a :class:`sgjax.train.StepSpec`, or None where the kernel does
    not compute that step (then the XLA step runs): one CPU device, float32 tables."""
    m = spec.model
    ok = (
        backend == "cpu"
        and devices == 1
        and jnp.dtype(dtype) == jnp.float32
        and spec.gradients == "explicit"
        and getattr(spec.optimizer, "path", None) == "scatter"
        and not spec.row_damping
        and spec.row_update_cap == 0
        and m.output == "negative"
        and m.negatives <= 63  # ns_step.cc's rows per example: 1 + K <= 64
        and (m.shared_negatives or m.input == "cbow")
    )
    return MODES.get((m.input, m.cbow_mean, m.cbow_update)) if ok else None


def choose(kernel: str, spec: Any, dtype: Any, backend: str, devices: int = 1) -> int:
    """The step's kernel for ``train.kernel``: a mode of ns_step.cc, or -1 for the XLA step.
    ValueError if ``kernel="cpu"`` and the kernel cannot run this step."""
    if kernel == "xla":
        return -1
    mode = mode_for(spec, dtype, backend, devices)
    if mode is not None and available():
        return mode
    if kernel == "cpu":
        reason = (
            why()
            if mode is not None
            else (
                "it computes negative sampling with plain SGD in float32 on one CPU device, for "
                "skip-gram "
                "(context orientation, shared negatives) and CBOW, explicit rule, no row damping "
                "or row cap"
            )
        )
        raise ValueError(f"train.kernel=cpu: the fused kernel cannot run this step: {reason}")
    return -1


def ns_step(W, W_out, center, context, mask, negatives, scales, mode: int):
    """``(W, W_out, E)`` after one SGD step of the batch (ns_step.cc); ``scales`` (2,):
    the updates' factors of W's and W_out's gradients (-eta for SGD)."""
    out = (
        jax.ShapeDtypeStruct(W.shape, W.dtype),
        jax.ShapeDtypeStruct(W_out.shape, W_out.dtype),
        jax.ShapeDtypeStruct((), jnp.float32),
    )
    call = jax.ffi.ffi_call(TARGET, out, input_output_aliases={0: 0, 1: 1})
    i32 = jnp.int32
    return call(
        W,
        W_out,
        center.astype(i32),
        context.astype(i32),
        mask.astype(i32),
        negatives.reshape(center.shape[0], -1).astype(i32),
        scales.astype(jnp.float32),
        mode=np.int64(mode),
    )
