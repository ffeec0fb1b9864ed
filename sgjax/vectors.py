"""Word vectors: a small KeyedVectors-like lookup and the word2vec text and binary formats.

The learned input vectors v_w (rows of the paper's W, V x N) are what a run hands to the
world. :class:`WordVectors` holds them with their words; :func:`read_word2vec` and
:func:`write_word2vec` move them to and from the files of the C tool (word2vec.c) and gensim:

- text:   ``"V N\\n"`` then one ``"word x_1 ... x_N\\n"`` line per word;
- binary: ``"V N\\n"`` then per word ``word`` + ``" "`` + N little-endian float32 + ``"\\n"``
  (word2vec.c writes the newline, gensim 4 does not; both of them, and this reader, accept
  either).

Readers parse in bulk with numpy (no per-float Python) and raise :class:`VectorsFormatError`
naming the file and the line (text) or byte offset (binary) of the first problem. Paths ending
in ``.gz`` are (de)compressed transparently; byte offsets then refer to the decompressed data.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "VectorsFormatError",
    "WordVectors",
    "detect_binary",
    "read_word2vec",
    "write_word2vec",
]

PathLike = str | os.PathLike[str]
_WHITESPACE = re.compile(r"\s")


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


@dataclass(frozen=True, eq=False, repr=False)
class WordVectors:
    """Words and their vectors: ``matrix[index[w]]`` is the vector of word ``w``.

    ``words`` is in file order (word2vec writes the most frequent first, which is what
    ``restrict_vocab`` arguments rely on). ``matrix`` is float32 (V, N) and read-only.
    """

    words: tuple[str, ...]
    index: Mapping[str, int]
    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = self.matrix
        if not isinstance(m, np.ndarray) or m.ndim != 2 or m.dtype != np.float32:
            raise ValueError("matrix must be a float32 numpy array of shape (V, N)")
        if len(self.words) != m.shape[0] or len(self.index) != len(self.words):
            raise ValueError(
                f"{len(self.words)} words, {len(self.index)} index entries and "
                f"{m.shape[0]} matrix rows must agree"
            )
        if m.flags.writeable:
            m.setflags(write=False)

    @classmethod
    def from_params(cls, words: Sequence[str], W: Any) -> WordVectors:
        """Build from a word list and the input vectors ``W`` (V, N): a numpy or jax array, or a
        parameter pytree ``{"W": ...}`` (sgjax.params). The matrix is copied to float32."""
        if isinstance(W, Mapping):
            W = W["W"]
        words = tuple(words)
        matrix = np.array(W, dtype=np.float32, copy=True)
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise ValueError(f"W has shape {matrix.shape}; expected ({len(words)}, N)")
        index: dict[str, int] = {}
        for i, w in enumerate(words):
            if not isinstance(w, str) or not w:
                raise ValueError(f"word {i} is {w!r}; words must be non-empty strings")
            if index.setdefault(w, i) != i:
                raise ValueError(f"duplicate word {w!r} at positions {index[w]} and {i}")
        return cls(words, index, matrix)

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self.words[:5])) + (", ..." if len(self) > 5 else "")
        return f"WordVectors({len(self)} words x {self.dim}: {head})"

    # --- lookup ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.matrix.shape[0]

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def get_index(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise KeyError(f"word {word!r} not in vocabulary ({len(self)} words)") from None

    def __getitem__(self, word: str | Iterable[str]) -> np.ndarray:
        """The vector of one word (N,), or of several words (k, N)."""
        if isinstance(word, str):
            return self.matrix[self.get_index(word)]
        return self.matrix[[self.get_index(w) for w in word]]

    @cached_property
    def norms(self) -> np.ndarray:
        """Euclidean length of every row, float32 (V,)."""
        n = np.linalg.norm(self.matrix, axis=1)
        n.setflags(write=False)
        return n

    @cached_property
    def unit(self) -> np.ndarray:
        """Rows scaled to unit length (computed on first use). An all-zero row stays zero, so
        its cosine with anything is 0 (gensim would give NaN)."""
        n = self.norms
        u = self.matrix / np.where(n > 0, n, np.float32(1))[:, None]
        u.setflags(write=False)
        return u

    # --- similarity --------------------------------------------------------------------------
    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self.get_index(w1)] @ self.unit[self.get_index(w2)])

    def most_similar(
        self,
        positive: Any = None,
        negative: Any = None,
        topn: int | None = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]] | np.ndarray:
        """Words nearest to the normalised weighted mean of the unit vectors of ``positive``
        (weight +1) and ``negative`` (weight -1), as gensim's ``most_similar``; with
        positive=[b, c], negative=[a] this is 3CosAdd for a : b :: c : ?.

        Items are words, vectors, or ``(item, weight)`` pairs; a single word or vector is
        accepted in place of a list. Input words are left out of the result. Only the first
        ``restrict_vocab`` rows are searched. ``topn=None`` returns all the cosines (R,).
        """
        if isinstance(topn, int) and topn < 1:
            return []
        items = [(x, 1.0) for x in _as_list(positive)] + [(x, -1.0) for x in _as_list(negative)]
        if not items:
            raise ValueError("most_similar needs at least one positive or negative item")
        mean = np.zeros(self.dim, np.float32)
        total, exclude = 0.0, set()
        for item, weight in items:
            if isinstance(item, tuple):
                item, weight = item
            if isinstance(item, str):
                exclude.add(self.get_index(item))
                vec = self.unit[self.index[item]]
            else:
                vec = np.asarray(item, dtype=np.float32)
                if vec.shape != (self.dim,):
                    raise ValueError(f"vector of shape {vec.shape}; expected ({self.dim},)")
            mean += np.float32(weight) * vec
            total += abs(weight)
        if total > 0:
            mean /= np.float32(total)
        length = np.linalg.norm(mean)
        if length > 0:
            mean /= length
        rows = len(self) if not restrict_vocab else min(restrict_vocab, len(self))
        dists = self.unit[:rows] @ mean
        if topn is None:
            return dists
        masked = dists.copy()
        masked[[i for i in exclude if i < rows]] = -np.inf
        k = min(topn, rows - sum(i < rows for i in exclude))
        best = _top_k(masked, k)
        return [(self.words[i], float(dists[i])) for i in best]

    def similar_by_vector(
        self, vector: np.ndarray, topn: int = 10, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]]:
        """Words nearest (cosine) to a vector; no word is excluded."""
        return self.most_similar([np.asarray(vector)], topn=topn, restrict_vocab=restrict_vocab)


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, (str, np.ndarray, tuple)):
        return [x]
    return list(x)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of a 1-D array, largest first."""
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < scores.shape[0]:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(scores.shape[0])
    return part[np.argsort(-scores[part], kind="stable")]


# --- files ------------------------------------------------------------------------------------
def _read_bytes(path: PathLike) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if not str(path).endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as e:  # BadGzipFile, truncated stream
        raise VectorsFormatError(path, f"not a complete gzip file ({e})") from None


def _parse_header(path: PathLike, data: bytes) -> tuple[int, int, int]:
    """(V, N, offset of the first record) from the ``"V N\\n"`` header."""
    end = data.find(b"\n")
    if end < 0:
        raise VectorsFormatError(
            path, "no header line 'VOCAB_SIZE DIM' (file has no newline)", line=1, offset=0
        )
    fields = data[:end].split()
    try:
        if len(fields) != 2:
            raise ValueError
        v, n = int(fields[0]), int(fields[1])
        if v < 0 or n < 1:
            raise ValueError
    except ValueError:
        shown = data[: min(end, 80)].decode("utf-8", "replace")
        raise VectorsFormatError(
            path,
            f"bad header {shown!r}: expected 'VOCAB_SIZE DIM' "
            "(integers, VOCAB_SIZE >= 0, DIM >= 1)",
            line=1,
            offset=0,
        ) from None
    return v, n, end + 1


def _looks_like_text(data: bytes, start: int, dim: int) -> bool:
    """Whether the first record after the header is a text line of one word and dim numbers."""
    end = data.find(b"\n", start, start + (1 << 20))
    line = data[start:] if end < 0 else data[start:end]
    fields = line.split()
    if len(fields) != dim + 1:
        return False
    try:
        line.decode("utf-8")
        [float(x) for x in fields[1:]]
    except ValueError:
        return False
    return True


def detect_binary(path: PathLike) -> bool:
    """True if ``path`` holds the binary word2vec format, False if text (checks the header and
    whether the first record parses as a text line of a word and N numbers)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read(1 << 21)  # the header and the first record are enough
    except (EOFError, gzip.BadGzipFile) as e:
        raise VectorsFormatError(path, f"not a complete gzip file ({e})") from None
    v, n, start = _parse_header(path, data)
    return v > 0 and not _looks_like_text(data, start, n)


def read_word2vec(
    path: PathLike,
    binary: bool | None = None,
    *,
    limit: int | None = None,
    unicode_errors: str = "strict",
    duplicates: str = "error",
) -> WordVectors:
    """Read a word2vec text or binary file (``binary=None``: detect which).

    ``limit`` reads only the first ``limit`` vectors. ``unicode_errors`` is passed to
    ``bytes.decode`` for the words ("replace" or "ignore" help with word2vec.c files whose
    long words were cut inside a multi-byte character). ``duplicates="first"`` keeps the
    first vector of a repeated word, as gensim does; the default raises.
    Raises :class:`VectorsFormatError` for a malformed file.
    """
    if duplicates not in ("error", "first"):
        raise ValueError(f"duplicates must be 'error' or 'first', not {duplicates!r}")
    data = _read_bytes(path)
    v, n, start = _parse_header(path, data)
    if binary is None:
        binary = v > 0 and not _looks_like_text(data, start, n)
    count = v if limit is None else min(v, max(limit, 0))
    reader = _read_binary if binary else _read_text
    words, matrix, where = reader(path, data, start, v, n, count, unicode_errors, limit is None)
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
                path, f"duplicate word {w!r} (first seen at {place})", **where(i)
            )
    if len(keep) < len(words):
        words = [words[i] for i in keep]
        matrix = matrix[keep]
    index = {w: k for k, w in enumerate(words)}
    return WordVectors(tuple(words), index, matrix)


def _decode(path, raw: bytes, errors: str, where: dict[str, int]) -> str:
    try:
        word = raw.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        if "offset" in where:
            where = {"offset": where["offset"] + e.start}
        raise VectorsFormatError(
            path, f"word {raw!r} is not valid UTF-8 ({e.reason})", **where
        ) from None
    if not word:
        raise VectorsFormatError(path, "empty word", **where)
    return word


def _read_text(path, data, start, v, n, count, errors, check_rest):
    pieces = data[start:].split(b"\n", count)
    lines, rest = pieces[:count], (pieces[count] if len(pieces) > count else b"")
    if len(pieces) <= count and lines and not lines[-1].strip():
        lines.pop()  # the newline after the last line that is there, not an empty record
    if len(lines) < count:
        raise VectorsFormatError(
            path,
            f"unexpected end of file: the header declares {v} vectors, found {len(lines)}",
            line=len(lines) + 2,
        )
    if check_rest and rest.strip():
        raise VectorsFormatError(
            path, f"more lines than the {v} vectors the header declares", line=count + 2
        )
    words: list[str] = []
    values: list[bytes] = []
    for i, line in enumerate(lines):
        word, _, vals = line.partition(b" ")
        words.append(_decode(path, word, errors, {"line": i + 2}))
        values.append(vals)
    if not count:
        return words, np.zeros((0, n), np.float32), lambda i: {"line": i + 2}
    try:
        matrix = np.loadtxt(values, dtype=np.float32, comments=None, ndmin=2)
    except ValueError:
        matrix = None
    if matrix is None or matrix.shape != (count, n):
        _locate_bad_text_row(path, words, values, n)  # raises
    return words, matrix, lambda i: {"line": i + 2}


def _locate_bad_text_row(path, words, values, n):
    """Slow path: find and report the first line whose values are not n numbers."""
    for i, (word, vals) in enumerate(zip(words, values, strict=True)):
        fields = vals.split()
        if len(fields) != n:
            raise VectorsFormatError(
                path,
                f"expected {n} values after the word {word!r}, found {len(fields)}",
                line=i + 2,
            )
        for j, x in enumerate(fields):
            try:
                float(x)
            except ValueError:
                shown = x[:40].decode("utf-8", "replace")
                raise VectorsFormatError(
                    path, f"value {j + 1} of word {word!r} is not a number: {shown!r}", line=i + 2
                ) from None
    raise VectorsFormatError(path, "could not parse the vector values")


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
                f"truncated binary file: word {words[-1]!r} (record {i + 1} of {v}) "
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


def write_word2vec(
    vectors: WordVectors,
    path: PathLike,
    binary: bool = False,
    *,
    precision: int = 9,
    newline: bool = True,
) -> None:
    """Write ``vectors`` in the word2vec text or binary format (atomically: a temporary file
    is renamed into place).

    Text values are printed with ``"%.{precision}g"``; the default 9 significant digits
    restore every float32 exactly. Binary records end with ``"\\n"`` as word2vec.c writes them
    (``newline=False`` gives gensim 4's layout); gensim and the C tool read both.
    """
    for i, w in enumerate(vectors.words):
        if not w or _WHITESPACE.search(w):
            raise ValueError(
                f"word {i} ({w!r}) is empty or contains whitespace; the word2vec "
                "formats cannot store it"
            )
    v, n = vectors.matrix.shape
    parts = [f"{v} {n}\n".encode()]
    if binary:
        rows = np.ascontiguousarray(vectors.matrix, dtype="<f4").tobytes()
        end = b"\n" if newline else b""
        step = 4 * n
        for i, w in enumerate(vectors.words):
            parts.append(w.encode() + b" " + rows[i * step : (i + 1) * step] + end)
    else:
        fmt = " ".join([f"%.{int(precision)}g"] * n)
        for w, row in zip(vectors.words, vectors.matrix.tolist(), strict=True):
            parts.append(f"{w} {fmt % tuple(row)}\n".encode())
    data = b"".join(parts)
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
