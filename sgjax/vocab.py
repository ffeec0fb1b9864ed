"""Vocabulary: counting, min_count, subsampling probabilities, noise distribution.

The vocabulary is built in one streaming pass (:func:`build_vocab`): memory grows with the
number of distinct words, never with the corpus (``max_unique_words`` bounds even that, with
word2vec.c's / gensim's pruning). Words are sorted by descending count; ties are broken as
gensim 4 does (``np.lexsort((-first_seen, -count))``: among equal counts, the word seen
*later* in the corpus comes first), so word ids equal gensim's on the same corpus.

``max_vocab_size`` has gensim's ``max_final_vocab`` semantics: it raises the effective
min_count to one more than the count of the (max_vocab_size + 1)-th most frequent word, so
the result may hold fewer words than the cap (ties are never split).

Files are word2vec.c's ``-save-vocab`` text: ``word count`` per line, with the C tool's
sentence marker ``</s>`` first (so word2vec.c ``-read-vocab`` treats it as the end of
sentence, as it expects); :func:`load_vocab` drops a leading ``</s>``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sgjax import ctokens
from sgjax.corpus import CorpusStats, PathsLike, describe, iter_chunks, resolve_paths

log = logging.getLogger(__name__)

SENTENCE_MARKER = "</s>"
_COUNT_CHUNK_BYTES = 2 << 20  # tokens of one chunk as bytes objects: about 20 MB


@dataclass(frozen=True, eq=False)
class Vocab:
    """Words by descending count. ``index[word]`` is the word's id (its row in W).

    ``raw_tokens`` counts every token of the corpus (kept or not), ``min_count`` is the
    effective threshold that was applied.
    """

    words: tuple[str, ...]
    counts: np.ndarray  # (V,) int64, descending
    index: dict[str, int] = field(default_factory=dict, repr=False)
    raw_tokens: int = 0
    min_count: int = 1

    def __post_init__(self) -> None:
        words = tuple(self.words)
        counts = np.asarray(self.counts, dtype=np.int64).reshape(-1)
        if len(words) != counts.shape[0]:
            raise ValueError(f"{len(words)} words but {counts.shape[0]} counts")
        if np.any(np.diff(counts) > 0):
            raise ValueError("vocabulary counts must be in descending order")
        counts.setflags(write=False)
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "counts", counts)
        if not self.index:
            object.__setattr__(self, "index", {w: i for i, w in enumerate(words)})
        if len(self.index) != len(words):
            raise ValueError("vocabulary words must be unique")

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self.words == other.words and np.array_equal(self.counts, other.counts)

    __hash__ = None  # type: ignore[assignment]

    @property
    def total(self) -> int:
        """Sum of the kept words' counts: the corpus length word2vec trains on."""
        return int(self.counts.sum())

    def fingerprint(self) -> str:
        """sha256 of the words and counts (identifies the vocabulary in caches)."""
        h = hashlib.sha256()
        h.update("\n".join(self.words).encode("utf-8"))
        h.update(b"\0")
        h.update(self.counts.astype("<i8").tobytes())
        return h.hexdigest()


def count_words(
    paths: PathsLike,
    max_unique_words: int | None = None,
    stats: CorpusStats | None = None,
    chunk_bytes: int = _COUNT_CHUNK_BYTES,
) -> tuple[dict[bytes, int], int]:
    """Counts of every word (as UTF-8 bytes, in order of first occurrence) in one pass.

    With ``max_unique_words``, whenever more distinct words are held after a chunk the
    rarest are pruned as gensim's ``max_vocab_size`` does (drop counts < min_reduce, then
    min_reduce += 1; gensim checks after every sentence).
    Returns ``(counts, min_reduce)``: words with count < min_reduce - 1 may have been lost.
    Counted in C where :mod:`sgjax.ctokens` is built, else with ``bytes.split``.
    """
    chunks = iter_chunks(paths, chunk_bytes=chunk_bytes, stats=stats)
    lib = ctokens.library()
    if lib is not None:
        return ctokens.count_words(lib, chunks, max_unique_words, stats)
    counter: Counter[bytes] = Counter()
    min_reduce = 1
    for chunk in chunks:
        toks = chunk.data.split()
        if stats is not None:
            stats.tokens += len(toks)
        counter.update(toks)
        if max_unique_words is not None and len(counter) > max_unique_words:
            counter = Counter({w: c for w, c in counter.items() if c >= min_reduce})
            min_reduce += 1
    return counter, min_reduce  # a dict (no copy: it may hold millions of words)


def effective_min_count(counts: np.ndarray, min_count: int, max_vocab_size: int | None) -> int:
    """gensim's ``max_final_vocab`` rule: ``max(min_count, c_(max_vocab_size+1) + 1)`` with
    ``c_(k)`` the k-th largest count (1 when there are at most max_vocab_size words)."""
    if max_vocab_size is None or max_vocab_size >= len(counts):
        return min_count
    kth = np.partition(counts, len(counts) - max_vocab_size - 1)[len(counts) - max_vocab_size - 1]
    return max(min_count, int(kth) + 1)


def _select(
    counts: dict, min_count: int, max_vocab_size: int | None
) -> tuple[list, np.ndarray, int, int]:
    """The kept words (sorted, see the module docstring), their counts, the effective
    min_count and the total of all counts."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if max_vocab_size is not None and max_vocab_size < 1:
        raise ValueError(f"max_vocab_size must be >= 1 or None, got {max_vocab_size}")
    c = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    eff = effective_min_count(c, min_count, max_vocab_size)
    kept = np.flatnonzero(c >= eff)
    order = kept[np.lexsort((-kept, -c[kept]))]
    rank = np.full(c.size, -1, dtype=np.int64)
    rank[order] = np.arange(order.size)
    words: list = [None] * order.size
    for w, r in zip(counts, rank.tolist(), strict=True):
        if r >= 0:
            words[r] = w
    return words, c[order], eff, int(c.sum())


def _make_vocab(words: list, counts: np.ndarray, eff: int, raw_tokens: int) -> Vocab:
    if words and isinstance(words[0], bytes):
        words = [w.decode("utf-8") for w in words]
    return Vocab(tuple(words), counts, raw_tokens=raw_tokens, min_count=eff)


def vocab_from_counts(
    counts: dict[bytes, int] | dict[str, int],
    min_count: int = 5,
    max_vocab_size: int | None = None,
    raw_tokens: int | None = None,
) -> Vocab:
    """Apply min_count and max_vocab_size to first-occurrence-ordered counts and sort."""
    words, c, eff, total = _select(counts, min_count, max_vocab_size)
    return _make_vocab(words, c, eff, total if raw_tokens is None else raw_tokens)


def build_vocab(
    paths: PathsLike,
    min_count: int = 5,
    max_vocab_size: int | None = None,
    max_line_tokens: int = 1000,
    *,
    max_unique_words: int | None = None,
    stats: CorpusStats | None = None,
    chunk_bytes: int = _COUNT_CHUNK_BYTES,
) -> Vocab:
    """Count the corpus in one streaming pass and keep words with count >= min_count
    (raised by ``max_vocab_size``, see the module docstring).

    ``max_line_tokens`` does not change counts (splitting a line keeps its tokens); it is
    accepted so that every corpus reader takes the same settings. Errors name the file(s):
    an empty corpus, or a vocabulary left empty by ``data.min_count``.
    """
    if max_line_tokens < 1:
        raise ValueError(f"max_line_tokens must be >= 1, got {max_line_tokens}")
    files = resolve_paths(paths)
    stats = CorpusStats() if stats is None else stats
    counts, min_reduce = count_words(files, max_unique_words, stats, chunk_bytes)
    if stats.replacements:
        log.warning("corpus: %s", stats.report())
    if stats.tokens == 0:
        raise ValueError(f"corpus {describe(files)} is empty: it holds no tokens")
    words, c, eff, _ = _select(counts, min_count, max_vocab_size)
    top = max(counts.values())
    del counts  # free the counter (all distinct words) before the vocabulary is built
    vocab = _make_vocab(words, c, eff, stats.tokens)
    del words
    if len(vocab) == 0:
        raise ValueError(
            f"the vocabulary of corpus {describe(files)} is empty: no word occurs at least "
            f"{vocab.min_count} times (the most frequent occurs {top} times); lower "
            f"data.min_count (now {min_count})"
            + (f" or raise data.max_vocab_size (now {max_vocab_size})" if max_vocab_size else "")
        )
    if min_reduce > 1 and vocab.min_count < min_reduce:
        log.warning(
            "max_unique_words=%d pruned words with count < %d while counting; counts of "
            "words near min_count=%d are lower bounds",
            max_unique_words,
            min_reduce - 1,
            vocab.min_count,
        )
    return vocab


def save_vocab(vocab: Vocab, path: str | os.PathLike, sentences: int = 0) -> None:
    """Write word2vec.c's ``-save-vocab`` format: ``</s> sentences`` then ``word count``."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{SENTENCE_MARKER} {int(sentences)}\n")
        f.writelines(
            f"{w} {int(c)}\n" for w, c in zip(vocab.words, vocab.counts.tolist(), strict=True)
        )


def load_vocab(path: str | os.PathLike) -> Vocab:
    """Read a ``word count`` file (ours or word2vec.c's ``-save-vocab``); a leading ``</s>``
    is dropped. Words are re-sorted by descending count (stable: file order among ties)."""
    path = Path(path)
    words: list[str] = []
    counts: list[int] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid UTF-8 at byte {e.start}") from None
            parts = line.split(" ")
            if len(parts) != 2 or not parts[0] or any(ch in parts[0] for ch in " \t\r\n\x0b\x0c"):
                raise ValueError(f"{path}:{lineno}: expected 'word count', got {line!r}")
            try:
                c = int(parts[1])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: count is not an integer: {line!r}") from None
            if c < 0:
                raise ValueError(f"{path}:{lineno}: negative count {c}")
            if lineno == 1 and parts[0] == SENTENCE_MARKER:
                continue
            words.append(parts[0])
            counts.append(c)
    if not words:
        raise ValueError(f"vocabulary file {path} holds no words")
    c = np.asarray(counts, dtype=np.int64)
    order = np.argsort(-c, kind="stable")
    if len(set(words)) != len(words):
        dup = next(w for w, n in Counter(words).items() if n > 1)
        raise ValueError(f"vocabulary file {path}: word {dup!r} appears twice")
    return Vocab(tuple(words[i] for i in order.tolist()), c[order], raw_tokens=int(c.sum()))


def keep_probs(vocab: Vocab, sample: float) -> np.ndarray:
    """Subsampling: P(keep a token of w) = min(1, (sqrt(f(w)/s) + 1) * s / f(w)),
    f(w) = count(w) / total, s = ``sample`` (PAPER.md, "What the reference C tool ... add");
    ``sample = 0`` keeps everything. (V,) float64."""
    if sample < 0:
        raise ValueError(f"sample must be >= 0, got {sample}")
    if sample == 0:
        return np.ones(len(vocab), dtype=np.float64)
    f = vocab.counts / max(vocab.total, 1)
    with np.errstate(divide="ignore"):
        p = (np.sqrt(f / sample) + 1.0) * sample / f
    return np.minimum(p, 1.0)


def noise_distribution(vocab: Vocab, ns_exponent: float = 0.75) -> np.ndarray:
    """Negative-sampling noise P_n(w) = count(w)^ns_exponent / sum (PAPER.md). (V,) float64."""
    w = np.power(vocab.counts.astype(np.float64), ns_exponent)
    s = w.sum()
    if not s > 0:
        raise ValueError("noise distribution of an empty vocabulary")
    return w / s


def subsampled_total(vocab: Vocab, sample: float) -> float:
    """Expected tokens per epoch left after subsampling: sum_w count(w) * keep(w)."""
    return float(np.dot(vocab.counts, keep_probs(vocab, sample)))


def fixed_vocab(vocab_path: str | os.PathLike, paths: PathsLike) -> Vocab:
    """``data.vocab``: the words of a vocabulary file (``word count`` lines, as
    :func:`save_vocab` writes them), counted in this corpus (subsampling, the noise
    distribution and the Huffman tree follow this corpus) and sorted by that count
    (the file's order among ties). No ``min_count`` applies; words outside the file are
    dropped from the corpus. A word of the file that the corpus lacks keeps count 1 (the
    least that keeps its subsampling and noise weights finite) and trains only as noise."""
    given = load_vocab(vocab_path)
    files = resolve_paths(paths)
    stats = CorpusStats()
    counts, _ = count_words(files, stats=stats)
    c = np.array([counts.get(w.encode("utf-8"), 0) for w in given.words], dtype=np.int64)
    if not c.any():
        raise ValueError(
            f"none of the {len(given)} words of {vocab_path} occurs in corpus {describe(files)}"
        )
    c = np.maximum(c, 1)
    order = np.argsort(-c, kind="stable")
    return Vocab(tuple(given.words[i] for i in order), c[order], raw_tokens=stats.tokens)
