"""gensim 4.4.0 ``KeyedVectors``' common surface, as a mixin of :class:`sgjax.vectors.WordVectors`.

Each method follows the gensim method of the same name (read from gensim's source, not its
documentation), so that a researcher's gensim habits work unchanged on sgjax's vectors and give
the same numbers; tests/test_gensim_parity.py calls both on the same vectors. The deliberate
differences (the matrix is immutable; a zero vector has cosine 0, not NaN; ...) are listed in
WordVectors' docstring. The methods use only ``words``, ``index``, ``matrix``, ``norms``,
``unit`` and the lookup and ``most_similar`` of :mod:`sgjax.vectors`, which also holds the file
methods and the conversions to and from gensim. Evaluation delegates to
:mod:`sgjax.analogy` and :mod:`sgjax.evaluate`, imported when called (they import
sgjax.vectors, which imports this module).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sgjax.vectors import WordVectors

__all__ = ["COSMUL_EPSILON", "Correlation", "KeyedVectorsAPI", "KEY_TYPES"]

PathLike = str | os.PathLike[str]
#: What gensim takes as one key: a word, or an int position in the vocabulary.
KEY_TYPES = (str, int, np.integer)
#: The epsilon of gensim's most_similar_cosmul (Levy & Goldberg's paper uses 1e-3).
COSMUL_EPSILON = 1e-6
_IMMUTABLE = (
    "WordVectors are immutable (the matrix is read-only); use wv = wv.unit_normalized() for a "
    "new object with unit rows, or wv.get_normed_vectors() for the unit matrix"
)


class Correlation(NamedTuple):
    """A correlation and its two-sided p-value; indexes like scipy's result ([0], [1])."""

    statistic: float
    pvalue: float


# --- helpers shared with sgjax.vectors --------------------------------------------------------
def is_pair(item: Any) -> bool:
    """Whether ``item`` is gensim's ``(key or vector, weight)`` pair."""
    return (
        isinstance(item, (tuple, list))
        and len(item) == 2
        and isinstance(item[0], (*KEY_TYPES, np.ndarray))
        and isinstance(item[1], Real)
    )


def ensure_list(value: Any) -> list:
    """gensim's ``_ensure_list``: None is empty, a single key or 1-D vector a list of one, a 2-D
    array its rows. A bare ``(item, weight)`` tuple is one item (gensim raises TypeError)."""
    if value is None:
        return []
    if isinstance(value, KEY_TYPES) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return list(value)
    if isinstance(value, tuple) and is_pair(value):
        return [value]
    return list(value)


def split_item(item: Any, weight: float) -> tuple[Any, float]:
    """``(key or vector, weight)`` of one item of most_similar's lists: a key, a vector, or a
    pair whose weight replaces the default (+1 for positive, -1 for negative, as gensim). A
    sequence of numbers that is not a pair is a vector (gensim would misread it as a pair)."""
    if isinstance(item, (*KEY_TYPES, np.ndarray)):
        return item, weight
    if is_pair(item):
        return item[0], float(item[1])
    return np.asarray(item, dtype=np.float32), weight


def unitvec(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length; a zero vector stays zero (gensim's ``matutils.unitvec``)."""
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of a 1-D array, largest first (stable among ties)."""
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < scores.shape[0]:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(scores.shape[0])
    return part[np.argsort(-scores[part], kind="stable")]


def best_indices(scores: np.ndarray, exclude: Iterable[int], topn: int) -> np.ndarray:
    """Positions of the ``topn`` highest ``scores``, highest first, leaving out ``exclude``
    (the query keys, as gensim does); NaN scores rank last, as in gensim's argsort."""
    keep = np.ones(scores.shape[0], bool)
    keep[[i for i in exclude if 0 <= i < scores.shape[0]]] = False
    candidates = np.flatnonzero(keep)
    s = scores[candidates]
    s = np.where(np.isnan(s), -np.inf, s)
    return candidates[top_k(s, min(topn, candidates.size))]


def clip_range(n: int, clip_start: int, clip_end: int | None, restrict_vocab: int | None):
    """The rows ``[lo, hi)`` most_similar searches: gensim's ``vectors[clip_start:clip_end]``,
    or ``vectors[:restrict_vocab]`` when that is given (it overrides the clip)."""
    if restrict_vocab:
        clip_start, clip_end = 0, restrict_vocab
    lo, hi, _ = slice(clip_start, clip_end or n).indices(n)
    return lo, max(lo, hi)


def p_value(r: float, n: int) -> float:
    """Two-sided p-value of a correlation ``r`` of ``n`` pairs (Student's t with n - 2 degrees
    of freedom, as scipy's pearsonr and spearmanr); NaN with n < 3."""
    if math.isnan(r) or n < 3:
        return math.nan
    if abs(r) >= 1.0:
        return 0.0
    from scipy.special import stdtr

    t = r * math.sqrt((n - 2) / ((1.0 - r) * (1.0 + r)))
    return float(min(1.0, 2.0 * stdtr(n - 2, -abs(t))))


# --- the surface ------------------------------------------------------------------------------
class KeyedVectorsAPI:
    """gensim's ``KeyedVectors`` methods over a WordVectors' words, matrix and unit rows."""

    if TYPE_CHECKING:  # provided by sgjax.vectors.WordVectors
        words: tuple[str, ...]
        index: Mapping[str, int]
        matrix: np.ndarray
        norms: np.ndarray
        unit: np.ndarray

        def __len__(self) -> int: ...
        def __contains__(self, key: object) -> bool: ...
        def get_index(self, key: Any, default: int | None = None) -> int: ...
        def get_vector(self, key: Any, norm: bool = False) -> np.ndarray: ...
        def get_mean_vector(self, keys: Any, *args: Any, **kwargs: Any) -> np.ndarray: ...
        def similarity(self, w1: Any, w2: Any) -> float: ...
        def most_similar(self, *args: Any, **kwargs: Any) -> Any: ...

    # --- gensim's attributes (read-only views) ------------------------------------------------
    @property
    def index_to_key(self) -> tuple[str, ...]:
        """The words in row order (a tuple: gensim's is a list)."""
        return self.words

    @property
    def key_to_index(self) -> Mapping[str, int]:
        """Word -> row, read-only."""
        return MappingProxyType(self.index) if isinstance(self.index, dict) else self.index

    @property
    def vectors(self) -> np.ndarray:
        """The (V, N) float32 matrix, read-only (``matrix``)."""
        return self.matrix

    @property
    def vector_size(self) -> int:
        return self.matrix.shape[1]

    def get_normed_vectors(self) -> np.ndarray:
        """Rows scaled to unit length (the cached, read-only ``unit``)."""
        return self.unit

    def fill_norms(self, force: bool = False) -> None:
        """Compute ``norms`` now (they are otherwise computed on first use)."""
        _ = self.norms

    def init_sims(self, replace: bool = False) -> None:
        """gensim's deprecated ``init_sims``: ``fill_norms``; ``replace=True`` raises TypeError."""
        if replace:
            raise TypeError(f"init_sims(replace=True): {_IMMUTABLE}")
        self.fill_norms()

    def unit_normalize_all(self) -> NoReturn:
        """gensim scales the vectors in place; a WordVectors cannot change: TypeError."""
        raise TypeError(f"unit_normalize_all: {_IMMUTABLE}")

    def unit_normalized(self) -> WordVectors:
        """A new WordVectors of the same words with unit rows (zero rows stay zero)."""
        return type(self)(self.words, self.index, np.array(self.unit))

    # --- similarity -----------------------------------------------------------------------------
    def similar_by_key(
        self, key: Any, topn: int | None = 10, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]] | np.ndarray:
        """``most_similar(positive=[key], ...)``."""
        return self.most_similar(positive=[key], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_word(
        self, word: Any, topn: int | None = 10, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]] | np.ndarray:
        """Alias of ``similar_by_key``."""
        return self.similar_by_key(word, topn, restrict_vocab)

    def similar_by_vector(
        self, vector: Any, topn: int | None = 10, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]] | np.ndarray:
        """Words nearest (cosine) to a vector; no word is left out."""
        vector = vector if isinstance(vector, np.ndarray) else np.asarray(vector, np.float32)
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

    @staticmethod
    def cosine_similarities(vector_1: np.ndarray, vectors_all: np.ndarray) -> np.ndarray:
        """Cosine of ``vector_1`` (N,) with each row of ``vectors_all`` (k, N), computed as
        gensim does; a zero vector has cosine 0 (gensim: NaN)."""
        norm = np.linalg.norm(vector_1)
        all_norms = np.linalg.norm(vectors_all, axis=1)
        dots = np.dot(vectors_all, vector_1)
        denom = norm * all_norms
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = dots / denom
        return np.where(denom == 0, 0, sims).astype(sims.dtype, copy=False)

    def distances(self, word_or_vector: Any, other_words: Iterable[Any] = ()) -> np.ndarray:
        """Cosine distances (1 - cosine) from a word or vector to ``other_words``, or to every
        word (itself included) when that is empty."""
        if isinstance(word_or_vector, KEY_TYPES):
            vector = self.get_vector(word_or_vector)
        else:
            vector = np.asarray(word_or_vector)
        others = list(other_words)
        rows = self.matrix[[self.get_index(w) for w in others]] if others else self.matrix
        return 1 - self.cosine_similarities(vector, rows)

    def distance(self, w1: Any, w2: Any) -> float:
        """1 - ``similarity(w1, w2)``."""
        return 1 - self.similarity(w1, w2)

    def n_similarity(self, ws1: Sequence[Any], ws2: Sequence[Any]) -> float:
        """Cosine of the means of the raw vectors of two sets of words; unknown words are
        skipped, as gensim's ``get_mean_vector`` does by default."""
        if not (len(ws1) and len(ws2)):
            raise ZeroDivisionError("At least one of the passed list is empty.")
        mean1 = self.get_mean_vector(ws1, pre_normalize=False)
        mean2 = self.get_mean_vector(ws2, pre_normalize=False)
        return float(unitvec(mean1) @ unitvec(mean2))

    def closer_than(self, key1: Any, key2: Any) -> list[str]:
        """Words closer (cosine distance) to ``key1`` than ``key2`` is, in vocabulary order."""
        d = self.distances(key1)
        i1, i2 = self.get_index(key1), self.get_index(key2)
        return [self.words[i] for i in np.flatnonzero(d < d[i2]).tolist() if i != i1]

    def words_closer_than(self, word1: Any, word2: Any) -> list[str]:
        """Deprecated alias of ``closer_than`` (as in gensim)."""
        warnings.warn("Use closer_than instead", DeprecationWarning, stacklevel=2)
        return self.closer_than(word1, word2)

    def rank(self, key1: Any, key2: Any) -> int:
        """1 + the number of words closer to ``key1`` than ``key2`` is."""
        return len(self.closer_than(key1, key2)) + 1

    def most_similar_to_given(self, key1: Any, keys_list: Sequence[Any]) -> Any:
        """The key of ``keys_list`` most similar to ``key1``."""
        return keys_list[int(np.argmax([self.similarity(key1, k) for k in keys_list]))]

    def relative_cosine_similarity(self, wa: Any, wb: Any, topn: int = 10) -> float:
        """``similarity(wa, wb)`` over the sum of the similarities of wa's ``topn`` nearest
        words (Leeuwenberg et al. 2016)."""
        sims = self.similar_by_word(wa, topn)
        if not sims:
            raise ValueError("cannot calculate relative cosine similarity without similar words")
        return float(self.similarity(wa, wb)) / sum(s for _, s in sims)

    def most_similar_cosmul(
        self,
        positive: Any = None,
        negative: Any = None,
        topn: int | None = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]] | np.ndarray:
        """Words ranked by 3CosMul (Levy & Goldberg 2014, eq. 4): the product of the shifted
        cosines ``(1 + cos) / 2`` with ``positive`` over that with ``negative`` (+ 1e-6).
        Items are keys (unit vectors) or raw vectors; input keys are left out of the result.
        Only the first ``restrict_vocab`` rows are searched (gensim 4.4.0 ignores it)."""
        if isinstance(topn, Integral) and topn < 1:
            return []
        terms = [[self._cosmul_term(x) for x in ensure_list(g)] for g in (positive, negative)]
        if not terms[0]:
            raise ValueError("cannot compute similarity with no input")
        _, hi = clip_range(len(self), 0, None, restrict_vocab)
        unit = self.unit[:hi]
        pos, neg = ([(1 + unit @ v) / 2 for v, _ in group] for group in terms)
        below = np.prod(neg, axis=0) if neg else np.float32(1)
        dists = np.prod(pos, axis=0) / (below + np.float32(COSMUL_EPSILON))
        if not topn:
            return dists
        exclude = {i for group in terms for _, i in group if i is not None}
        return [(self.words[i], float(dists[i])) for i in best_indices(dists, exclude, topn)]

    def _cosmul_term(self, item: Any) -> tuple[np.ndarray, int | None]:
        if isinstance(item, KEY_TYPES):
            i = self.get_index(item)
            return self.unit[i], i
        if is_pair(item):
            raise TypeError("most_similar_cosmul takes keys or vectors, not (item, weight) pairs")
        vec = np.asarray(item, dtype=np.float32)
        if vec.shape != (self.matrix.shape[1],):
            raise ValueError(f"vector of shape {vec.shape}; expected ({self.matrix.shape[1]},)")
        return vec, None

    def rank_by_centrality(
        self, words: Sequence[Any], use_norm: bool = True
    ) -> list[tuple[float, Any]]:
        """``(cosine with the normalised mean, word)`` of the known ``words``, most central
        first; unknown words are skipped with a warning (gensim logs one)."""
        return self._centrality(words, use_norm)

    def doesnt_match(self, words: Sequence[Any]) -> Any:
        """The word farthest from the normalised mean of the unit vectors of ``words``; unknown
        words are skipped with a warning, as gensim does (sgjax.evaluate.doesnt_match raises)."""
        return self._centrality(words, True)[-1][1]

    def _centrality(self, words: Sequence[Any], use_norm: bool) -> list[tuple[float, Any]]:
        used = [w for w in words if w in self]
        if len(used) != len(words):
            missing = [w for w in words if w not in self]
            warnings.warn(
                f"vectors for words {missing} are not present in the model, ignoring these words",
                stacklevel=3,
            )
        if not used:
            raise ValueError("cannot select a word from an empty list")
        vectors = np.vstack([self.get_vector(w, norm=use_norm) for w in used]).astype(np.float32)
        mean = self.get_mean_vector(vectors, post_normalize=True)
        return sorted(zip((vectors @ mean).tolist(), used, strict=True), reverse=True)

    # --- evaluation (sgjax.analogy, sgjax.evaluate) --------------------------------------------
    def evaluate_word_analogies(
        self,
        analogies: PathLike | None = None,
        restrict_vocab: int | None = 300_000,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
        similarity_function: str = "most_similar",
    ) -> tuple[float, list[dict[str, Any]]]:
        """``(score, sections)`` as gensim returns them, the last section "Total accuracy";
        ``analogies=None`` is the shipped questions-words.txt. ``similarity_function=
        "most_similar_cosmul"`` answers with 3CosMul (epsilon 1e-6; gensim 4.4.0 ignores the
        argument and always uses 3CosAdd). :func:`sgjax.analogy.evaluate_word_analogies` gives
        the richer result."""
        from sgjax.analogy import evaluate_word_analogies

        methods = {"most_similar": ("add", 1e-3), "most_similar_cosmul": ("mul", COSMUL_EPSILON)}
        if similarity_function not in methods:
            raise ValueError(
                f"similarity_function must be one of {', '.join(methods)}, "
                f"not {similarity_function!r}"
            )
        method, epsilon = methods[similarity_function]
        result = evaluate_word_analogies(
            self,  # type: ignore[arg-type]
            analogies,
            restrict_vocab=restrict_vocab,
            case_insensitive=case_insensitive,
            dummy4unknown=dummy4unknown,
            method=method,
            epsilon=epsilon,
        )
        return result.to_gensim()

    def evaluate_word_pairs(
        self,
        pairs: PathLike | None = None,
        delimiter: str = "\t",
        encoding: str = "utf8",
        restrict_vocab: int | None = 300_000,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
    ) -> tuple[Correlation, Correlation, float]:
        """``(pearson, spearman, oov_ratio)`` as gensim returns them: each correlation a
        ``(statistic, pvalue)`` pair (the p-value from scipy); ``pairs=None`` is
        the shipped WordSim-353. :func:`sgjax.evaluate.evaluate_word_pairs` gives the richer
        result."""
        from sgjax.evaluate import evaluate_word_pairs

        res = evaluate_word_pairs(
            self,  # type: ignore[arg-type]
            pairs,
            delimiter=delimiter,
            encoding=encoding,
            restrict_vocab=restrict_vocab,
            case_insensitive=case_insensitive,
            dummy4unknown=dummy4unknown,
        )
        return (
            Correlation(res.pearson, p_value(res.pearson, res.pairs)),
            Correlation(res.spearman, p_value(res.spearman, res.pairs)),
            res.oov_ratio,
        )
