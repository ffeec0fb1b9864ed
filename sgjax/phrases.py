"""Phrase detection: word2vec.c's word2phrase and gensim 4.4's ``Phrases``, on word ids.

:func:`count_phrases` counts unigrams and adjacent pairs in one streaming pass (tokens get
ids from a dict as they come; pairs are int64 keys counted with numpy), :func:`score_phrases`
scores them and :func:`apply_phrases` rewrites the corpus joining each detected pair ``a b``
into ``a_b``, left to right without overlap (word2phrase's TrainModel, gensim's
``analyze_sentence``); :func:`phrase_corpus` repeats this ``passes`` times (``new_york_city``).

A pair is a phrase when its score > ``threshold`` (c: counts, N: tokens, delta: min_count):

- ``word2phrase`` (default): ``(c_ab - delta) / c_a / c_b * N``, word2phrase.c's formula in
  its float32 arithmetic and operation order;
- ``original``: gensim's ``original_scorer`` (``Phrases(scoring='default')``):
  ``(c_ab - delta) / (c_a * c_b) * L`` with L = ``len(Phrases.vocab)``, the number of distinct
  unigrams AND distinct pairs counted (gensim passes ``len_vocab=len(self.vocab)``), not N
  (realtext-v1: L = 1.08M, N = 3.05M), so one threshold means something else in each;
- ``npmi``: gensim's ``npmi_scorer``: ``ln(p_ab / (p_a p_b)) / -ln p_ab``, p = c / N, -inf
  when c_ab < delta; the threshold lies in [-1, 1].

Defaults (:data:`WORD2PHRASE`) are word2phrase's: min_count 5, threshold 100, delimiter "_",
lines never split. :data:`GENSIM`: ``Phrases``' (min_count 5, threshold 10, scoring original,
no connector words, delimiter "_") with LineSentence's 10,000-token pieces.

A sentence is a line, or a piece of ``max_line_tokens`` tokens of it (None: never split);
pairs never span two. Connector words (gensim's ``connector_words``) are not counted as
unigrams and never start or end a phrase; ``a c1 .. ck b`` around them is one candidate.

Differences. gensim: none on the same sentences while no token holds the delimiter (gensim
keys counts by joined strings, so the token ``new_york`` and the pair ``new york`` share a
count; sgjax keys pairs by word ids). word2phrase.c: its counting resets ``start`` before
testing it, so it also counts each (last word of a line, first of the next) pair, never
joined; it deletes CR bytes, splits on space, tab and newline only and cuts tokens at 59
bytes (sgjax splits as ``bytes.split()``); its c_a, c_b, c_ab >= min_count rule is implied
by a positive threshold. ``max_vocab_size``: counts below ``min_reduce`` are dropped (then
min_reduce += 1) when more entries are held, as gensim does (word2phrase.c: at or below, at
350M), but checked whenever sgjax merges its pair counts (every few million tokens), not
after every sentence; the word -> id map keeps every word.

Output: the text as sgjax.corpus reads it (invalid UTF-8 replaced, a BOM dropped) with the
whitespace inside each joined phrase replaced by the delimiter, line breaks and spacing kept;
each file ends with a newline, a token longer than the reader's chunk is cut with a space.
Outputs named .gz, .bz2 or .xz are compressed; all are written to a temporary name, renamed.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgjax.corpus import (
    DEFAULT_CHUNK_BYTES,
    WHITESPACE,
    CorpusStats,
    PathsLike,
    describe,
    iter_chunks,
    resolve_paths,
    token_spans,
)

SCORINGS = ("word2phrase", "original", "npmi")
#: gensim.models.phrases.ENGLISH_CONNECTOR_WORDS (gensim 4.4)
ENGLISH_CONNECTOR_WORDS = frozenset(
    "a an the for of with without at from to in on by and or".split()
)
WORD2PHRASE = dict(min_count=5, threshold=100.0, scoring="word2phrase", max_line_tokens=None)
GENSIM = dict(min_count=5, threshold=10.0, scoring="original", max_line_tokens=10000)
MAX_VOCAB_SIZE = 40_000_000  # gensim's default; word2phrase.c: 0.7 * its 500M hash slots
_MERGE_AT = 1 << 23  # raw pair keys held before they are merged into the sorted table


class _Vocab(dict):
    """token bytes -> id, numbering new tokens as they come; ``words``: id -> bytes."""

    def __init__(self, connectors: Iterable[str] = ()) -> None:
        super().__init__()
        self.words: list[bytes] = []
        self.connectors = frozenset(w.encode("utf-8") for w in connectors)
        self.is_conn = np.zeros(0, dtype=bool)  # per id

    def __missing__(self, key: bytes) -> int:
        i = self[key] = len(self.words)
        self.words.append(key)
        return i

    def connector(self, ids: np.ndarray) -> np.ndarray:
        """Whether each id is a connector word."""
        if len(self.words) > self.is_conn.size:
            new = self.words[self.is_conn.size :]
            self.is_conn = np.append(self.is_conn, [w in self.connectors for w in new])
        return self.is_conn[ids]


@dataclass(frozen=True, eq=False)
class PhraseCounts:
    """One pass's counts. ``unigrams[id]`` (0 for connectors and pruned words); ``pairs``:
    width (tokens in the candidate, 2 without connectors) -> (sorted unique keys, counts),
    a key being the candidate's int32 word ids viewed as one int64 (width 2) or void."""

    vocab: _Vocab
    unigrams: np.ndarray
    pairs: dict[int, tuple[np.ndarray, np.ndarray]]
    tokens: int
    max_line_tokens: int | None
    min_reduce: int

    @property
    def len_vocab(self) -> int:
        """gensim's ``len(Phrases.vocab)``: distinct unigrams + distinct candidates."""
        return int(np.count_nonzero(self.unigrams)) + sum(k.size for k, _ in self.pairs.values())


@dataclass(frozen=True, eq=False)
class PhraseModel:
    """The detected phrases: per width, their sorted keys and scores."""

    counts: PhraseCounts
    keys: dict[int, np.ndarray]
    scores: dict[int, np.ndarray]
    delimiter: str

    def __len__(self) -> int:  # the number of phrases
        return sum(k.size for k in self.keys.values())

    def phrases(self) -> dict[str, float]:
        """``{"a_b": score}``, best first (gensim's ``export_phrases()``)."""
        words = self.counts.vocab.words
        out = []
        for w, keys in self.keys.items():
            for row, s in zip(
                keys.view(np.int32).reshape(-1, w).tolist(), self.scores[w].tolist(), strict=True
            ):
                out.append((-s, self.delimiter.join(words[i].decode("utf-8") for i in row)))
        return {p: -s for s, p in sorted(out)}


def _keys(rows: np.ndarray) -> np.ndarray:
    """One sortable scalar per row of int32 ids (a bijection)."""
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    w = rows.shape[1]
    return rows.view(np.int64 if w == 2 else np.dtype((np.void, 4 * w))).reshape(-1)


def _check(min_count: int, threshold: float, scoring: str, delimiter: str) -> None:
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    if not isinstance(min_count, int | np.integer) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    if scoring == "npmi" and not -1 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [-1, 1] for npmi scoring, got {threshold}")
    if scoring != "npmi" and not threshold > 0:
        raise ValueError(f"threshold must be > 0 for {scoring} scoring, got {threshold}")
    if not delimiter or any(c in delimiter.encode("utf-8") for c in WHITESPACE):
        raise ValueError(f"delimiter must be non-empty and hold no whitespace, got {delimiter!r}")


# Reading: blocks of whole lines, the open end of a line carried into the next block.
def _chunks(files: list[Path], chunk_bytes: int, stats: CorpusStats | None) -> Iterator[tuple]:
    """``(data, continues)``: each chunk, and whether the next chunk continues its last line.
    A chunk cut inside a token gets a space (the token is cut, as sgjax.corpus cuts it); a
    file's last line gets a newline."""
    it = iter_chunks(files, chunk_bytes=chunk_bytes, stats=stats)
    try:
        cur = next(it, None)
        while cur is not None:
            nxt = next(it, None)
            cont = nxt is not None and nxt.continues
            data = cur.data
            if cont and data and data[-1] not in WHITESPACE:
                data += b" "
            elif not cont and data and data[-1] != 10:
                data += b"\n"
            yield data, cont
            cur = nxt
    finally:
        it.close()


@dataclass
class _Block:
    data: bytes
    starts: np.ndarray
    lengths: np.ndarray
    ids: np.ndarray
    pos: np.ndarray  # position of each token in its line
    left: np.ndarray  # candidate k joins tokens left[k]..right[k] (one sentence)
    right: np.ndarray
    tail: int  # the last non-connector token of the open last line, -1 if none
    open_pos: int  # position in its line of the next block's first token


def _scan(data: bytes, base: int, vocab: _Vocab, max_line_tokens: int | None) -> _Block:
    """Tokens, ids and phrase candidates of a block whose first line is at token ``base``."""
    a = np.frombuffer(data, dtype=np.uint8)
    starts, lengths = token_spans(a)
    toks = data.split()
    ids = np.fromiter(map(vocab.__getitem__, toks), dtype=np.int32, count=len(toks))
    nl = np.flatnonzero(a == 10)
    line = np.searchsorted(nl, starts)
    line_start = np.concatenate([[0], np.searchsorted(starts, nl + 1)])
    pos = np.arange(ids.size) - line_start[line]
    pos[line == 0] += base
    nc = np.flatnonzero(~vocab.connector(ids))
    same = line[nc[1:]] == line[nc[:-1]]
    if max_line_tokens:
        same &= pos[nc[1:]] // max_line_tokens == pos[nc[:-1]] // max_line_tokens
    tail = int(nc[-1]) if nc.size and line[nc[-1]] == nl.size else -1
    open_pos = ids.size - int(line_start[-1]) + (base if nl.size == 0 else 0)
    return _Block(data, starts, lengths, ids, pos, nc[:-1][same], nc[1:][same], tail, open_pos)


def _walk(
    paths: PathsLike,
    vocab: _Vocab,
    max_line_tokens: int | None,
    visit: Callable[[_Block, int, bool], int],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    stats: CorpusStats | None = None,
) -> None:
    """Scan the corpus block by block. ``visit(block, n_prefix, open_end)`` returns the first
    token of the block's unfinished end; the bytes from there on (``n_prefix`` tokens, already
    visited) are scanned again at the head of the next block."""
    carry, base, n_carry = b"", 0, 0
    for data, cont in _chunks(resolve_paths(paths), chunk_bytes, stats):
        blk = _scan(carry + data if carry else data, base, vocab, max_line_tokens)
        cut = visit(blk, n_carry, cont)
        if cont and 0 <= cut < blk.ids.size:
            carry, base = blk.data[int(blk.starts[cut]) :], int(blk.pos[cut])
            n_carry = blk.ids.size - cut
        else:
            carry, base, n_carry = b"", blk.open_pos if cont else 0, 0


# Counting and scoring.
def _merge(table: tuple[np.ndarray, np.ndarray], pending: list[np.ndarray]) -> tuple:
    keys = np.concatenate([table[0], *pending])
    weights = np.concatenate([table[1], np.ones(keys.size - table[0].size, dtype=np.int64)])
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv.reshape(-1), weights=weights).astype(np.int64)


class _Tally:
    """Counting state: unigram counts by id, pair tables by width, pending raw pair keys."""

    def __init__(self, vocab: _Vocab, max_vocab_size: int | None) -> None:
        self.vocab, self.max_vocab_size = vocab, max_vocab_size
        self.uni = np.zeros(0, dtype=np.int64)
        self.tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.pending: dict[int, list[np.ndarray]] = {}
        self.held = self.tokens = 0  # raw keys pending, tokens counted
        self.dirty, self.min_reduce = False, 1

    def visit(self, blk: _Block, n_prefix: int, open_end: bool) -> int:
        new = blk.ids[n_prefix:]
        if len(self.vocab.words) > self.uni.size:
            self.uni = np.append(
                self.uni, np.zeros(len(self.vocab.words) - self.uni.size, np.int64)
            )
        self.uni += np.bincount(new[~self.vocab.connector(new)], minlength=self.uni.size)
        self.tokens += new.size
        width = blk.right - blk.left + 1
        for w in np.unique(width).tolist():
            sel = blk.left[width == w]
            self.pending.setdefault(w, []).append(_keys(blk.ids[sel[:, None] + np.arange(w)]))
            self.held += sel.size
        self.dirty = True
        if self.held > _merge_at(sum(k.size for k, _ in self.tables.values())):
            self.merge()
        return blk.tail  # carried: the pair it starts ends in the next block

    def merge(self) -> None:
        """Merge the pending keys; then gensim's max_vocab_size rule (utils.prune_vocab)."""
        for w, keys in self.pending.items():
            if keys:
                none = (_keys(np.zeros((0, w), np.int32)), np.zeros(0, np.int64))
                self.tables[w] = _merge(self.tables.get(w, none), keys)
                keys.clear()
        self.held, self.dirty = 0, False
        n = int(np.count_nonzero(self.uni)) + sum(k.size for k, _ in self.tables.values())
        if self.max_vocab_size and n > self.max_vocab_size:
            keep = self.min_reduce
            self.uni = np.where(self.uni >= keep, self.uni, 0)
            self.tables = {w: (k[c >= keep], c[c >= keep]) for w, (k, c) in self.tables.items()}
            self.min_reduce += 1


def _merge_at(table_size: int) -> int:
    """Raw pair keys held before a merge: amortised, the table is sorted O(log) times."""
    return max(_MERGE_AT, table_size)


def count_phrases(
    paths: PathsLike,
    *,
    connector_words: Iterable[str] = (),
    max_vocab_size: int | None = MAX_VOCAB_SIZE,
    max_line_tokens: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    stats: CorpusStats | None = None,
) -> PhraseCounts:
    """Unigram and candidate-pair counts of the corpus in one streaming pass (module doc).
    An empty corpus is a ValueError naming it."""
    for name, v in (("max_line_tokens", max_line_tokens), ("max_vocab_size", max_vocab_size)):
        if v is not None and v < 1:
            raise ValueError(f"{name} must be >= 1 or None, got {v}")
    files = resolve_paths(paths)
    tally = _Tally(_Vocab(connector_words), max_vocab_size)
    _walk(files, tally.vocab, max_line_tokens, tally.visit, chunk_bytes, stats)
    if stats is not None:
        stats.tokens += tally.tokens
    if tally.tokens == 0:
        raise ValueError(f"corpus {describe(files)} is empty: it holds no tokens")
    if tally.dirty:
        tally.merge()
    t = tally
    return PhraseCounts(t.vocab, t.uni, t.tables, t.tokens, max_line_tokens, t.min_reduce)


def _score(scoring: str, ca, cb, cab, min_count: int, tokens: int, len_vocab: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if scoring == "word2phrase":  # word2phrase.c, in C float (its `real`)
            f = np.float32
            return (cab - min_count).astype(f) / ca.astype(f) / cb.astype(f) * f(tokens)
        if scoring == "original":  # gensim.models.phrases.original_scorer
            return (cab - min_count) / (ca * cb).astype(np.float64) * len_vocab
        n = float(tokens)  # gensim.models.phrases.npmi_scorer
        pab = cab / n
        s = np.log(pab / ((ca / n) * (cb / n))) / -np.log(pab)
        return np.where(cab >= min_count, s, -np.inf)


def score_phrases(
    counts: PhraseCounts,
    min_count: int = 5,
    threshold: float = 100.0,
    scoring: str = "word2phrase",
    delimiter: str = "_",
) -> PhraseModel:
    """The candidates whose score > threshold (module doc for the scorings)."""
    _check(min_count, threshold, scoring, delimiter)
    thr = np.float32(threshold) if scoring == "word2phrase" else threshold
    keys, scores = {}, {}
    for w, (k, cab) in counts.pairs.items():
        rows = k.view(np.int32).reshape(-1, w)
        ca, cb = counts.unigrams[rows[:, 0]], counts.unigrams[rows[:, -1]]
        s = _score(scoring, ca, cb, cab, min_count, counts.tokens, counts.len_vocab)
        hit = (s > thr) & (ca > 0) & (cb > 0) & (cab > 0)
        keys[w], scores[w] = k[hit], s[hit].astype(np.float64)
    return PhraseModel(counts, keys, scores, delimiter)


def find_phrases(
    paths: PathsLike,
    min_count: int = 5,
    threshold: float = 100.0,
    scoring: str = "word2phrase",
    delimiter: str = "_",
    max_vocab_size: int | None = MAX_VOCAB_SIZE,
    connector_words: Iterable[str] = (),
    max_line_tokens: int | None = None,
) -> dict[str, float]:
    """The corpus's phrases and their scores, best first (one pass; module doc)."""
    _check(min_count, threshold, scoring, delimiter)
    counts = count_phrases(
        paths,
        connector_words=connector_words,
        max_vocab_size=max_vocab_size,
        max_line_tokens=max_line_tokens,
    )
    return score_phrases(counts, min_count, threshold, scoring, delimiter).phrases()


# Rewriting.
def _greedy(hit: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Joined candidates, left to right without overlap: in each run of detected candidates
    that share tokens, the 1st, 3rd, ... (gensim's analyze_sentence, word2phrase's pb = 0)."""
    linked = np.zeros(hit.size, dtype=bool)
    linked[1:] = (left[1:] == right[:-1]) & hit[:-1]
    idx = np.arange(hit.size)
    run_start = np.maximum.accumulate(np.where(hit & ~linked, idx, 0))
    return hit & ((idx - run_start) % 2 == 0)


class _Writer:
    """Rewriting state: the output file and what was written."""

    def __init__(self, model: PhraseModel, out) -> None:
        self.model, self.out, self.delim = model, out, model.delimiter.encode("utf-8")
        self.done = {"tokens_in": 0, "tokens_out": 0, "joins": 0}

    def visit(self, blk: _Block, n_prefix: int, open_end: bool) -> int:
        left, right = blk.left, blk.right
        hit = np.zeros(left.size, dtype=bool)
        width = right - left + 1
        for w, keys in self.model.keys.items():
            sel = np.flatnonzero(width == w)
            if sel.size and keys.size:
                q = _keys(blk.ids[left[sel, None] + np.arange(w)])
                hit[sel] = keys[np.minimum(np.searchsorted(keys, q), keys.size - 1)] == q
        taken = _greedy(hit, left, right)
        cut = blk.ids.size  # unless the open line's last word may still start a phrase:
        if open_end and blk.tail >= 0 and not np.any(right[taken] == blk.tail):
            cut = blk.tail
        end = int(blk.starts[cut]) if cut < blk.ids.size else len(blk.data)
        n = right[taken] - left[taken]  # the gaps after tokens t of each joined phrase
        t = np.repeat(left[taken] - np.cumsum(n) + n, n) + np.arange(n.sum())
        gap0, gap1 = (blk.starts[t] + blk.lengths[t]).tolist(), blk.starts[t + 1].tolist()
        pieces = zip([0, *gap1], [*gap0, end], strict=True)
        self.out.write(self.delim.join([blk.data[a:b] for a, b in pieces]))
        self.done["tokens_in"] += cut  # carried tokens are written with the next block
        self.done["tokens_out"] += cut - int(n.sum())
        self.done["joins"] += int(taken.sum())
        return cut


def apply_phrases(
    model: PhraseModel,
    paths: PathsLike,
    output: str | os.PathLike,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> dict:
    """Write the corpus with the model's phrases joined (module doc) to ``output``,
    atomically. Returns ``{"tokens_in", "tokens_out", "joins"}``."""
    target = Path(output)
    tmp = target.with_name(target.name + ".tmp")
    suffix = target.suffix.lower()
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix, open)
    try:
        with opener(tmp, "wb") as out:
            writer = _Writer(model, out)
            counts = model.counts
            _walk(paths, counts.vocab, counts.max_line_tokens, writer.visit, chunk_bytes)
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and e.errno and str(e.filename) in ("None", str(tmp)):
            raise OSError(e.errno, f"cannot write: {e.strerror or e}", str(target)) from e
        raise
    return writer.done


def phrase_corpus(
    paths: PathsLike,
    output: str | os.PathLike,
    passes: int = 1,
    *,
    min_count: int = 5,
    threshold: float = 100.0,
    scoring: str = "word2phrase",
    delimiter: str = "_",
    connector_words: Iterable[str] = (),
    max_vocab_size: int | None = MAX_VOCAB_SIZE,
    max_line_tokens: int | None = None,
) -> dict:
    """``passes`` rounds of count, score and rewrite, each on the previous round's output
    (intermediate files ``OUTPUT.passK.tmp``, removed at the end). Returns a summary: per
    pass the phrases found, tokens in and out, joins and seconds."""
    _check(min_count, threshold, scoring, delimiter)
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    files = resolve_paths(paths)
    target = Path(output)
    if any(target.resolve() == f.resolve() for f in files):
        raise ValueError(f"the output {target} is an input file; choose another name")
    reading = {"connector_words": tuple(connector_words), "max_vocab_size": max_vocab_size}
    reading["max_line_tokens"] = max_line_tokens
    src, report, temps = files, [], []
    try:
        for k in range(1, passes + 1):
            t0 = time.perf_counter()
            stats = CorpusStats()
            counts = count_phrases(src, stats=stats, **reading)
            model = score_phrases(counts, min_count, threshold, scoring, delimiter)
            t1 = time.perf_counter()
            dst = target if k == passes else target.with_name(f"{target.name}.pass{k}.tmp")
            if dst != target:
                temps.append(dst)
            done = apply_phrases(model, src, dst)
            t2 = time.perf_counter()
            seconds = {"count": round(t1 - t0, 3), "rewrite": round(t2 - t1, 3)}
            report.append({"pass": k, "phrases": len(model), **done, "seconds": seconds})
            if stats.replacements:
                report[-1]["invalid_utf8_replaced"] = stats.replacements
            src = [dst]
    finally:
        for p in temps:
            with contextlib.suppress(OSError):
                p.unlink()
    return {"tokens_in": report[0]["tokens_in"], "tokens_out": done["tokens_out"], "passes": report}
