"""Word ids -> fixed-shape batches of (centre, contexts, mask) examples, on the host.

:func:`epoch_batches` (numpy, vectorised, streaming over the memory-mapped token stream of
:mod:`sgjax.encode`) draws one epoch, word2vec-exact: subsampling with
:func:`sgjax.vocab.keep_probs` first (discarded tokens are removed before windowing, as
word2vec.c and gensim do), then per kept centre a window b ~ U{1..window}; contexts are the
kept tokens within b positions in the same sentence (a line, or a ``max_line_tokens`` piece
of it); centres without any context are dropped. Batches have one fixed shape; the last is
padded (``mask`` all False, ``center`` 0), never dropped. The output layer's fields
(negatives, Huffman paths) are added later, on the device
(:func:`sgjax.model.complete`).

Record of a batch (``C = 2 * window``): ``center`` (B,) int32, ``context`` (B, C) int32
(masked slots hold 0), ``mask`` (B, C) bool, and ``words`` () int32: the corpus words
(in-vocabulary tokens before subsampling, word2vec.c's ``word_count``) the batch accounts
for: every token from after the previous batch's last centre to its own last centre,
the epoch's tail in the last batch. ``words`` sums to ``encoded.n_tokens`` over an epoch,
so a trainer reports words/s and decays the learning rate by words processed like
word2vec, on the host or inside a scan. (``words`` is per batch, not per example: leave it
out of what is vmapped over examples.) The same record serves CBOW: ``center`` is the
target w_O and ``context`` its context set.

Shuffling (``shuffle=True``, config ``data.shuffle``): the epoch reads the sentences in a
random permutation (:func:`sentence_order`, seeded by ``(seed, epoch)`` on a stream of its
own, so the subsampling and window draws are the same generator as without it), since a
corpus in a non-random order (sorted dictionaries, article-ordered dumps, concatenated
sources) costs vector quality when read in order; word2vec.c and gensim read the file in
order, as ``shuffle=False`` does, bit for bit as before the option existed. Cost: the
permutation (int32 per sentence; int64 past 2^31 sentences) and the sentence offsets (read
once per epoch, int64 per sentence) in memory, no copy of the corpus; blocks of about
``chunk_tokens`` tokens of permuted sentences are gathered by random reads from the
(memory-mapped) token stream and windowed as a sequential block is.

Windows are generated on the host with numpy because, on a CPU, that is faster than a
jitted JAX generator of the same algorithm (see BENCHMARKS.md, "Data pipeline"). Run
:func:`epoch_batches` under :func:`prefetch` (a background thread; numpy releases the GIL)
and stack several batches per compiled call.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from sgjax.corpus import prefetch
from sgjax.encode import EncodedCorpus
from sgjax.sentences import _shuffled_blocks, _stream_blocks, sentence_order
from sgjax.vocab import Vocab, keep_probs

__all__ = ["epoch_batches", "epoch_steps", "prefetch", "sentence_order"]

DEFAULT_CHUNK_TOKENS = 1 << 16  # tokens per vectorised step (fastest: 2^15..2^18, in cache)


@functools.lru_cache(maxsize=8)
def _mask_table(window: int) -> np.ndarray:
    """Row ``l * (w + 1) + r``: the mask of context slots ``-w..-1, 1..w`` reaching l words
    left and r words right. ((w + 1)^2, 2w) bool."""
    reach = np.arange(window + 1)
    offset = np.r_[-window:0, 1 : window + 1]
    t = np.where(offset < 0, -offset <= reach[:, None, None], offset <= reach[None, :, None])
    return t.reshape((window + 1) ** 2, 2 * window)


def _windows(
    tok: np.ndarray,
    offs: np.ndarray,
    keep: np.ndarray,
    window: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Examples of one block of whole sentences (``offs``: local sentence offsets).

    Returns ``center`` (G,), ``context`` (G, 2w), ``mask`` (G, 2w), the block positions
    of the centres (G,) and their effective windows b (G,) int8. Subsampling first, then
    b ~ U{1..w} per kept centre, and the context slots ``-w..-1, 1..w`` masked to the kept
    tokens at distance <= b inside the sentence.
    """
    kidx, klen, b = _draws(tok, offs, keep, window, rng)
    kt = tok[kidx]
    m = kt.size
    if m == 0:
        empty = np.zeros((0, 2 * window), np.int32)
        return kt, empty, empty.astype(bool), kidx, np.zeros(0, np.int8)
    klen = klen.astype(np.int32)
    start = np.zeros(klen.size, dtype=np.int32)
    np.cumsum(klen[:-1], out=start[1:])
    p = np.arange(m, dtype=np.int32) - np.repeat(start, klen)  # position in sentence
    rem = np.repeat(klen - 1, klen) - p  # kept tokens after it in its sentence
    code = np.minimum(b, p) * (window + 1) + np.minimum(b, rem)  # (left reach, right reach)
    pad = np.zeros(m + 2 * window, dtype=np.int32)
    pad[window : window + m] = kt
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * window + 1)
    context = win[:, np.r_[0:window, window + 1 : 2 * window + 1]]  # one copy, (m, 2w)
    mask = np.take(_mask_table(window), code, axis=0)  # (6x faster than [code] here)
    context *= mask
    return kt, context, mask, kidx, b.astype(np.int8)


def _draws(
    tok: np.ndarray, offs: np.ndarray, keep: np.ndarray, window: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One block's random draws, in order: subsampling (the kept positions and their count
    per sentence, sentences left with fewer than 2 dropped: their centres have no context),
    then b ~ U{1..w} per kept centre (int32; none drawn when none is kept)."""
    u = rng.random(tok.size, dtype=np.float32)
    kidx = np.flatnonzero(u < np.take(keep, tok))  # subsampling: the kept tokens' positions
    klen = np.diff(np.searchsorted(kidx, offs))  # kept tokens per sentence
    # A centre has a context word iff its sentence kept >= 2 tokens (b >= 1): drop the rest
    # before windowing (their removal changes no other window: windows stay in sentences).
    multi = klen >= 2
    if not multi.all():
        kidx = kidx[np.repeat(multi, klen)]
        klen = klen[multi]
    if kidx.size == 0:
        return kidx, klen, np.zeros(0, np.int32)
    return kidx, klen, rng.integers(1, window + 1, size=kidx.size, dtype=np.int32)


def _pad_rows(parts: list[dict[str, np.ndarray]], B: int) -> dict[str, np.ndarray]:
    out = {}
    for name in parts[0]:
        rows = np.concatenate([p[name] for p in parts]) if len(parts) > 1 else parts[0][name]
        full = np.zeros((B,) + rows.shape[1:], dtype=rows.dtype)
        full[: rows.shape[0]] = rows
        out[name] = full
    return out


def epoch_batches(
    encoded: EncodedCorpus,
    vocab: Vocab,
    *,
    window: int,
    sample: float,
    batch_size: int,
    seed: int,
    epoch: int,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    window_buckets: bool = False,
    shuffle: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of fixed-shape batches (see the module docstring for the record),
    deterministic given ``(seed, epoch)`` (and ``chunk_tokens``). Streams over the
    (memory-mapped) token stream about ``chunk_tokens`` tokens at a time.

    ``shuffle``: read the sentences in the order :func:`sentence_order` draws for
    ``(seed, epoch)`` instead of the file's; ``words`` then counts along that order and
    still sums to ``encoded.n_tokens``. False: the file's order (word2vec.c, gensim).

    ``window_buckets``: the same examples (the same random draws), grouped by their
    effective window b: rows ``[(b-1) B/w, b B/w)`` of every batch hold centres whose
    window is b, so only context slots ``w-b .. w+b-1`` (offsets -b..-1, 1..b) can be set
    there and a step may compute each group on those 2b slots alone
    (:func:`window_bucket_slices`): on average (w+1)/2w of the padded work. A centre waits in
    its group's queue until every group can fill its share of a batch, so the order
    departs from the stream's by a few batches at most; the last batches of the epoch are
    padded per group. ``batch_size`` must be a multiple of ``window``."""
    _check(encoded, vocab, window, batch_size, window_buckets)
    blocks = _example_blocks(encoded, vocab, window, sample, seed, epoch, chunk_tokens, shuffle)
    assemble = _bucketed if window_buckets else _sequential
    batches = assemble(blocks, batch_size, window)
    held: dict[str, np.ndarray] | None = None  # the latest batch, yielded once a next exists
    seen = 0
    for batch in batches:
        if held is not None:
            yield _finish(held)
        held = batch
        seen += int(batch["words"].sum())
    if held is None:  # no example at all: one padded batch carries the epoch's words
        held = _pad_rows([_empty_rows(window)], batch_size)
    yield _finish(held, encoded.n_tokens - seen)  # the words after the last centre


_FIELDS = ("center", "context", "mask", "words")


def _empty_rows(window: int) -> dict[str, np.ndarray]:
    return {
        "center": np.zeros(0, np.int32),
        "context": np.zeros((0, 2 * window), np.int32),
        "mask": np.zeros((0, 2 * window), bool),
        "words": np.zeros(0, np.int32),
        "b": np.zeros(0, np.int8),
    }


def epoch_steps(
    encoded: EncodedCorpus,
    vocab: Vocab,
    *,
    window: int,
    sample: float,
    batch_size: int,
    seed: int,
    epoch: int,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    window_buckets: bool = False,
    shuffle: bool = False,
) -> int:
    """How many batches :func:`epoch_batches` yields with the same arguments, from the same
    random draws, without building the examples: the kept centres counted by effective
    window (a schedule's length, sgjax.examples)."""
    _check(encoded, vocab, window, batch_size, window_buckets)
    keep, rng, blocks = _epoch_blocks(encoded, vocab, sample, seed, epoch, chunk_tokens, shuffle)
    per_b = np.zeros(window + 1, np.int64)  # kept centres with a context, by window b
    try:
        for _, tok, offs in blocks:
            per_b += np.bincount(_draws(tok, offs, keep, window, rng)[2], minlength=window + 1)
    finally:
        blocks.close()
    if window_buckets:  # _bucketed: full batches while every queue fills its share, then
        share = batch_size // window  # the leftovers, padded
        full = int(per_b[1:].min()) // share
        n = full + -(-int((per_b[1:] - full * share).max()) // share)
    else:
        n = -(-int(per_b.sum()) // batch_size)
    return max(n, 1)  # (no example at all: one padded batch)


def _check(
    encoded: EncodedCorpus, vocab: Vocab, window: int, batch_size: int, window_buckets: bool
) -> None:
    if not 1 <= window <= 127:
        raise ValueError(f"window must be in 1..127, got {window}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if window_buckets and batch_size % window:
        raise ValueError(
            f"window_buckets needs batch_size to be a multiple of window={window}, got {batch_size}"
        )
    if encoded.vocab_size and encoded.vocab_size != len(vocab):
        raise ValueError(
            f"the corpus was encoded with a vocabulary of {encoded.vocab_size} words, "
            f"not this one of {len(vocab)}"
        )


def _epoch_blocks(
    encoded: EncodedCorpus,
    vocab: Vocab,
    sample: float,
    seed: int,
    epoch: int,
    chunk_tokens: int,
    shuffle: bool,
) -> tuple[np.ndarray, np.random.Generator, Iterator]:
    """An epoch's keep probabilities, random generator (subsampling and windows) and
    blocks of whole sentences (the file's order, or with ``shuffle`` the permuted one)."""
    keep = keep_probs(vocab, sample).astype(np.float32)
    rng = np.random.default_rng([seed, epoch])  # subsampling and windows, shuffled or not
    if shuffle:
        order = sentence_order(encoded.n_sentences, seed, epoch)
        return keep, rng, _shuffled_blocks(encoded, order, chunk_tokens)
    return keep, rng, _stream_blocks(encoded, chunk_tokens)


def _example_blocks(
    encoded: EncodedCorpus,
    vocab: Vocab,
    window: int,
    sample: float,
    seed: int,
    epoch: int,
    chunk_tokens: int,
    shuffle: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """The epoch's examples, a block of whole sentences at a time, in stream order (the
    file's, or with ``shuffle`` the permuted stream of :func:`sentence_order`): rows
    ``center``, ``context``, ``mask``, ``words`` (the tokens from after the previous centre
    to this one) and ``b`` (the effective window)."""
    keep, rng, blocks = _epoch_blocks(encoded, vocab, sample, seed, epoch, chunk_tokens, shuffle)
    last_end = 0  # stream position after the previous centre
    try:
        for a, tok, offs in blocks:
            center, context, mask, pos, b = _windows(tok, offs, keep, window, rng)
            if center.size == 0:
                continue
            ends = pos + (a + 1)
            words = np.diff(ends, prepend=last_end).astype(np.int32)
            last_end = int(ends[-1])
            yield {"center": center, "context": context, "mask": mask, "words": words, "b": b}
    finally:
        blocks.close()


def _sequential(
    blocks: Iterator[dict[str, np.ndarray]], B: int, window: int
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of B consecutive examples; the last one padded."""
    carry: list[dict[str, np.ndarray]] = []  # rows (< B in total) waiting for a batch
    carried = 0
    for rows in blocks:
        rows = {name: rows[name] for name in _FIELDS}
        g = rows["center"].size
        start = 0
        if carried:
            need = min(B - carried, g)
            carry.append({name: r[:need] for name, r in rows.items()})
            carried += need
            start = need
            if carried < B:
                continue
            yield {name: np.concatenate([c[name] for c in carry]) for name in _FIELDS}
            carry, carried = [], 0
        while start + B <= g:
            yield {name: r[start : start + B] for name, r in rows.items()}
            start += B
        if start < g:
            carry = [{name: r[start:] for name, r in rows.items()}]
            carried = g - start
    if carried:
        yield _pad_rows(carry, B)


def _bucketed(
    blocks: Iterator[dict[str, np.ndarray]], B: int, window: int
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of B / window examples of each effective window b = 1..window, in that
    order (``epoch_batches(window_buckets=True)``). Each b has a queue in stream order; a
    batch is cut whenever every queue holds its share. The queues' leftovers at the end of
    the epoch go into padded batches, each group padded to its share."""
    Bb = B // window
    queues: list[list[dict[str, np.ndarray]]] = [[] for _ in range(window)]
    qlen = np.zeros(window, np.int64)
    for rows in blocks:
        order = np.argsort(rows["b"], kind="stable")
        counts = np.bincount(rows["b"], minlength=window + 1)[1:]
        for k, idx in enumerate(np.split(order, np.cumsum(counts)[:-1])):
            if idx.size:
                queues[k].append({name: rows[name][idx] for name in _FIELDS})
        qlen += counts
        n = int(qlen.min()) // Bb
        if n == 0:
            continue
        take = n * Bb
        groups = []
        for k in range(window):
            q = _concat(queues[k])
            groups.append({name: r[:take].reshape(n, Bb, *r.shape[1:]) for name, r in q.items()})
            queues[k] = [{name: r[take:] for name, r in q.items()}] if qlen[k] > take else []
        qlen -= take
        stacked = {name: np.concatenate([g[name] for g in groups], axis=1) for name in _FIELDS}
        for i in range(n):
            yield {name: r[i] for name, r in stacked.items()}
    if qlen.max() == 0:
        return
    left = [_concat(q) if q else None for q in queues]
    for i in range(-(-int(qlen.max()) // Bb)):
        parts = [
            _pad_rows([{name: r[i * Bb : (i + 1) * Bb] for name, r in q.items()}], Bb)
            if q is not None
            else _pad_rows([_empty_rows(window)], Bb)
            for q in left
        ]
        yield {name: np.concatenate([p[name] for p in parts]) for name in _FIELDS}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _finish(rows: dict[str, np.ndarray], extra: int = 0) -> dict[str, np.ndarray]:
    """The yielded batch: the rows' fields, and their words summed (plus ``extra``)."""
    out = {name: rows[name] for name in ("center", "context", "mask")}
    out["words"] = np.asarray(int(rows["words"].sum()) + extra, dtype=np.int32)
    return out
