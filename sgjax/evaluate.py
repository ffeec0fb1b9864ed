"""Evaluation of word vectors: analogies, word-pair similarity, neighbours, odd one out.

Analogies ``a : b :: c : d`` (questions-words format) are answered with 3CosAdd,
``argmax_x cos(x, b) - cos(x, a) + cos(x, c)``, or 3CosMul (Levy & Goldberg 2014, eq. 4),
``argmax_x cos'(x, b) cos'(x, c) / (cos'(x, a) + epsilon)`` with ``cos' = (cos + 1) / 2``.
Word pairs (WordSim-353 / SimLex tab-separated format) are scored by the Pearson and Spearman
correlation of cosine similarity with the human judgements.

The protocol follows gensim 4.4.0's ``KeyedVectors.evaluate_word_analogies`` and
``evaluate_word_pairs`` line by line, so the numbers are comparable with published ones:
only the first ``restrict_vocab`` words are searched and looked up; with
``case_insensitive`` every word is upper-cased and a word stands for the first (most
frequent) of its case variants; questions or pairs with a word outside that vocabulary are
skipped (``dummy4unknown=False``) or counted wrong / scored 0; the three question words are
excluded from the answers, and the answer is the first of the 5 best candidates that is not a
case variant of a question word. Lines that are not a question or a pair are skipped.
gensim always uses 3CosAdd in ``evaluate_word_analogies``; 3CosMul here uses the same
protocol with gensim's ``most_similar_cosmul`` score (whose epsilon is 1e-6, not 1e-3).

Questions are solved in batches: the cosines of every distinct question word with the
searched vocabulary are one matrix product (k x N)(N x R), and each question combines three
of its rows, so 19,544 questions against 30,000 x 100 vectors take a few seconds on two cores.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

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
    "rankdata",
    "spearman",
    "wordsim353_path",
]

PathLike = str | os.PathLike[str]
DEFAULT_RESTRICT_VOCAB = 300_000
METHODS = ("add", "mul")
_TOPN = 5  # gensim looks at this many candidates for one that is not a question word
_SIMS_BUDGET = 1 << 30  # bytes for the (distinct question words x R) cosine matrix
_CHUNK_CELLS = 1 << 22  # questions x R scores per batch (16 MiB float32)


def questions_words_path() -> Path:
    """The shipped Google analogy set (14 sections, 19,544 questions)."""
    return Path(str(files("sgjax") / "data" / "questions-words.txt"))


def wordsim353_path() -> Path:
    """The shipped WordSim-353 pairs (tab-separated, ``#`` comments)."""
    return Path(str(files("sgjax") / "data" / "wordsim353.tsv"))


class EvaluationDataError(ValueError):
    """An evaluation file that cannot be used; the message names the file (and line)."""


class NoValidPairsError(EvaluationDataError):
    """No pair of a word-pairs file is usable: bad format or every pair out of vocabulary."""


Quad = tuple[str, str, str, str]


@dataclass(frozen=True)
class AnalogySection:
    """The questions of one ``: section`` that were evaluated, split by outcome."""

    name: str
    correct: tuple[Quad, ...]
    incorrect: tuple[Quad, ...]

    @property
    def evaluated(self) -> int:
        return len(self.correct) + len(self.incorrect)

    @property
    def accuracy(self) -> float:
        """correct / evaluated; 0.0 when nothing was evaluated (as gensim)."""
        return len(self.correct) / self.evaluated if self.evaluated else 0.0


@dataclass(frozen=True)
class AnalogyResult:
    """Per-section and total analogy accuracy. ``questions`` counts the well-formed question
    lines, ``oov`` those with a word outside the (restricted) vocabulary."""

    path: str
    method: str
    restrict_vocab: int | None
    sections: tuple[AnalogySection, ...]
    total: AnalogySection
    questions: int
    oov: int

    @property
    def score(self) -> float:
        """Total accuracy over the evaluated questions (gensim's first return value)."""
        return self.total.accuracy

    @property
    def oov_ratio(self) -> float:
        """Percentage of questions with an out-of-vocabulary word (gensim logs this)."""
        return 100.0 * self.oov / self.questions

    def to_gensim(self) -> tuple[float, list[dict[str, Any]]]:
        """``(score, sections)`` exactly as gensim's ``evaluate_word_analogies`` returns them,
        the last section being ``"Total accuracy"``."""
        return self.score, [
            {"section": s.name, "correct": list(s.correct), "incorrect": list(s.incorrect)}
            for s in (*self.sections, self.total)
        ]

    def summary(self) -> dict[str, Any]:
        """Counts and accuracies as plain JSON-able values."""
        return {
            "path": self.path,
            "method": self.method,
            "restrict_vocab": self.restrict_vocab,
            "accuracy": self.score,
            "correct": len(self.total.correct),
            "evaluated": self.total.evaluated,
            "questions": self.questions,
            "oov": self.oov,
            "oov_ratio": self.oov_ratio,
            "sections": [
                {
                    "section": s.name,
                    "accuracy": s.accuracy,
                    "correct": len(s.correct),
                    "evaluated": s.evaluated,
                }
                for s in self.sections
            ],
        }


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


# --- vocabulary as gensim's evaluators see it -------------------------------------------------
def _ok_vocab(
    kv: WordVectors, restrict_vocab: int | None, case_insensitive: bool
) -> tuple[dict[str, int], np.ndarray]:
    """The lookup table of the first ``restrict_vocab`` words (upper-cased keys map to the
    first case variant) and ``canon``: for each of those rows, the row its key maps to."""
    words = kv.words[:restrict_vocab] if restrict_vocab else kv.words
    if not case_insensitive:
        return {w: i for i, w in enumerate(words)}, np.arange(len(words))
    ok: dict[str, int] = {}
    canon = np.empty(len(words), np.int64)
    for i, w in enumerate(words):
        canon[i] = ok.setdefault(w.upper(), i)
    return ok, canon


def _read_lines(path: PathLike) -> list[bytes]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise EvaluationDataError(f"{path}: cannot read: {e.strerror or e}") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _utf8(path: PathLike, line_no: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EvaluationDataError(f"{path}: line {line_no}: not valid UTF-8 ({e.reason})") from None


# --- analogies --------------------------------------------------------------------------------
def _read_analogies(
    path: PathLike, case_insensitive: bool
) -> tuple[list[str], list[int], list[Quad]]:
    """Section names, and for each well-formed question its section number and 4 words."""
    names: list[str] = []
    section_of: list[int] = []
    quads: list[Quad] = []
    for n, raw in enumerate(_read_lines(path), start=1):
        line = _utf8(path, n, raw)
        if line.startswith(": "):
            names.append(line.lstrip(": ").strip())
            continue
        if not names:
            raise EvaluationDataError(f"{path}: line {n}: question before the first ': section'")
        words = line.upper().split() if case_insensitive else line.split()
        if len(words) != 4:  # gensim skips such lines (blank ones included)
            continue
        section_of.append(len(names) - 1)
        quads.append((words[0], words[1], words[2], words[3]))
    return names, section_of, quads


def evaluate_word_analogies(
    kv: WordVectors,
    analogies: PathLike | None = None,
    *,
    restrict_vocab: int | None = DEFAULT_RESTRICT_VOCAB,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
    method: str = "add",
    epsilon: float = 1e-3,
    threads: int | None = None,
) -> AnalogyResult:
    """Accuracy on an analogy file (default: the shipped questions-words.txt).

    ``method`` is "add" (3CosAdd, gensim's only method) or "mul" (3CosMul with ``epsilon``,
    Levy & Goldberg's 1e-3 by default; gensim's most_similar_cosmul uses 1e-6).
    ``restrict_vocab=None`` (or 0) uses the whole vocabulary. ``threads`` batches run in
    parallel (default: the CPU count).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    path = questions_words_path() if analogies is None else analogies
    names, section_of, quads = _read_analogies(path, case_insensitive)
    if not quads:
        raise EvaluationDataError(f"{path}: no questions (lines of 4 words) found")
    ok, canon = _ok_vocab(kv, restrict_vocab, case_insensitive)
    ids = np.array([[ok.get(w, -1) for w in q] for q in quads], np.int64).reshape(-1, 4)
    known = (ids >= 0).all(axis=1)
    correct = np.zeros(len(quads), bool)
    if known.any():
        unit = kv.unit[: len(canon)]
        correct[known] = _solve(unit, canon, ids[known], method, epsilon, threads)
    evaluated = known | dummy4unknown
    per_section: list[tuple[list[Quad], list[Quad]]] = [([], []) for _ in names]
    for q, s, ok_q, ev in zip(quads, section_of, correct.tolist(), evaluated.tolist(), strict=True):
        if ev:
            per_section[s][0 if ok_q else 1].append(q)
    sections = tuple(
        AnalogySection(name, tuple(c), tuple(i))
        for name, (c, i) in zip(names, per_section, strict=True)
    )
    total = AnalogySection(
        "Total accuracy",
        tuple(q for s in sections for q in s.correct),
        tuple(q for s in sections for q in s.incorrect),
    )
    return AnalogyResult(
        path=str(path),
        method=method,
        restrict_vocab=restrict_vocab or None,
        sections=sections,
        total=total,
        questions=len(quads),
        oov=int((~known).sum()),
    )


def _solve(
    unit: np.ndarray,
    canon: np.ndarray,
    ids: np.ndarray,
    method: str,
    epsilon: float,
    threads: int | None,
) -> np.ndarray:
    """Whether each question (rows of ``ids``: a, b, c, expected, as rows of ``unit``) is
    answered right. Scores of a batch of questions against all R words are combined from the
    rows of ``sims = U_q U^T`` (U_q: unit vectors of the distinct question words)."""
    rows = unit.shape[0]
    abc = ids[:, :3]
    chunk = max(16, _CHUNK_CELLS // rows)
    shared = np.unique(abc, return_inverse=True)
    if shared[0].size * rows * 4 <= _SIMS_BUDGET:
        sims_all = _cosines(unit, shared[0], method)
        where_all = shared[1].reshape(-1, 3)
    else:
        sims_all = where_all = None
    eps = np.float32(epsilon)

    def batch(start: int) -> np.ndarray:
        sl = slice(start, start + chunk)
        q = ids[sl]
        if sims_all is not None:
            sims, where = sims_all, where_all[sl]
        else:
            uniq, inv = np.unique(q[:, :3], return_inverse=True)
            sims, where = _cosines(unit, uniq, method), inv.reshape(-1, 3)
        scores = sims[where[:, 1]]
        if method == "add":  # cos(x, b) - cos(x, a) + cos(x, c)
            scores += sims[where[:, 2]]
            scores -= sims[where[:, 0]]
        else:  # cos'(x, b) cos'(x, c) / (cos'(x, a) + eps), cos' = (1 + cos) / 2
            scores *= sims[where[:, 2]]
            denom = sims[where[:, 0]]
            denom += eps
            scores /= denom
        scores[np.arange(len(q))[:, None], q[:, :3]] = -np.inf
        pred = canon[scores.argmax(axis=1)]
        # gensim takes the best candidate that is not a case variant of a question word
        clash = (pred[:, None] == q[:, :3]).any(axis=1)
        for j in np.flatnonzero(clash):
            pred[j] = _first_other(scores[j], canon, q[j, :3])
        return pred == q[:, 3]

    starts = range(0, len(ids), chunk)
    workers = max(1, min(threads or os.cpu_count() or 1, len(starts)))
    if workers == 1:
        return np.concatenate([batch(s) for s in starts])
    with ThreadPoolExecutor(workers) as pool:  # numpy releases the GIL in these kernels
        return np.concatenate(list(pool.map(batch, starts)))


def _cosines(unit: np.ndarray, words: np.ndarray, method: str) -> np.ndarray:
    """cos(w, x) for the given words w (rows) and all x; shifted to (1 + cos) / 2 for mul."""
    sims = unit[words] @ unit.T
    if method == "mul":
        sims += 1
        sims *= 0.5
    return sims


def _first_other(scores: np.ndarray, canon: np.ndarray, question: np.ndarray) -> int:
    """gensim's choice among its 5 best candidates (question words already at -inf): the first
    whose upper-cased word is not a question word, else the last one looked at (-1: none)."""
    k = min(_TOPN, scores.shape[0] - len(set(question.tolist())))
    if k <= 0:
        return -1
    best = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(k)
    best = best[np.argsort(-scores[best], kind="stable")]
    pred = -1
    for i in best.tolist():
        pred = int(canon[i])
        if pred not in question:
            break
    return pred


# --- word pairs -------------------------------------------------------------------------------
def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties getting the average of their ranks (scipy's ``rankdata``)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    inverse = np.empty(x.size, np.int64)
    inverse[order] = np.arange(x.size)
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    dense = np.cumsum(first)[inverse]
    bounds = np.r_[np.flatnonzero(first), x.size]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson's r in float64 (NaN if either input is constant)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError("pearson needs two 1-D sequences of the same length >= 2")
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0 or ny == 0:
        return math.nan
    return float(np.clip((xm / nx) @ (ym / ny), -1.0, 1.0))


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's r of the (average-tie) ranks."""
    return pearson(rankdata(x), rankdata(y))


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
    scores = sims.copy()
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
