"""Analogy questions ``a : b :: c : d`` (questions-words format), solved in batches.

Answered with 3CosAdd, ``argmax_x cos(x, b) - cos(x, a) + cos(x, c)``, or 3CosMul (Levy &
Goldberg 2014, eq. 4), ``argmax_x cos'(x, b) cos'(x, c) / (cos'(x, a) + epsilon)`` with
``cos' = (cos + 1) / 2``, under gensim's protocol (:mod:`sgjax.evaluate`). gensim always
uses 3CosAdd in ``evaluate_word_analogies``; 3CosMul here uses the same protocol with
gensim's ``most_similar_cosmul`` score (whose epsilon is 1e-6, not 1e-3).

Questions are solved in batches: the cosines of every distinct question word with the
searched vocabulary are one matrix product (k x N)(N x R), and each question combines
three of its rows, so the whole question set is a few matrix products, not one search per
question (timings: see BENCHMARKS.md, "Evaluation").
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from sgjax import chelpers
from sgjax.evaldata import (
    DEFAULT_RESTRICT_VOCAB,
    EvaluationDataError,
    PathLike,
    _lines,
    _ok_vocab,
    _read_bytes,
    _utf8,
    questions_words_path,
)
from sgjax.vectors import WordVectors

__all__ = ["METHODS", "AnalogyResult", "AnalogySection", "evaluate_word_analogies"]

METHODS = ("add", "mul")
_TOPN = 5  # gensim looks at this many candidates for one that is not a question word
_SIMS_BUDGET = 1 << 30  # bytes for the (distinct question words x R) cosine matrix
_CHUNK_CELLS = 1 << 21  # questions x R scores per batch (8 MiB float32)
_COS_COLUMNS = 2048  # the cosines are computed this many words (columns) at a time


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


class _Questions(NamedTuple):
    """A questions file, parsed: section names, each question's section and 4 words, and
    its words as rows ``index`` (Q, 4) of ``words`` (the distinct ones), so that a
    vocabulary is looked up once per distinct word (realtext-v1's 19,544 questions: 905
    words)."""

    names: tuple[str, ...]
    section_of: tuple[int, ...]
    quads: tuple[Quad, ...]
    words: tuple[str, ...]
    index: np.ndarray  # read-only: the parse is shared (cached)


@functools.lru_cache(maxsize=4)
def _parsed(path: str, case_insensitive: bool, data: bytes) -> _Questions:
    """:func:`_questions` of the file's bytes ``data`` (the cache's key with the path)."""
    names, section_of, quads = _read_analogies(path, case_insensitive, data)
    rank: dict[str, int] = {}
    index = np.array([rank.setdefault(w, len(rank)) for q in quads for w in q], np.int64)
    index = index.reshape(-1, 4)
    index.flags.writeable = False
    return _Questions(tuple(names), tuple(section_of), tuple(quads), tuple(rank), index)


def _questions(path: PathLike, case_insensitive: bool) -> _Questions:
    """The questions of ``path``, read each time and parsed once per content (a run
    checks its evaluation files before training and evaluates after it, or each epoch:
    the parse is 0.05 s of the shipped file, the read and the cache's lookup ~1 ms)."""
    return _parsed(os.fspath(path), case_insensitive, _read_bytes(path))


def _read_analogies(
    path: PathLike, case_insensitive: bool, data: bytes
) -> tuple[list[str], list[int], list[Quad]]:
    """Section names, and for each well-formed question its section number and 4 words,
    from the file's bytes ``data`` (``path`` names it in errors)."""
    names: list[str] = []
    section_of: list[int] = []
    quads: list[Quad] = []
    for n, raw in enumerate(_lines(data), start=1):
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
    names, section_of, quads, words, index = _questions(path, case_insensitive)
    if not quads:
        raise EvaluationDataError(f"{path}: no questions (lines of 4 words) found")
    ok, canon = _ok_vocab(kv, restrict_vocab, case_insensitive)
    ids = np.array([ok.get(w, -1) for w in words], np.int64)[index]
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
    rows of ``sims = U_q U^T`` (U_q: unit vectors of the distinct question words). Where
    analogy.cc is used (JAX imported, float32 vectors, the matrix within ``_SIMS_BUDGET``),
    its search gives the same answers (:func:`_search_in_c`), and numpy scores only the
    questions whose best word is a case variant of one of theirs (gensim's 5 candidates)."""
    rows = unit.shape[0]
    abc = ids[:, :3]
    chunk = max(16, _CHUNK_CELLS // rows)
    shared = np.unique(abc, return_inverse=True)
    eps = np.float32(epsilon)
    cpus = max(1, threads or os.cpu_count() or 1)
    in_budget = shared[0].size * rows * 4 <= _SIMS_BUDGET
    local = threading.local()  # each thread's score buffer, reused batch after batch

    def answer(q: np.ndarray, sims: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Whether questions ``q`` are answered right, their words rows ``where`` of sims."""
        if getattr(local, "scores", None) is None:
            local.scores = np.empty((chunk, rows), np.float32)
        scores = local.scores[: len(q)]
        # row by row into one reused buffer: no gathered copies of the cosine rows
        for row, (a, b, c) in zip(scores, where.tolist(), strict=True):
            if method == "add":  # cos(x, b) - cos(x, a) + cos(x, c)
                np.add(sims[b], sims[c], out=row)
                row -= sims[a]
            else:  # cos'(x, b) cos'(x, c) / (cos'(x, a) + eps), cos' = (1 + cos) / 2
                np.multiply(sims[b], sims[c], out=row)
                row /= sims[a] + eps
        scores[np.arange(len(q))[:, None], q[:, :3]] = -np.inf
        pred = canon[scores.argmax(axis=1)]
        # gensim takes the best candidate that is not a case variant of a question word
        clash = (pred[:, None] == q[:, :3]).any(axis=1)
        for j in np.flatnonzero(clash):
            pred[j] = _first_other(scores[j], canon, q[j, :3])
        return pred == q[:, 3]

    lib = _library() if in_budget and unit.dtype == np.float32 else None
    if lib is not None:
        where = shared[1].reshape(-1, 3)
        pred = canon[_search_in_c(lib, unit, shared[0], where, abc, method, eps, cpus)]
        right = pred == ids[:, 3]
        clash = np.flatnonzero((pred[:, None] == abc).any(axis=1))
        if clash.size:  # gensim's choice among the best 5: those questions' scores by numpy
            need, inv = np.unique(where[clash], return_inverse=True)
            sims, near = _cosines(unit, shared[0], method, keep=need), inv.reshape(-1, 3)
            for lo in range(0, clash.size, chunk):
                part = clash[lo : lo + chunk]
                right[part] = answer(ids[part], sims, near[lo : lo + chunk])
        return right
    sims_all = where_all = None
    if in_budget:
        sims_all = _cosines(unit, shared[0], method)
        where_all = shared[1].reshape(-1, 3)

    def batch(start: int) -> np.ndarray:
        sl = slice(start, start + chunk)
        if sims_all is not None:
            return answer(ids[sl], sims_all, where_all[sl])
        uniq, inv = np.unique(ids[sl, :3], return_inverse=True)
        return answer(ids[sl], _cosines(unit, uniq, method), inv.reshape(-1, 3))

    starts = range(0, len(ids), chunk)
    workers = min(cpus, len(starts))
    if workers == 1:
        return np.concatenate([batch(s) for s in starts])
    with ThreadPoolExecutor(workers) as pool:  # numpy releases the GIL in these kernels
        return np.concatenate(list(pool.map(batch, starts)))


def _library():
    """``analogy.cc``'s library where JAX is imported (:func:`sgjax.chelpers.library`)."""
    return chelpers.library("analogy")


def _search_in_c(lib, unit, words, where, abc, method: str, eps, cpus: int) -> np.ndarray:
    """The column of each question's best score (``scores.argmax(axis=1)`` of
    :func:`_solve`'s numpy method, question words at -inf): the cosines a block of
    :data:`_COS_COLUMNS` columns at a time (:func:`_cosines`' blocks, so the same values,
    in a buffer of a few MB instead of the whole matrix's fresh memory), each block scanned
    by ``sgjax_analogy_scan`` for every question, a part of them per thread."""
    rows, Q = unit.shape[0], len(where)
    where, abc = np.ascontiguousarray(where, np.int64), np.ascontiguousarray(abc, np.int64)
    top, at, done = np.full(Q, -np.inf, np.float32), np.zeros(Q, np.int64), np.zeros(Q, np.uint8)
    step = -(-Q // cpus)
    parts = [slice(lo, lo + step) for lo in range(0, Q, step)]
    m, e = (0 if method == "add" else 1), float(eps)
    U_w, buf = unit[words], np.empty(len(words) * min(rows, _COS_COLUMNS), np.float32)
    with ThreadPoolExecutor(len(parts)) as pool:  # ctypes releases the GIL
        for lo in range(0, rows, _COS_COLUMNS):
            n = min(_COS_COLUMNS, rows - lo)
            sims = _cosine_block(U_w, unit, lo, n, method, buf[: len(words) * n].reshape(-1, n))

            def scan(s: slice, sims=sims, lo=lo, n=n) -> None:
                lib.sgjax_analogy_scan(
                    sims.ctypes.data,
                    n,
                    lo,
                    where[s].ctypes.data,
                    abc[s].ctypes.data,
                    len(where[s]),
                    m,
                    e,
                    top[s].ctypes.data,
                    at[s].ctypes.data,
                    done[s].ctypes.data,
                )

            list(pool.map(scan, parts))
    return at


def _cosine_block(U_w, unit, lo: int, n: int, method: str, out: np.ndarray) -> np.ndarray:
    """Columns [lo, lo + n) of the cosines: ``U_w unit[lo:lo + n]^T`` into ``out``."""
    np.matmul(U_w, unit[lo : lo + n].T, out=out)
    if method == "mul":
        out += 1
        out *= 0.5
    return out


def _cosines(
    unit: np.ndarray, words: np.ndarray, method: str, keep: np.ndarray | None = None
) -> np.ndarray:
    """cos(w, x) for the given words w (rows) and all x; shifted to (1 + cos) / 2 for mul.
    In blocks of :data:`_COS_COLUMNS` columns, each made as :func:`_search_in_c` makes it
    (the same product into a contiguous buffer, so the same values); ``keep``: only these
    rows (indices into ``words``)."""
    rows, U_w = unit.shape[0], unit[words]
    sims = np.empty((len(words) if keep is None else len(keep), rows), unit.dtype)
    block = np.empty(len(words) * min(rows, _COS_COLUMNS), unit.dtype)
    for lo in range(0, rows, _COS_COLUMNS):
        n = min(_COS_COLUMNS, rows - lo)
        out = _cosine_block(U_w, unit, lo, n, method, block[: len(words) * n].reshape(-1, n))
        sims[:, lo : lo + n] = out if keep is None else out[keep]
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
