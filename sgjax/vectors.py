"""Word vectors: a gensim-like KeyedVectors lookup and the word2vec text and binary formats.

The learned input vectors v_w (rows of the paper's W, V x N) are what a run hands to the
world. :class:`WordVectors` holds them with their words and answers gensim 4.4.0
``KeyedVectors``' common calls with gensim's semantics (lookup and ``most_similar`` here, the
rest in :mod:`sgjax.keyed`); :func:`read_word2vec` and :func:`write_word2vec` move them to and
from the files of the C tool (word2vec.c) and gensim. The formats themselves, and exactly what
the reader accepts, are in :mod:`sgjax.vectors_io` (a word is any non-empty string without
ASCII whitespace; values are finite float32).

Readers parse in bulk with numpy (no per-float Python on well-formed files) and raise
:class:`VectorsFormatError` naming the file and the line (text) or byte offset (binary) of the
first problem. Paths ending in ``.gz`` are (de)compressed transparently.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from numbers import Integral
from typing import Any

import numpy as np

from sgjax.keyed import (
    KEY_TYPES,
    KeyedVectorsAPI,
    best_indices,
    clip_range,
    ensure_list,
    split_item,
    unitvec,
)
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
class WordVectors(KeyedVectorsAPI):
    """Words and their vectors: ``matrix[index[w]]`` is the vector of word ``w``.

    ``words`` is in file order (word2vec writes the most frequent first, which is what
    ``restrict_vocab`` arguments rely on). ``matrix`` is float32 (V, N) and read-only.

    gensim 4.4.0 ``KeyedVectors``' common surface works with gensim's semantics
    (tests/test_gensim_parity.py): ``index_to_key``, ``key_to_index``, ``vectors``,
    ``vector_size``, ``norms``, ``len``, ``in``, ``[]``, ``has_index_for``, ``get_index``,
    ``get_vector``, ``get_mean_vector``, ``similarity``, ``n_similarity``, ``distance``,
    ``distances``, ``cosine_similarities``, ``most_similar``, ``most_similar_cosmul``,
    ``similar_by_word``/``_key``/``_vector``, ``doesnt_match``, ``rank_by_centrality``,
    ``rank``, ``closer_than``, ``most_similar_to_given``, ``relative_cosine_similarity``,
    ``get_normed_vectors``, ``fill_norms``, ``save_word2vec_format``,
    ``load_word2vec_format``, ``evaluate_word_analogies``, ``evaluate_word_pairs``,
    ``to_gensim`` and ``from_gensim``. As in gensim, an int key is a row position.
    Deliberate differences:

    - Immutable: ``vectors`` is read-only, ``index_to_key`` a tuple, ``key_to_index`` a
      read-only mapping. There is no ``add_vector(s)``, ``__setitem__`` or vector attributes
      (counts); ``unit_normalize_all`` and ``init_sims(replace=True)`` raise TypeError and
      ``unit_normalized()`` returns a new object with unit rows.
    - A zero vector has cosine 0 (distance 1) with everything, where gensim gives NaN.
    - ``most_similar_cosmul`` honours ``restrict_vocab`` (gensim 4.4.0 ignores it), and
      ``evaluate_word_analogies(similarity_function="most_similar_cosmul")`` uses 3CosMul.
    - Scores are Python floats; ``evaluate_word_pairs`` gives ``(statistic, pvalue)`` tuples
      (p-values from scipy). Unknown words in ``doesnt_match`` warn with ``warnings``
      (gensim logs).
    - Files: UTF-8, float32, with a header, finite values unless ``allow_nonfinite``; no
      ``fvocab``. ``save_word2vec_format`` writes atomically, text as ``%.9g``.
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

    def get_index(self, key: Any, default: int | None = None) -> int:
        """The row of ``key``: a word, or an int row position (as gensim). A missing key gives
        ``default``, or KeyError when that is None."""
        i = self.index.get(key, -1)
        if i >= 0:
            return i
        if isinstance(key, (int, np.integer)) and 0 <= key < len(self):
            return int(key)
        if default is not None:
            return default
        raise KeyError(f"word {key!r} not in vocabulary ({len(self)} words)")

    def has_index_for(self, key: Any) -> bool:
        return self.get_index(key, -1) >= 0

    def __contains__(self, key: object) -> bool:
        return self.has_index_for(key)

    def get_vector(self, key: Any, norm: bool = False) -> np.ndarray:
        """The vector (N,) of one key, scaled to unit length with ``norm`` (read-only)."""
        return (self.unit if norm else self.matrix)[self.get_index(key)]

    def __getitem__(self, key_or_keys: Any) -> np.ndarray:
        """The vector of one key (N,), or of several keys (k, N)."""
        if isinstance(key_or_keys, KEY_TYPES):
            return self.get_vector(key_or_keys)
        return self.matrix[[self.get_index(k) for k in key_or_keys]]

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
    def similarity(self, w1: Any, w2: Any) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self.get_index(w1)] @ self.unit[self.get_index(w2)])

    def get_mean_vector(
        self,
        keys: Iterable[Any],
        weights: Any = None,
        pre_normalize: bool = True,
        post_normalize: bool = False,
        ignore_missing: bool = True,
    ) -> np.ndarray:
        """The weighted mean (N,) of keys (their vectors, unit ones with ``pre_normalize``) and
        raw vectors, divided by the sum of absolute weights; scaled to unit length with
        ``post_normalize``. Missing keys are skipped, or raise KeyError unless
        ``ignore_missing``."""
        keys = keys if isinstance(keys, np.ndarray) else list(keys)
        if len(keys) == 0:
            raise ValueError("cannot compute mean with no input")
        w = np.ones(len(keys), np.float32) if weights is None else np.asarray(weights, np.float32)
        if w.shape != (len(keys),):
            raise ValueError("keys and weights array must have same number of elements")
        mean = np.zeros(self.dim, np.float32)
        total = np.float32(0)
        for key, weight in zip(keys, w, strict=True):
            if isinstance(key, np.ndarray):
                if key.shape != (self.dim,):
                    raise ValueError(f"vector of shape {key.shape}; expected ({self.dim},)")
                vec = key
            elif key in self:
                vec = self.get_vector(key, norm=pre_normalize)
            elif not ignore_missing:
                raise KeyError(f"word {key!r} not in vocabulary ({len(self)} words)")
            else:
                continue
            mean += weight * vec
            total += abs(weight)
        if total > 0:
            mean /= total
        return unitvec(mean) if post_normalize else mean

    def most_similar(
        self,
        positive: Any = None,
        negative: Any = None,
        topn: int | None = 10,
        clip_start: int = 0,
        clip_end: int | None = None,
        restrict_vocab: int | None = None,
        indexer: Any = None,
    ) -> list[tuple[str, float]] | np.ndarray:
        """Words nearest to the normalised weighted mean of the unit vectors of ``positive``
        (weight +1) and ``negative`` (weight -1), as gensim's ``most_similar``; with
        positive=[b, c], negative=[a] this is 3CosAdd for a : b :: c : ?.

        Items are keys, vectors (used as they are), or ``(item, weight)`` pairs; a single one
        is accepted in place of a list. Input keys are left out of the result. Only rows
        ``clip_start:clip_end``, or the first ``restrict_vocab``, are searched. ``topn=None``
        returns all their cosines; an ``indexer`` (e.g. gensim's AnnoyIndexer) answers instead.
        """
        if isinstance(topn, Integral) and topn < 1:
            return []
        keys, weights = [], []
        for sign, group in ((1.0, positive), (-1.0, negative)):
            for item in ensure_list(group):
                key, weight = split_item(item, sign)
                keys.append(key)
                weights.append(weight)
        mean = self.get_mean_vector(
            keys, weights, pre_normalize=True, post_normalize=True, ignore_missing=False
        )
        if indexer is not None and isinstance(topn, int):
            return indexer.most_similar(mean, topn)
        lo, hi = clip_range(len(self), clip_start, clip_end, restrict_vocab)
        dists = self.unit[lo:hi] @ mean
        if not topn:
            return dists
        exclude = [self.get_index(k) - lo for k in keys if isinstance(k, KEY_TYPES)]
        return [(self.words[lo + i], float(dists[i])) for i in best_indices(dists, exclude, topn)]

    # --- files and gensim -----------------------------------------------------------------------
    def save_word2vec_format(
        self,
        fname: PathLike,
        fvocab: PathLike | None = None,
        binary: bool = False,
        total_vec: int | None = None,
        write_header: bool = True,
        prefix: str = "",
        append: bool = False,
        sort_attr: str = "count",
        *,
        precision: int = 9,
        newline: bool = True,
    ) -> None:
        """Write the word2vec text or binary file in row order, each word after ``prefix``
        (:func:`write_word2vec`: atomic, ``.gz`` compresses, text values
        ``%.9g`` restore float32 exactly). There are no counts to store or sort by: ``fvocab``
        raises ValueError (as gensim does for loaded vectors), as do ``write_header=False``,
        ``append=True`` and a ``total_vec`` other than the number of words."""
        _refuse(
            fname,
            "save_word2vec_format",
            {
                "fvocab (WordVectors hold no counts)": fvocab is not None,
                "total_vec": total_vec not in (None, len(self)),
                "write_header=False": not write_header,
                "append=True": append,
            },
        )
        words = [prefix + w for w in self.words] if prefix else self.words
        write_arrays(words, self.matrix, fname, binary, precision=precision, newline=newline)

    @classmethod
    def load_word2vec_format(
        cls,
        fname: PathLike,
        fvocab: PathLike | None = None,
        binary: bool | None = False,
        encoding: str = "utf8",
        unicode_errors: str = "strict",
        limit: int | None = None,
        datatype: Any = np.float32,
        no_header: bool = False,
        *,
        allow_nonfinite: bool = False,
    ) -> WordVectors:
        """Read a word2vec text or binary file (``binary=None``: detect which) with
        :func:`read_word2vec`; a repeated word keeps its first vector, as in
        gensim. UTF-8 words, float32 values and a header only: other ``encoding``,
        ``datatype``, ``no_header=True`` or ``fvocab`` raise ValueError; so does a nan or inf
        value unless ``allow_nonfinite``."""
        _refuse(
            fname,
            "load_word2vec_format",
            {
                "fvocab (WordVectors hold no counts)": fvocab is not None,
                f"encoding={encoding!r} (UTF-8 only)": codecs.lookup(encoding).name != "utf-8",
                f"datatype={datatype!r} (float32 only)": np.dtype(datatype) != np.float32,
                "no_header=True": no_header,
            },
        )
        words, matrix = read_arrays(
            fname,
            binary,
            limit=limit,
            unicode_errors=unicode_errors,
            duplicates="first",
            allow_nonfinite=allow_nonfinite,
        )
        return cls(tuple(words), {w: i for i, w in enumerate(words)}, matrix)

    def to_gensim(self) -> Any:
        """A gensim ``KeyedVectors`` of the same words and (copied, writable) vectors."""
        try:
            from gensim.models import KeyedVectors
        except ImportError as e:
            raise ImportError(
                "WordVectors.to_gensim needs gensim: pip install gensim (or sgjax[dev])"
            ) from e
        kv = KeyedVectors(self.matrix.shape[1], count=0, dtype=np.float32)
        kv.index_to_key = list(self.words)
        kv.key_to_index = dict(self.index)
        kv.vectors = np.array(self.matrix, dtype=np.float32)
        kv.next_index = len(self.words)
        return kv

    @classmethod
    def from_gensim(cls, kv: Any) -> WordVectors:
        """The WordVectors of a gensim ``KeyedVectors`` (or of a model's ``.wv``), copied to
        float32. Keys must be non-empty strings (ValueError otherwise)."""
        if not hasattr(kv, "index_to_key") and hasattr(kv, "wv"):
            kv = kv.wv
        try:
            keys, vectors = kv.index_to_key, kv.vectors
        except AttributeError:
            raise TypeError(
                f"from_gensim expects a gensim KeyedVectors, not {type(kv).__name__}"
            ) from None
        return cls.from_params(keys, vectors)


def _refuse(path: PathLike, what: str, unsupported: dict[str, bool]) -> None:
    """ValueError naming ``path`` and the unsupported arguments that were given, if any."""
    bad = [name for name, given in unsupported.items() if given]
    if bad:
        raise ValueError(f"{path}: {what} does not support {', '.join(bad)}")


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
