"""Fused CPU kernels: the step of a logistic output layer as one XLA FFI custom call.

On a CPU the XLA program of a small-batch step is a chain of ~100 small ops (gathers, dot
products, scatters) whose fixed costs and intermediate arrays leave the two cores of a
laptop-class machine half idle (BENCHMARKS.md, "Where a step's time goes").
``logistic_step.cc`` does the same minibatch step (every example's gradient at the
parameters before the step, then all added; plain SGD, whose update is ``scale * g``;
optionally row-damped as :func:`sgjax.rules.damp_rows`) in one C++ loop per example, with
the rows in cache and both cores busy, updating the tables in place. It computes the
explicit rule of :func:`sgjax.outputs.logistic.logistic_rows` (negative sampling, NCE,
hierarchical softmax: each example's hidden vectors against S output rows they share) for
word2vec.c's skip-gram orientation (with shared negatives where the layer samples) and for
CBOW (both updates, mean or sum). :data:`ROWS` gives each layer's rows, targets and score
offsets; ``tests/test_kernels.py`` checks the kernel against the XLA step.

It is built on first use with the system's C++ compiler (``$CXX``, else ``g++``) against the
FFI headers shipped with jaxlib, into the cache directory of :mod:`sgjax.timing`, and
registered with :func:`jax.ffi.register_ffi_target`. ``train.kernel``: ``auto`` uses it
where the model, optimizer, dtype and backend allow and it builds, else the XLA step;
``xla`` never; ``cpu`` requires it (an error says why not); ``pallas`` runs the same step as
two Pallas kernels (:mod:`sgjax.kernels.pallas_step`; for GPUs, interpreted elsewhere, so
only for tests there) and is used only where asked for: its speed on a GPU is not measured
yet. :data:`FUSED` maps each to its function.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.outputs import nce, sampling

SOURCE = Path(__file__).with_name("logistic_step.cc")
#: The headers SOURCE includes: part of the build's key.
HEADERS = [Path(__file__).with_name(h) for h in ("blocked.h", "parallel.h")]
TARGET = "sgjax_logistic_step"
#: logistic_step.cc's modes: (input side, cbow_mean, cbow_update) -> mode.
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
_state: dict[Any, Any] = {}  # "ok", "lib", "why": the kernel; a Path: a helper library


def _flags() -> list[str]:
    return ["-O3", "-march=native", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC"]


def _cpu() -> str:
    """The CPU's model and instruction sets: -march=native code is built per CPU (a home
    directory shared by the nodes of a cluster must not hand one node's build to another)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return platform.machine() + "".join(sorted(set(lines)))
    except OSError:
        return platform.machine() + platform.processor()


def compiler() -> str:
    """The C++ compiler: ``$CXX``, else ``g++``, else ``c++``; RuntimeError if none."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError("no C++ compiler (set CXX or install g++)")
    return cxx


def compile_command(source: str | os.PathLike, out: str | os.PathLike, shared: bool = True):
    """The command that builds ``source`` with the kernel's flags against jaxlib's FFI
    headers: a shared library, or (``shared=False``) a program that includes
    logistic_step.cc (``scripts/kernel_phases.py``'s driver)."""
    flags = _flags() if shared else [f for f in _flags() if f not in ("-shared", "-fPIC")]
    return [compiler(), *flags, f"-I{jax.ffi.include_dir()}", str(source), "-o", str(out)]


def _build(source: Path = SOURCE, headers: tuple[Path, ...] = tuple(HEADERS)) -> Path:
    """The shared library of ``source`` (and the ``headers`` it includes), compiled once per
    source, flags and jaxlib version."""
    from sgjax.timing import default_cache_dir

    sources = b"".join(p.read_bytes() for p in [source, *headers])
    key = hashlib.sha256(
        sources + " ".join([compiler(), *_flags(), jax.__version__, _cpu()]).encode()
    ).hexdigest()[:16]
    out = Path(default_cache_dir()).parent / "kernels" / f"{source.stem}-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        lib = Path(tmp) / out.name
        cmd = compile_command(source, lib)
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
            jax.ffi.register_ffi_target(
                TARGET, jax.ffi.pycapsule(lib.SgjaxLogisticStep), platform="cpu"
            )
            _state.update(ok=True, lib=lib)
        except (OSError, RuntimeError, AttributeError) as e:
            _state.update(ok=False, why=str(e))
    return bool(_state["ok"])


def why() -> str:
    return _state.get("why", "")


#: ``textfloat.cc``: :mod:`sgjax.textfloat`'s "%.9g" rows in C.
TEXTFLOAT = Path(__file__).with_name("textfloat.cc")
#: ``tokens.cc``: the corpus's token counts and word ids in C (:mod:`sgjax.ctokens`).
TOKENS = Path(__file__).with_name("tokens.cc")
#: ``analogy.cc``: :mod:`sgjax.analogy`'s search for each question's best word in C.
ANALOGY = Path(__file__).with_name("analogy.cc")
_P, _I64 = ctypes.c_void_p, ctypes.c_int64
#: The C functions of each helper library: name -> (restype, argtypes).
_FUNCTIONS = {
    TEXTFLOAT: {"sgjax_format_rows": (_I64, [_P, _I64, _I64, _P, _P, _P])},
    ANALOGY: {
        "sgjax_analogy_scan": (
            None,
            [_P, _I64, _I64, _P, _P, _I64, _I64, ctypes.c_float] + [_P] * 3,
        )
    },
    TOKENS: {
        "sgjax_table_new": (_P, []),
        "sgjax_table_free": (None, [_P]),
        "sgjax_count_tokens": (_I64, [_P, ctypes.c_char_p, _I64]),
        "sgjax_table_size": (_I64, [_P, _P]),
        "sgjax_table_export": (None, [_P, _P, _P]),
        "sgjax_table_prune": (_I64, [_P, _I64]),
        "sgjax_table_add_words": (_I64, [_P, ctypes.c_char_p, _P, _I64]),
        "sgjax_lookup_tokens": (_I64, [_P, ctypes.c_char_p, _I64, _P, _P]),
    },
}


def helper_library(source: Path) -> ctypes.CDLL | None:
    """The library of a helper ``source`` of :data:`_FUNCTIONS` (plain C functions called
    with ctypes, which releases the GIL), built on first use; None where it does not build
    (no compiler): its Python module then does the work with numpy."""
    if source not in _state:
        try:
            lib = ctypes.cdll.LoadLibrary(str(_build(source, ())))
            for name, (restype, argtypes) in _FUNCTIONS[source].items():
                f = getattr(lib, name)
                f.restype, f.argtypes = restype, argtypes
            _state[source] = lib
        except (OSError, RuntimeError, AttributeError):
            _state[source] = None
    return _state[source]


def textfloat_library() -> ctypes.CDLL | None:
    """``textfloat.cc``'s library (:func:`helper_library`)."""
    return helper_library(TEXTFLOAT)


def analogy_library() -> ctypes.CDLL | None:
    """``analogy.cc``'s library (:func:`helper_library`)."""
    return helper_library(ANALOGY)


def tokens_library() -> ctypes.CDLL | None:
    """``tokens.cc``'s library (:func:`helper_library`)."""
    return helper_library(TOKENS)


def _sampled(ex: dict, consts: dict, offset=None) -> tuple:
    """Rows [output word, K negatives] (:func:`sgjax.outputs.sampling.pair_terms`);
    ``offset(rows, consts)`` shifts the scores (NCE)."""
    center = ex["center"]
    neg = ex["negatives"].reshape(center.shape[0], -1)
    rows, t, used = jax.vmap(sampling.pair_terms)(center, neg)
    return rows, t, used, None if offset is None else offset(rows, consts)


def _path(ex: dict, consts: dict) -> tuple:
    """Rows: the output word's Huffman path; t = 1 - code; padded entries unused."""
    rows = ex["points"][:, 0]
    t = 1.0 - ex["codes"][:, 0].astype(jnp.float32)
    return rows, t, ex["path_mask"][:, 0], None


#: Output layers the kernel computes: name -> ``(example, consts) -> (rows (B, S),
#: t (B, S), used (B, S), offset (B, S) or None)`` for an example's one output word, ``example``
#: the batch with the layer's fields (negatives, Huffman paths).
ROWS = {
    "negative": _sampled,
    "nce": lambda ex, consts: _sampled(ex, consts, nce.offset),
    "hierarchical": _path,
}
#: The layers of :data:`ROWS` whose t and used the CPU kernel derives from the rows
#: (:func:`_sampled`'s pair_terms: [w_O, negatives], t = 1, 0, ..., 0, used = slot 0 and
#: the negatives unequal to w_O): :func:`logistic_steps` with ``t=None, used=None``, so
#: XLA neither makes nor stores them (a CBOW call's 3 x 1.5M entries: BENCHMARKS.md).
DERIVED = frozenset({"negative", "nce"})


def mode_for(
    spec: Any, dtype: Any, backend: str, devices: int = 1, kernel: str = "cpu"
) -> int | None:
    """logistic_step.cc's mode for a :class:`sgjax.train.StepSpec`, or None where the
    kernel does not compute that step (then the XLA step runs): one device (a CPU for the
    C++ kernel, any for the Pallas one), float32 tables, plain SGD, a layer of :data:`ROWS`
    with one output word per example."""
    m = spec.model
    ok = (
        (backend == "cpu" or kernel == "pallas")
        and devices == 1
        and jnp.dtype(dtype) == jnp.float32
        and spec.gradients == "explicit"
        and getattr(spec.optimizer, "path", None) == "scatter"
        and spec.row_update_cap == 0
        and m.output in ROWS
        and (m.input == "cbow" or not m.layer.draws or m.shared_negatives)
        and m.negatives <= 63  # logistic_step.cc's rows per example: <= 64
        # damped, it damps skip-gram's input rows and leaves CBOW's undamped
        and (not spec.row_damping or spec.row_damping_inputs == (m.input != "cbow"))
    )
    return MODES.get((m.input, m.cbow_mean, m.cbow_update)) if ok else None


#: What the kernels compute (:func:`mode_for`), for messages; ``{}``: the device's kind.
SCOPE = (
    "computes negative sampling, NCE and hierarchical softmax with plain SGD in float32 on one "
    "{}device, for skip-gram (context orientation; shared negatives) and CBOW, explicit rule, "
    "no row cap; damped, the input rows of skip-gram and not of CBOW (train.row_damping_inputs)"
)


def choose(kernel: str, spec: Any, dtype: Any, backend: str, devices: int = 1) -> int:
    """The step's kernel for ``train.kernel``: a mode of logistic_step.cc, or -1 for the XLA step.
    ValueError if ``kernel="cpu"`` and the kernel cannot run this step."""
    if kernel == "xla":
        return -1
    if kernel == "pallas":  # asked for by name: never chosen by auto (not yet measured)
        mode = mode_for(spec, dtype, backend, devices, "pallas")
        if mode is None:
            raise ValueError(f"train.kernel=pallas: the Pallas kernel {SCOPE.format('')}")
        return mode
    mode = mode_for(spec, dtype, backend, devices)
    if mode is not None and available():
        return mode
    if kernel == "cpu":
        reason = why() if mode is not None else "it " + SCOPE.format("CPU ")
        raise ValueError(f"train.kernel=cpu: the fused kernel cannot run this step: {reason}")
    return -1


def logistic_steps(
    W, W_out, batch: dict, rows, t, used, offset, scales, active, mode: int, damp: bool,
    parts: int = 0, rare_from: int = 0, rare_scale: float = 1.0,
):  # fmt: skip
    """``(W, W_out, E)`` after the SGD steps of one call (logistic_step.cc), in order: every
    per-step input has a leading axis of S steps (``batch["context"]``, ``["mask"]`` (S, B,
    C); ``rows``, ``t``, ``used``, ``offset`` (S, B, rows); ``offset`` None: no score
    offsets; ``t`` and ``used`` None: derived from the rows as :data:`DERIVED`'s layers
    make them); ``scales`` (S, 3): each step's factors of W's and W_out's gradients (-eta for
    SGD) and its learning rate (row damping's); ``active`` (S,): the steps to take (the
    others leave the tables alone, E 0). E (S,): each step's loss. ``parts``: the step's
    parts (threads), 0 for XLA's intra-op pool's size; the result does not depend on it.
    W's rows from ``rare_from`` on take ``rare_scale`` x W's factor (the spec's fields of
    :func:`sgjax.rules.rare_rows`)."""
    if (t is None) != (used is None):
        raise ValueError("logistic_steps: t and used are both given, or both None (derived)")
    steps = active.shape[0]
    out = (
        jax.ShapeDtypeStruct(W.shape, W.dtype),
        jax.ShapeDtypeStruct(W_out.shape, W_out.dtype),
        jax.ShapeDtypeStruct((steps,), jnp.float32),
    )
    call = jax.ffi.ffi_call(TARGET, out, input_output_aliases={0: 0, 1: 1})
    i32, f32 = jnp.int32, jnp.float32
    return call(
        W,
        W_out,
        batch["context"].astype(i32),
        batch["mask"].astype(bool),
        rows.astype(i32),
        jnp.zeros((1,), f32) if t is None else t.astype(f32),
        jnp.zeros((1,), bool) if used is None else used.astype(bool),
        jnp.zeros((1,), f32) if offset is None else offset.astype(f32),
        scales.astype(f32),
        active.astype(i32),
        mode=np.int64(mode),
        damp=np.int64(bool(damp)),
        parts=np.int64(parts),
        rare_from=np.int64(rare_from),
        rare_scale=np.float32(rare_scale),
    )


def logistic_step(
    W, W_out, batch: dict, rows, t, used, offset, scales, mode: int, damp: bool, parts: int = 0,
    rare_from: int = 0, rare_scale: float = 1.0,
):  # fmt: skip
    """``(W, W_out, E)`` after one SGD step of the batch: :func:`logistic_steps` of one step
    (the per-step inputs without their leading axis, ``scales`` (3,), E a scalar)."""
    one = lambda x: None if x is None else jnp.asarray(x)[None]  # noqa: E731
    b = {k: one(batch[k]) for k in ("context", "mask")}
    W, W_out, E = logistic_steps(
        W, W_out, b, one(rows), one(t), one(used), one(offset), one(scales),
        jnp.ones((1,), jnp.int32), mode, damp, parts, rare_from, rare_scale,
    )  # fmt: skip
    return W, W_out, E[0]


def _pallas(*args: Any, **kwargs: Any) -> tuple:
    from sgjax.kernels.pallas_step import pallas_logistic_step  # Pallas: imported when used

    return pallas_logistic_step(*args, **kwargs)


#: ``train.kernel`` -> the fused step's function (the arguments of :func:`logistic_step`).
FUSED = {"cpu": logistic_step, "pallas": _pallas}
#: ``train.kernel`` -> a fused call of all of a call's steps (the arguments of
#: :func:`logistic_steps`), where the kernel has one: :func:`sgjax.train.train_step` then
#: makes one custom call per call instead of scanning its steps.
FUSED_CALL = {"cpu": logistic_steps}
