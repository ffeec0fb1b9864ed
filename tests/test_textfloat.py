"""sgjax.textfloat: the vectorised "%.9g" lines equal Python's formatting, byte for byte, by
numpy and by the C library (sgjax/kernels/textfloat.cc)."""

import numpy as np
import pytest

from sgjax import textfloat
from sgjax.vectors_io import write_arrays


def python_rows(m: np.ndarray) -> list[bytes]:
    return [" ".join(f"{v:.9g}" for v in row.tolist()).encode() for row in m]


def _special() -> np.ndarray:
    p = np.array([2.0**k for k in range(-40, 41)] + [10.0**k for k in range(-12, 12)], np.float32)
    near = [np.nextafter(p, np.float32(0)), np.nextafter(p, np.float32(np.inf))]
    odd = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4028235e38, 999999999.5, 99999.99995]
    odd += [1e-4, 9.9999999e-5, 0.000999999999, 123456789, 0.1, 0.5, 1.5, 2.5]
    v = np.concatenate([p, *near, np.array(odd, np.float32)])
    return np.concatenate([v, -v]).astype(np.float32)


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 40_000, dtype=np.uint64).astype(np.uint32)
    magnitudes = 10.0 ** rng.uniform(-8, 11, 20_000) * rng.choice([-1, 1], 20_000)
    # ties: values whose 10th significant digit is an exact 5 (k * 2**-j)
    ties = (rng.integers(1, 2**24, 10_000) * 2.0 ** -rng.integers(10, 40, 10_000)).astype(
        np.float32
    )
    special = _special()
    return {
        "word vectors": (rng.standard_normal((300, 100)) * 0.3).astype(np.float32),
        "untrained rows": rng.uniform(-0.005, 0.005, (200, 100)).astype(np.float32),
        "any bits": bits.view(np.float32).reshape(400, 100),
        "magnitudes 1e-8..1e11": magnitudes.astype(np.float32).reshape(200, 100),
        "ties": ties.reshape(100, 100),
        "special, one row": special.reshape(1, -1),
        "special, one column": special.reshape(-1, 1),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_rows_equal_python_formatting(name, textfloat_method):
    m = CASES[name]
    assert textfloat.format_rows(m) == python_rows(m)


def test_c_library_is_used_where_jax_is_imported(monkeypatch, c_library):
    """A run (JAX imported) formats in C; without JAX, numpy (no build, no JAX import)."""
    import jax  # noqa: F401

    c_library("textfloat")
    calls = []
    real = textfloat._c_chunk
    monkeypatch.setattr(textfloat, "_c_chunk", lambda *a: calls.append(1) or real(*a))
    m = CASES["word vectors"]
    assert textfloat.format_rows(m) == python_rows(m) and calls
    monkeypatch.delitem(__import__("sys").modules, "jax")
    calls.clear()
    assert textfloat.format_rows(m) == python_rows(m) and not calls


def test_chunks_and_python_rows_in_between(monkeypatch, textfloat_method):
    """Many chunks, rows formatted by Python (inf, 1e-20, 1e10) among vectorised ones."""
    m = (np.random.default_rng(1).standard_normal((50, 7)) * 3).astype(np.float32)
    m[[3, 17, 18, 49], [0, 6, 2, 5]] = [np.inf, 1e-20, 1e10, np.nan]
    monkeypatch.setattr(textfloat, "_CHUNK_VALUES", 20)
    assert textfloat.format_rows(m) == python_rows(m)


def test_shapes(textfloat_method):
    assert textfloat.format_rows(np.zeros((3, 0), np.float32)) == [b""] * 3
    assert textfloat.format_rows(np.zeros((0, 4), np.float32)) == []
    with pytest.raises(ValueError, match="2-d"):
        textfloat.format_rows(np.zeros(3, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_text_file_equals_formatting_each_value(tmp_path, dtype, monkeypatch):
    """write_arrays takes the vectorised path where it can, with the bytes of the other."""
    m = CASES["word vectors"][:20].astype(dtype)
    if dtype == np.float64:
        m[5, 5] = 0.1  # not a float32: the whole matrix is formatted value by value
    words = [f"w{i}" for i in range(len(m))]
    calls = []
    real = textfloat.format_rows
    monkeypatch.setattr(textfloat, "format_rows", lambda x: calls.append(x) or real(x))
    write_arrays(words, m, tmp_path / "v.txt")
    assert len(calls) == (dtype != np.float64)
    lines = (tmp_path / "v.txt").read_bytes().split(b"\n")
    assert lines[0] == b"20 100" and lines[-1] == b""
    rows = python_rows(m.astype(np.float64))
    assert lines[1:-1] == [w.encode() + b" " + r for w, r in zip(words, rows, strict=True)]
