"""Word vectors: a small KeyedVectors-like lookup and the word2vec text and binary formats.

The learned input vectors v_w (rows of the paper's W, V x N) are what a run hands to the
world. :class:`WordVectors` holds them with their words; :func:`read_word2vec` and
:func:`write_word2vec` move them to and from the files of the C tool (word2vec.c) and gensim.
The formats themselves, and exactly what the reader accepts, are in :mod:`sgjax.vectors_io`
(a word is any non-empty string without ASCII whitespace; values are finite float32).

Readers parse in bulk with numpy (no per-float Python on well-formed files) and raise
:class:`VectorsFormatError` naming the file and the line (text) or byte offset (binary) of the
first problem. Paths ending in ``.gz`` are (de)compressed transparently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from sgjax.vectors_io import VectorsFormatError, detect_binary, read_arrays, write_arrays

__all__ = [
    "VectorsFormatError",
    "WordVectors",
    "detect_binary",
    "read_word2vec",
    "write_word2vec",
]

PathLike = str | os.PathLike[str]


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
        masked = np.where(np.isnan(dists), np.float32(-np.inf), dists)  # nan rows rank last
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
def read_word2vec(
    path: PathLike,
    binary: bool | None = None,
    *,
    limit: int | None = None,
    unicode_errors: str = "strict",
    duplicates: str = "error",
    allow_nonfinite: bool = False,
) -> WordVectors:
    """Read a word2vec text or binary file (``binary=None``: detect which).

    ``limit`` reads only the first ``limit`` vectors. ``unicode_errors`` is passed to
    ``bytes.decode`` for the words ("replace" or "ignore" help with word2vec.c files whose
    long words were cut inside a multi-byte character). ``duplicates="first"`` keeps the
    first vector of a repeated word, as gensim does; the default raises. A nan or inf value
    raises too (it would silently spoil every cosine of its word) unless ``allow_nonfinite``.
    Raises :class:`VectorsFormatError` for a malformed file.
    """
    words, matrix = read_arrays(
        path,
        binary,
        limit=limit,
        unicode_errors=unicode_errors,
        duplicates=duplicates,
        allow_nonfinite=allow_nonfinite,
    )
    return WordVectors(tuple(words), {w: k for k, w in enumerate(words)}, matrix)


def write_word2vec(
    vectors: WordVectors,
    path: PathLike,
    binary: bool = False,
    *,
    precision: int = 9,
    newline: bool = True,
) -> None:
    """Write ``vectors`` in the word2vec text or binary format (atomically: a temporary file
    is renamed into place, and removed if writing fails; the OSError then names ``path``).

    Any word the corpus reader makes is stored (words cannot be empty or hold ASCII
    whitespace; ValueError otherwise). Text values are printed with ``"%.{precision}g"``; the
    default 9 significant digits restore every float32 exactly. Binary records end with
    ``"\\n"`` as word2vec.c writes them (``newline=False`` gives gensim 4's layout); gensim and
    the C tool read both.
    """
    write_arrays(vectors.words, vectors.matrix, path, binary, precision=precision, newline=newline)
