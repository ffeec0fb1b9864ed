"""The word2vec text and binary file formats, as words plus a float32 matrix.

The files of the C tool (word2vec.c) and gensim:

- text:   ``"V N\\n"`` then one ``"word x_1 ... x_N\\n"`` line per word;
- binary: ``"V N\\n"`` then per word ``word`` + ``" "`` + N little-endian float32 + ``"\\n"``
  (word2vec.c writes the newline, gensim 4 does not; both of them, and this reader, accept
  either).

What the reader accepts, exactly (tests/test_fuzz.py holds an independent parser of these
rules and checks the reader against it on mutated files):

- the header is two decimal integers, ``0 <= V < 2**63`` and ``1 <= N < 2**31``;
- a word is non-empty UTF-8 (``unicode_errors`` relaxes that) with no ASCII whitespace in
  it (``bytes.split()``'s six bytes, the separators of the corpus tokeniser and of these
  formats); a binary word may hold any byte but ``" "`` and ``"\\n"`` (as gensim reads it);
- a text line is the word, a space, then N numbers separated by ASCII whitespace (decimal,
  ``inf``, ``infinity`` or ``nan``, as ``float()`` reads them without ``_``); every line ends
  with ``"\\n"`` (``"\\r\\n"`` too), so a file cut inside its last number is refused;
- values must be finite float32 (``allow_nonfinite=True`` loads nan/inf anyway);
- after the V records only blank lines (text) or ``"\\n"`` bytes (binary) may follow.

Errors are :class:`VectorsFormatError` naming the file and the line (text) or byte offset
(binary) of the first problem, with any word or field shown cut short (:func:`clip`), so a
wrong file gives one short line, never a screenful. Memory is bounded by the file's size,
whatever the header declares. Paths ending in ``.gz`` are (de)compressed transparently;
byte offsets then refer to the decompressed data.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from sgjax import textfloat

__all__ = [
    "SEPARATORS",
    "VectorsFormatError",
    "clip",
    "detect_binary",
    "find_nonfinite",
    "read_arrays",
    "write_arrays",
]

PathLike = str | os.PathLike[str]
#: The bytes ``bytes.split()`` splits on: the corpus tokeniser's separators, which no word
#: holds, and the separators of the word2vec formats.
SEPARATORS = b" \t\n\r\x0b\x0c"
MAX_VOCAB, MAX_DIM = 2**63 - 1, 2**31 - 1
_SHOWN = 40  # characters of a word, field or line that an error message shows
# rows written at a time: a block's bytes (~1 MB of text at dim 100), not the whole file's,
# so that writing float32 vectors grows the process by little (on a fresh VM, new memory's
# first touch is what a run's last phases pay for; BENCHMARKS.md, "The seventh pass")
_WRITE_ROWS = 1024
_DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error)  # BadGzipFile, cut stream, bad data
_HEADER_FIELD = re.compile(rb"[0-9]{1,19}")
_NUMBER = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.I
)
# the bytes of numbers and of their separators: with nothing else in the values, numpy's
# loadtxt parses exactly what _NUMBER and float() do (checked in the tests), so it may be used
_NUMBER_BYTES = b"0123456789+-.eEinfatyINFATY \t\x0b\x0c"
_SEPARATOR_RE = re.compile(f"[{re.escape(SEPARATORS.decode())}]")
_WORD_SEPARATOR = re.compile(rb"[\t\r\x0b\x0c]")  # in a text word ("\n" and " " end it)
_NAMES = {b"\t": "a tab", b"\r": "a carriage return", b"\x0b": "a \\v", b"\x0c": "a \\f"}


class VectorsFormatError(ValueError):
    """A malformed word2vec file. ``line`` (1-based, text) or ``offset`` (bytes) says where."""

    def __init__(
        self, path: PathLike, message: str, *, line: int | None = None, offset: int | None = None
    ) -> None:
        self.path, self.line, self.offset = str(path), line, offset
        where = [f"line {line}"] if line is not None else []
        if offset is not None:
            where.append(f"byte offset {offset}")
        prefix = f"{path}: {', '.join(where)}" if where else str(path)
        super().__init__(f"{prefix}: {message}")


def clip(x: str | bytes, limit: int = _SHOWN) -> str:
    """``repr(x)`` cut to about ``limit`` characters (``...`` marks a cut): what an error
    message shows of a word, field or line, so that it stays one short line."""
    r = repr(x[: limit + 1])
    return r if len(r) <= limit else r[:limit] + "..."


def _text(raw: bytes) -> str:
    return clip(raw.decode("utf-8", "replace"))


def find_nonfinite(matrix: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first nan or inf of a 2-D array, or None; scans in blocks so that
    the temporary mask stays small."""
    rows = max(1, (1 << 22) // max(matrix.shape[1], 1))
    for lo in range(0, matrix.shape[0], rows):
        bad = ~np.isfinite(matrix[lo : lo + rows])
        if bad.any():
            i, j = np.argwhere(bad)[0]
            return lo + int(i), int(j)
    return None


# --- reading ----------------------------------------------------------------------------------
def _decompress_error(path: PathLike, e: BaseException) -> VectorsFormatError:
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return VectorsFormatError(path, f"not a valid gzip file ({reason[:80]})")


def _read_bytes(path: PathLike) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if not str(path).endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except _DECOMPRESS_ERRORS as e:
        raise _decompress_error(path, e) from None


def _parse_header(path: PathLike, data: bytes) -> tuple[int, int, int]:
    """(V, N, offset of the first record) from the ``"V N\\n"`` header."""
    end = data.find(b"\n")
    if end < 0:
        raise VectorsFormatError(
            path, "no header line 'VOCAB_SIZE DIM' (file has no newline)", line=1, offset=0
        )
    fields = data[:end].split()
    if len(fields) == 2 and all(_HEADER_FIELD.fullmatch(f) for f in fields):
        v, n = int(fields[0]), int(fields[1])
        if v <= MAX_VOCAB and 1 <= n <= MAX_DIM:
            return v, n, end + 1
    raise VectorsFormatError(
        path,
        f"bad header {_text(data[:end])}: expected 'VOCAB_SIZE DIM' "
        "(integers, 0 <= VOCAB_SIZE < 2**63, 1 <= DIM < 2**31)",
        line=1,
        offset=0,
    )


def _looks_like_text(data: bytes, start: int, dim: int) -> bool:
    """Whether the first record after the header is a text line of one word and dim numbers."""
    end = data.find(b"\n", start, start + (1 << 20))
    line = data[start:] if end < 0 else data[start:end]
    fields = line.split()
    if len(fields) != dim + 1:
        return False
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(_NUMBER.fullmatch(x) for x in fields[1:])


def detect_binary(path: PathLike) -> bool:
    """True if ``path`` holds the binary word2vec format, False if text (checks the header and
    whether the first record parses as a text line of a word and N numbers)."""
    with open(path, "rb") as raw:
        if not str(path).endswith(".gz"):
            data = raw.read(1 << 21)  # the header and the first record are enough
        else:
            try:
                data = gzip.GzipFile(fileobj=raw).read(1 << 21)
            except _DECOMPRESS_ERRORS as e:
                raise _decompress_error(path, e) from None
    v, n, start = _parse_header(path, data)
    return v > 0 and not _looks_like_text(data, start, n)


def read_arrays(
    path: PathLike,
    binary: bool | None = None,
    *,
    limit: int | None = None,
    unicode_errors: str = "strict",
    duplicates: str = "error",
    allow_nonfinite: bool = False,
) -> tuple[list[str], np.ndarray]:
    """The words and float32 (V, N) matrix of a word2vec file; see
    :func:`sgjax.vectors.read_word2vec` for the arguments."""
    if duplicates not in ("error", "first"):
        raise ValueError(f"duplicates must be 'error' or 'first', not {duplicates!r}")
    data = _read_bytes(path)
    v, n, start = _parse_header(path, data)
    if binary is None:
        binary = v > 0 and not _looks_like_text(data, start, n)
    count = v if limit is None else min(v, max(limit, 0))
    reader = _read_binary if binary else _read_text
    words, matrix, where = reader(path, data, start, v, n, count, unicode_errors, limit is None)
    bad = None if allow_nonfinite else find_nonfinite(matrix)
    if bad is not None:
        i, j = bad
        raise VectorsFormatError(
            path,
            f"value {j + 1} of word {clip(words[i])} is {matrix[i, j]}, not a finite float32 "
            "(allow_nonfinite=True, or --allow-nonfinite, loads it anyway)",
            **where(i),
        )
    seen: dict[str, int] = {}
    keep: list[int] = []
    for i, w in enumerate(words):
        first = seen.setdefault(w, i)
        if first == i:
            keep.append(i)
        elif duplicates == "error":
            place = " ".join(
                f"{k.replace('offset', 'byte offset')} {x}" for k, x in where(first).items()
            )
            raise VectorsFormatError(
                path, f"duplicate word {clip(w)} (first seen at {place})", **where(i)
            )
    if len(keep) < len(words):
        words = [words[i] for i in keep]
        matrix = matrix[keep]
    return words, matrix


def _decode(path, raw: bytes, errors: str, where: dict[str, int]) -> str:
    try:
        word = raw.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        if "offset" in where:
            where = {"offset": where["offset"] + e.start}
        raise VectorsFormatError(
            path, f"word {clip(raw)} is not valid UTF-8 ({e.reason})", **where
        ) from None
    if not word:
        raise VectorsFormatError(path, "empty word", **where)
    return word


def _read_text(path, data, start, v, n, count, errors, check_rest):
    pieces = data[start:].split(b"\n", count)  # at most count + 1 pieces: bounded by the file
    lines = pieces[:count]
    rest = pieces[count] if len(pieces) > count else None  # None: no "\n" after record count
    if rest is None and lines and not lines[-1].strip():
        lines.pop()  # the newline after the last line that is there, not an empty record
    if len(lines) < count:
        raise VectorsFormatError(
            path,
            f"unexpected end of file: the header declares {v} vectors, found {len(lines)}",
            line=len(lines) + 2,
        )
    if rest is None and count:
        raise VectorsFormatError(
            path,
            f"file ends inside line {count + 1} (no newline after its last value): truncated?",
            line=count + 1,
        )
    if check_rest and rest.strip():
        raise VectorsFormatError(
            path, f"more lines than the {v} vectors the header declares", line=count + 2
        )
    fields = [line.partition(b" ") for line in lines]
    words = _text_words(path, [f[0] for f in fields], errors)
    values = [f[2] for f in fields]
    if any(v.endswith(b"\r") for v in values):  # "\r\n" line ends
        values = [v[:-1] if v.endswith(b"\r") else v for v in values]
    if not count:
        return words, np.zeros((0, n), np.float32), _line_of
    matrix = None
    if not b" ".join(values).translate(None, _NUMBER_BYTES):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # e.g. "input contained no data: [...]"
                matrix = np.loadtxt(values, dtype=np.float32, comments=None, ndmin=2)
        except ValueError:
            matrix = None
    if matrix is None or matrix.shape != (count, n):
        matrix = _parse_text_values(path, words, values, n)
    return words, matrix, _line_of


def _line_of(i: int) -> dict[str, int]:
    return {"line": i + 2}


def _text_words(path, raw: list[bytes], errors: str) -> list[str]:
    """The words of text lines, decoded at once; on a problem, line by line to name it."""
    blob = b"\n".join(raw)
    if all(raw) and not _WORD_SEPARATOR.search(blob):
        try:
            words = blob.decode("utf-8", errors).split("\n") if raw else []
        except UnicodeDecodeError:
            words = []
        if len(words) == len(raw) and all(words):
            return words
    words = []
    for i, word in enumerate(raw):
        sep = _WORD_SEPARATOR.search(word)
        if sep:
            raise VectorsFormatError(
                path,
                f"word {_text(word)} contains {_NAMES[sep.group()]}: the fields of a line must "
                "be separated by spaces",
                line=i + 2,
            )
        words.append(_decode(path, word, errors, {"line": i + 2}))
    return words


def _parse_text_values(path, words, values, n) -> np.ndarray:
    """Slow path: parse each line with float(), naming the first that is not n numbers."""
    rows = []
    for i, (word, vals) in enumerate(zip(words, values, strict=True)):
        fields = vals.split()
        if len(fields) != n:
            raise VectorsFormatError(
                path,
                f"expected {n} values after the word {clip(word)}, found {len(fields)}",
                line=i + 2,
            )
        for j, x in enumerate(fields):
            if not _NUMBER.fullmatch(x):
                raise VectorsFormatError(
                    path,
                    f"value {j + 1} of word {clip(word)} is not a number: {_text(x)}",
                    line=i + 2,
                )
        with np.errstate(over="ignore"):  # beyond float32: inf, refused unless allowed
            rows.append(np.array([float(x) for x in fields]).astype(np.float32))
    return np.stack(rows)


def _read_binary(path, data, start, v, n, count, errors, check_rest):
    nbytes = 4 * n
    size = len(data)
    # every record takes at least nbytes + 2 bytes ("w "): a header that declares more records
    # than fit fails in the loop below, at the first record that is cut short
    fits = min(count, (size - start) // (nbytes + 2))
    words: list[str] = []
    starts = np.empty(fits, np.int64)  # where each record's word begins
    matrix = np.empty((fits, n), np.float32)
    buf = np.frombuffer(data, np.uint8)
    pos = start
    for i in range(count):
        while pos < size and data[pos] == 10:  # word2vec.c's "\n" after each vector
            pos += 1
        space = data.find(b" ", pos)
        if space < 0:
            raise VectorsFormatError(
                path,
                f"truncated binary file: record {i + 1} of {v} has no word "
                f"(expected 'word ' and {nbytes} bytes)",
                offset=pos,
            )
        raw = data[pos:space]
        if b"\n" in raw:
            raise VectorsFormatError(
                path,
                f"record {i + 1} of {v}: word contains a newline; is this a text-format "
                "file, or is the header's dimension wrong?",
                offset=pos,
            )
        words.append(_decode(path, raw, errors, {"offset": pos}))
        if space + 1 + nbytes > size:
            raise VectorsFormatError(
                path,
                f"truncated binary file: word {clip(words[-1])} (record {i + 1} of {v}) "
                f"needs {nbytes} bytes of vector, {size - space - 1} left",
                offset=space + 1,
            )
        starts[i] = pos
        pos = space + 1
        matrix[i] = buf[pos : pos + nbytes].view("<f4")
        pos += nbytes
    if check_rest:
        while pos < size and data[pos] == 10:
            pos += 1
        if pos < size:
            raise VectorsFormatError(
                path, f"unexpected data after the {v} vectors the header declares", offset=pos
            )
    return words, matrix, lambda i: {"offset": int(starts[i])}


# --- writing ----------------------------------------------------------------------------------
def _encode_words(words: Sequence[str]) -> list[bytes]:
    """The words as UTF-8; ValueError for one the formats cannot hold: empty, or with a
    separator (ASCII whitespace) in it. Any other character is stored as it is."""
    if all(words) and not _SEPARATOR_RE.search("".join(words)):
        with contextlib.suppress(UnicodeEncodeError):
            return [w.encode("utf-8") for w in words]
    encoded = []
    for i, w in enumerate(words):
        if not w or _SEPARATOR_RE.search(w):
            raise ValueError(
                f"word {i} ({clip(w)}) is empty or contains ASCII whitespace (space, tab, "
                "newline, \\r, \\v, \\f); the word2vec formats cannot store it"
            )
        try:
            encoded.append(w.encode("utf-8"))
        except UnicodeEncodeError as e:
            raise ValueError(
                f"word {i} ({clip(w)}) cannot be encoded as UTF-8 ({e.reason})"
            ) from None
    return encoded


def write_arrays(
    words: Sequence[str],
    matrix: np.ndarray,
    path: PathLike,
    binary: bool = False,
    *,
    precision: int = 9,
    newline: bool = True,
) -> None:
    """Write words and their (V, N) vectors in the word2vec text or binary format, atomically:
    a temporary ``path + ".tmp"`` is renamed into place, and removed if writing fails (the
    OSError raised then names ``path``). See :func:`sgjax.vectors.write_word2vec`."""
    encoded = _encode_words(words)
    v, n = matrix.shape
    if len(encoded) != v:
        raise ValueError(f"{len(encoded)} words but {v} vectors")
    if binary:
        end = b"\n" if newline else b""

        def rows(lo: int, hi: int) -> Iterable[bytes]:
            block = np.ascontiguousarray(matrix[lo:hi], dtype="<f4").tobytes()
            step = 4 * n
            return (
                w + b" " + block[i * step : (i + 1) * step] + end
                for i, w in enumerate(encoded[lo:hi])
            )

    elif precision == textfloat.DIGITS and _float32_exact(matrix):  # vectorised, same bytes

        def rows(lo: int, hi: int) -> Iterable[bytes]:
            text = textfloat.format_rows(matrix[lo:hi])
            return (w + b" " + row + b"\n" for w, row in zip(encoded[lo:hi], text, strict=True))

    else:
        fmt = " ".join([f"%.{int(precision)}g"] * n)

        def rows(lo: int, hi: int) -> Iterable[bytes]:
            values = np.asarray(matrix[lo:hi]).tolist()
            return (
                w + b" " + (fmt % tuple(row)).encode("ascii") + b"\n"
                for w, row in zip(encoded[lo:hi], values, strict=True)
            )

    def pieces() -> Iterator[bytes]:  # a block of rows at a time: memory for one block
        yield f"{v} {n}\n".encode()
        for lo in range(0, v, _WRITE_ROWS):
            yield b"".join(rows(lo, min(v, lo + _WRITE_ROWS)))

    _write_atomically(Path(path), pieces(), compress=str(path).endswith(".gz"))


def _float32_exact(matrix: np.ndarray) -> bool:
    """Whether every value of ``matrix`` is a float32 (what :mod:`sgjax.textfloat` formats)."""
    m = np.asarray(matrix)
    if m.dtype == np.float32:
        return True
    if m.dtype.kind != "f":
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.array_equal(m.astype(np.float32), m, equal_nan=True))


def _write_atomically(target: Path, pieces: Iterable[bytes], compress: bool = False) -> None:
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "wb") as raw:
            f = gzip.GzipFile(filename="", mode="wb", fileobj=raw) if compress else raw
            with f:
                for piece in pieces:
                    f.write(piece)
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and e.errno is not None:
            raise OSError(e.errno, e.strerror or str(e), str(target)) from e
        raise
