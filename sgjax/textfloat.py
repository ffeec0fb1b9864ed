"""The text lines of a float32 matrix, every value as Python's ``"%.9g" % value`` writes it,
made with numpy array operations instead of one formatting call per value.

Why: ``vectors.txt`` holds V x N values (realtext-v1: 2.6M). Formatting them one by one
took ~0.6 s of every run; this takes a fraction of that (BENCHMARKS.md, "Whole process").

How, and why it is exact: a float32 ``a`` (> 0) with decimal exponent X in [-4, 8] is
printed by ``%.9g`` in fixed notation from its 9 significant digits
``m = round_half_even(a * 10**(8 - X))``, trailing zeros dropped. ``a`` has a 24-bit
significand and ``10**k = 5**k * 2**k`` with ``5**k < 2**29`` for k <= 12, so the float64
product ``a * 10**k`` is exact and ``np.rint`` rounds it as the correctly rounded
conversion does, ties included. Values outside that range (exponent notation, non-finite,
or rounded up to exponent 9) are rare in word vectors: their rows are formatted by Python.
``tests/test_textfloat.py`` compares against Python's formatting across the float32 range.

The same method runs in C (``sgjax/kernels/textfloat.cc``, built on first use like the
kernel) where JAX is imported already (a run; formatting alone does not pay JAX's import to
build it): one value at a time instead of ~100 numpy passes over each chunk, realtext-v1's
2.6M values in ~0.12 s against ~0.3 s (BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np

from sgjax import chelpers

__all__ = ["format_rows"]

DIGITS = 9  # significant digits: "%.9g" restores every float32 exactly
_LOW, _HIGH = -4, DIGITS - 1  # decimal exponents printed in fixed notation, and exact here
_POW10 = 10.0 ** np.arange(_LOW, _HIGH + 2)  # 10**X for X in [_LOW, _HIGH + 1]
_INTEGER, _FRACTION = 9, 12  # digit columns before and after the point: 1e8 .. 1e-12
_POW10_K = 10.0 ** np.arange(_FRACTION + 1)
_WIDTH = 1 + _INTEGER + 1 + _FRACTION + 1  # sign, integer digits, point, fraction, separator
_CHUNK_VALUES = 1 << 16  # values formatted at a time (arrays of ~1.5 MB)
_ZERO, _DOT, _MINUS, _SPACE = b"0.- "


def format_rows(matrix: np.ndarray) -> list[bytes]:
    """Row i of ``matrix`` (V x N, float32) as ``b" ".join(b"%.9g" % x for x in row)``,
    without a newline."""
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"format_rows takes a 2-d matrix, not shape {m.shape}")
    v, n = m.shape
    if n == 0:
        return [b""] * v
    lib = _library()
    rows: list[bytes] = []
    step = max(1, _CHUNK_VALUES // n)
    if lib is not None:
        out = np.empty(step * n * _MAX_BYTES, np.uint8)  # one buffer for every chunk
        ends, ok = np.empty(step, np.int64), np.empty(step, np.uint8)
    for start in range(0, v, step):
        block = m[start : start + step]
        rows.extend(_chunk(block) if lib is None else _c_chunk(lib, block, out, ends, ok))
    return rows


_MAX_BYTES = 16  # a fixed-notation value's bytes and its separator: "-0.000123456789 "


def _library():
    """textfloat.cc's library where JAX is imported (:func:`sgjax.chelpers.library`)."""
    return chelpers.library("textfloat")


def _c_chunk(lib, block: np.ndarray, out: np.ndarray, ends: np.ndarray, ok: np.ndarray):
    """:func:`_chunk` by ``sgjax_format_rows`` into the buffers ``out``, ``ends``, ``ok``."""
    r, n = block.shape
    block = np.ascontiguousarray(block)
    total = lib.sgjax_format_rows(
        block.ctypes.data, r, n, out.ctypes.data, ends.ctypes.data, ok.ctypes.data
    )
    return _split(out[:total].tobytes(), ends[:r].tolist(), ok[:r].tolist(), block, 0)


def _split(flat: bytes, ends: list, ok: list, block: np.ndarray, cut: int) -> list[bytes]:
    """Row i of ``block``: ``flat`` up to ``ends[i]`` less ``cut`` trailing bytes (from the
    row before's end) where ``ok[i]``, else formatted by Python."""
    rows, start = [], 0
    for i, (end, good) in enumerate(zip(ends, ok, strict=True)):
        rows.append(flat[start : end - cut] if good else _python(block[i]))
        start = end
    return rows


def _python(row: np.ndarray) -> bytes:
    return " ".join([f"%.{DIGITS}g"] * len(row)).encode() % tuple(row.tolist())


def _write_digits(
    v: np.ndarray, out: np.ndarray, keep: np.ndarray, seen: np.ndarray | None = None
) -> np.ndarray | None:
    """The decimal digits of ``v`` (uint32, < 10**width) into the rows of ``out`` (width x
    n, most significant first), and in ``keep`` whether each is shown: an integer part
    without leading zeros (but the units digit) if ``seen`` is None, else fraction digits
    without trailing zeros, ``seen`` telling where a nonzero digit follows to the right.
    Returns ``seen`` updated (or None)."""
    for col in range(out.shape[0] - 1, -1, -1):
        if seen is None and col < out.shape[0] - 1 and not v.any():  # only leading zeros
            keep[: col + 1] = False
            break
        rest = v // np.uint32(10)
        digit = v - rest * np.uint32(10)
        out[col] = digit + np.uint32(_ZERO)
        if seen is None:
            keep[col] = (v > 0) | (col == out.shape[0] - 1)
        else:
            seen |= digit > 0
            keep[col] = seen
        v = rest
    return seen


def _chunk(block: np.ndarray) -> list[bytes]:
    with np.errstate(invalid="ignore"):  # (a signalling nan)
        x = block.astype(np.float64).ravel()
    a = np.abs(x)
    # the decimal exponent: how many powers of 10 in [1e-4, 1e9] are <= a (nan: all). No
    # float32 lies between 10**X and its float64, and the float32 below a power of 10 is
    # >= 6e-8 of it below, so the 9 rounded digits never carry into a 10th
    e = _LOW - 1 + np.searchsorted(_POW10, a, side="right")
    fixed = (e >= _LOW) & (e <= _HIGH)
    ok = fixed | (a == 0)
    k = np.where(fixed, _HIGH - e, 0)  # the digits after the point (0..12), zeros not cut
    m = np.where(fixed, np.rint(a * _POW10_K[k]), 0.0)  # the 9 significant digits
    # integer part and fraction (both exact: m / 10**k is at least 1e-9 of itself away
    # from any integer it is not), the fraction as 12 digits after the point
    scale = _POW10_K[k]
    whole = np.floor(m / scale)
    frac = (m - whole * scale) * _POW10_K[_FRACTION - k]

    # one row per character position (contiguous writes), one column per value
    out = np.empty((_WIDTH, x.size), np.uint8)
    keep = np.empty((_WIDTH, x.size), bool)
    out[0] = _MINUS
    keep[0] = np.signbit(x)
    point = 1 + _INTEGER
    _write_digits(whole.astype(np.uint32), out[1:point], keep[1:point])
    half = _FRACTION // 2  # the 12 fraction digits as two uint32 halves
    high = np.floor(frac / 10.0**half)
    low = (frac - high * 10.0**half).astype(np.uint32)
    mid = point + 1 + half
    seen = _write_digits(low, out[mid:-1], keep[mid:-1], np.zeros(x.size, bool))
    _write_digits(high.astype(np.uint32), out[point + 1 : mid], keep[point + 1 : mid], seen)
    out[point] = _DOT
    keep[point] = frac > 0
    out[-1] = _SPACE  # after every value; a row's last one is cut off below
    keep[-1] = True
    flat = out.T[keep.T].tobytes()
    ends = np.cumsum(keep.sum(axis=0).reshape(block.shape).sum(axis=1))
    rows_ok = ok.reshape(block.shape).all(axis=1)
    return _split(flat, ends.tolist(), rows_ok.tolist(), block, 1)  # (each row's last space)
