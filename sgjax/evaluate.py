"""Evaluation of word vectors: analogies, word-pair similarity, neighbours, odd one out.

Analogies ``a : b :: c : d`` (questions-words format) are answered with 3CosAdd or 3CosMul
(:mod:`sgjax.analogy`). Word pairs (WordSim-353 / SimLex tab-separated format) are scored
by the Pearson and Spearman correlation of cosine similarity with the human judgements.

The protocol follows gensim 4.4.0's ``KeyedVectors.evaluate_word_analogies`` and
``evaluate_word_pairs`` line by line, so the numbers are comparable with published ones:
only the first ``restrict_vocab`` words are searched and looked up; with
``case_insensitive`` every word is upper-cased and a word stands for the first (most
frequent) of its case variants; questions or pairs with a word outside that vocabulary are
skipped (``dummy4unknown=False``) or counted wrong / scored 0; the three question words are
excluded from the answers, and the answer is the first of the 5 best candidates that is not a
case variant of a question word. Lines that are not a question or a pair are skipped.
The data sets and the file and vocabulary handling the evaluators share live in
:mod:`sgjax.evaldata`; ``__all__`` here re-exports what callers use of both modules.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sgjax.analogy import AnalogyResult, AnalogySection, evaluate_word_analogies
from sgjax.evaldata import (
    DEFAULT_RESTRICT_VOCAB,
    EvaluationDataError,
    NoValidPairsError,
    PathLike,
    _ok_vocab,
    questions_words_path,
    wordsim353_path,
)
from sgjax.vectors import WordVectors

__all__ = [
    "DEFAULT_RESTRICT_VOCAB",
    "AnalogyResult",
    "AnalogySection",
    "EvaluationDataError",
    "NoValidPairsError",
    "WordPairsResult",
    "doesnt_match",
    "evaluate",
    "evaluate_word_analogies",
    "evaluate_word_pairs",
    "nearest_neighbors",
    "pearson",
    "questions_words_path",
    "spearman",
    "wordsim353_path",
]


@dataclass(frozen=True)
class WordPairsResult:
    """Correlation of model cosines with human scores over the pairs used.

    ``oov_ratio`` is a percentage with gensim's definition (``oov / (pairs + oov)``, or
    ``oov / pairs`` with ``dummy4unknown`` since the OOV pairs are then among the pairs).
    ``skipped_lines`` lists (1-based) lines that are not ``word TAB word TAB score``.
    """

    path: str
    pearson: float
    spearman: float
    pairs: int
    oov: int
    oov_ratio: float
    skipped_lines: tuple[int, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "pearson": _json_float(self.pearson),
            "spearman": _json_float(self.spearman),
            "pairs": self.pairs,
            "oov": self.oov,
            "oov_ratio": self.oov_ratio,
            "skipped_lines": len(self.skipped_lines),
        }


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x


# --- word pairs -------------------------------------------------------------------------------
def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson's r in float64, NaN if either input is constant: scipy.stats.pearsonr's value
    (gensim's evaluate_word_pairs uses it; tests/test_evaluate.py holds them equal), in
    numpy because importing scipy.stats costs ~0.7 s of every run's evaluation."""
    x, y = _pair("pearson", x, y)
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0 or ny == 0:
        return math.nan
    return float(np.clip((xm / nx) @ (ym / ny), -1.0, 1.0))


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's r of the ranks, ties given the average of
    their ranks (scipy.stats.spearmanr's value; see :func:`pearson`)."""
    x, y = _pair("spearman", x, y)
    return pearson(_ranks(x), _ranks(y))


def _pair(name: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"{name} needs two 1-D sequences of the same length >= 2")
    return x, y


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values given the average of their ranks (scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]  # the first of each run of equal values
    bounds = np.r_[np.flatnonzero(first), x.size]
    run = np.cumsum(first) - 1  # each sorted value's run
    ranks = np.empty(x.size, np.float64)
    ranks[order] = 0.5 * (bounds[run] + bounds[run + 1] + 1)
    return ranks


def evaluate_word_pairs(
    kv: WordVectors,
    pairs: PathLike | None = None,
    *,
    delimiter: str = "\t",
    encoding: str = "utf8",
    restrict_vocab: int | None = DEFAULT_RESTRICT_VOCAB,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
) -> WordPairsResult:
    """Pearson and Spearman correlation of cosine similarity with the scores of a word-pairs
    file (default: the shipped WordSim-353). Lines starting with ``#`` are comments.
    Raises :class:`NoValidPairsError` if no pair can be used (as gensim raises ValueError)."""
    path = wordsim353_path() if pairs is None else pairs
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise EvaluationDataError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise EvaluationDataError(
            f"{path}: line {line}: not valid {encoding} ({e.reason})"
        ) from None
    ok, _ = _ok_vocab(kv, restrict_vocab, case_insensitive)
    left: list[int] = []
    right: list[int] = []
    gold: list[float] = []
    skipped: list[int] = []
    oov = 0
    for n, line in enumerate(io.StringIO(text, newline=None), start=1):
        if not line or line.startswith("#"):
            continue
        fields = line.upper().split(delimiter) if case_insensitive else line.split(delimiter)
        try:
            if len(fields) != 3:
                raise ValueError
            score = float(fields[2])
        except ValueError:
            skipped.append(n)
            continue
        a, b = ok.get(fields[0], -1), ok.get(fields[1], -1)
        if a < 0 or b < 0:
            oov += 1
            if not dummy4unknown:
                continue
        left.append(a)
        right.append(b)
        gold.append(score)
    if not gold:
        raise NoValidPairsError(
            f"{path}: no usable word pairs: {oov} with a word outside the first "
            f"{len(ok)} words of the vocabulary, {len(skipped)} lines not 'word TAB word TAB score'"
        )
    a_idx, b_idx = np.array(left), np.array(right)
    known = (a_idx >= 0) & (b_idx >= 0)
    model = np.zeros(len(gold), np.float32)  # dummy4unknown scores OOV pairs 0
    unit = kv.unit
    model[known] = np.einsum("ij,ij->i", unit[a_idx[known]], unit[b_idx[known]])
    used = len(gold)
    oov_ratio = 100.0 * oov / (used if dummy4unknown else used + oov)
    r = pearson(gold, model) if used >= 2 else math.nan
    rho = spearman(gold, model) if used >= 2 else math.nan
    return WordPairsResult(str(path), r, rho, used, oov, oov_ratio, tuple(skipped))


# --- neighbours -------------------------------------------------------------------------------
def nearest_neighbors(
    kv: WordVectors,
    words: Iterable[str],
    topn: int = 10,
    restrict_vocab: int | None = None,
) -> dict[str, list[tuple[str, float]]]:
    """The ``topn`` words of highest cosine similarity to each of ``words`` (the word itself
    left out), among the first ``restrict_vocab`` words; one batched matrix product.
    Raises KeyError naming the words that are not in the vocabulary."""
    words = list(dict.fromkeys(words))
    missing = [w for w in words if w not in kv]
    if missing:
        raise KeyError(f"not in the vocabulary: {', '.join(map(repr, missing))}")
    if not words:
        return {}
    rows = len(kv) if not restrict_vocab else min(restrict_vocab, len(kv))
    unit = kv.unit
    idx = np.array([kv.index[w] for w in words])
    sims = unit[idx] @ unit[:rows].T
    scores = np.where(np.isnan(sims), -np.inf, sims)  # a nan row (--allow-nonfinite) last
    own = idx < rows
    scores[np.flatnonzero(own), idx[own]] = -np.inf
    k = max(0, min(topn, rows - 1 if own.any() else rows))
    out: dict[str, list[tuple[str, float]]] = {}
    for r, w in enumerate(words):
        k_r = min(k, rows - int(own[r]))
        best = np.argpartition(-scores[r], k_r - 1)[:k_r] if 0 < k_r < rows else np.arange(k_r)
        best = best[np.argsort(-scores[r, best], kind="stable")]
        out[w] = [(kv.words[i], float(sims[r, i])) for i in best.tolist()]
    return out


def doesnt_match(kv: WordVectors, words: Sequence[str]) -> str:
    """The word farthest (cosine) from the normalised mean of the unit vectors of ``words``
    (gensim's ``doesnt_match``; unknown words raise KeyError instead of being dropped)."""
    missing = [w for w in words if w not in kv]
    if missing:
        raise KeyError(f"not in the vocabulary: {', '.join(map(repr, missing))}")
    if not words:
        raise ValueError("doesnt_match needs at least one word")
    vecs = kv.unit[[kv.index[w] for w in words]]
    mean = vecs.mean(axis=0)
    length = np.linalg.norm(mean)
    if length > 0:
        mean = mean / length
    return words[int(np.argmin(vecs @ mean))]


# --- everything at once -----------------------------------------------------------------------
def evaluate(
    kv: WordVectors,
    *,
    analogies: PathLike | None | bool = None,
    similarity: Sequence[PathLike] | None | bool = None,
    restrict_vocab: int | None = DEFAULT_RESTRICT_VOCAB,
    method: str = "add",
    case_insensitive: bool = True,
) -> dict[str, Any]:
    """Analogy and word-pair scores as one JSON-able dict. ``None`` means the shipped data
    set, ``False`` skips that part. A word-pairs file with no usable pair gives ``null``
    correlations and an ``"error"`` entry instead of raising."""
    out: dict[str, Any] = {"vocab_size": len(kv), "dim": kv.dim}
    if analogies is not False:
        res = evaluate_word_analogies(
            kv,
            None if analogies in (None, True) else analogies,
            restrict_vocab=restrict_vocab,
            case_insensitive=case_insensitive,
            method=method,
        )
        out["analogies"] = res.summary()
    if similarity is not False:
        paths = [wordsim353_path()] if similarity in (None, True) else list(similarity)
        out["similarity"] = []
        for p in paths:
            try:
                summ = evaluate_word_pairs(
                    kv, p, restrict_vocab=restrict_vocab, case_insensitive=case_insensitive
                ).summary()
            except NoValidPairsError as e:
                summ = {"path": str(p), "pearson": None, "spearman": None, "error": str(e)}
            out["similarity"].append(summ)
    return out
