"""Corpus -> int32 token stream -> (centre, contexts, mask) examples -> fixed-shape batches.

Three stages, each vectorised (no per-token Python loop anywhere):

1. :func:`encode_corpus` tokenises byte chunks with numpy (:func:`sgjax.corpus.token_spans`)
   and maps each token to its word id through an open-addressing hash table keyed by the
   token's exact bytes (tokens of up to 24 bytes packed into three uint64 words, so lookups
   are exact, never probabilistic; longer tokens, rare in text, go through a dict). Words
   not in the vocabulary are dropped, as word2vec.c and gensim drop them. The stream and
   its sentence offsets are written as ``.npy`` files in ``cache_dir`` and memory-mapped,
   so a corpus larger than RAM works; a JSON manifest (corpus files' path, size and
   mtime, vocabulary fingerprint, settings, and its sha256) makes the next run reuse them.
2. :func:`epoch_batches` (host, numpy) draws one epoch, word2vec-exact: subsampling with
   :func:`sgjax.vocab.keep_probs` first (discarded tokens are removed before windowing, as
   word2vec.c and gensim do), then per kept centre a window b ~ U{1..window}; contexts are
   the kept tokens within b positions in the same sentence (a line, or a
   ``max_line_tokens`` piece of it); centres without any context are dropped. Batches have
   one fixed shape; the last is padded (``mask`` all False, ``center`` 0), never dropped.
3. :func:`complete_batch` (device, pure JAX, inside the compiled step) adds the output
   layer's fields of :mod:`sgjax.losses`' record: negatives drawn i.i.d. from
   count^ns_exponent (:func:`noise_table`, :func:`sample_negatives`) or Huffman paths.

Record of a batch (``C = 2 * window``): ``center`` (B,) int32, ``context`` (B, C) int32
(masked slots hold 0), ``mask`` (B, C) bool, and ``words`` () int32: the corpus words
(in-vocabulary tokens before subsampling, word2vec.c's ``word_count``) the batch accounts
for: every token from after the previous batch's last centre to its own last centre,
the epoch's tail in the last batch. ``words`` sums to ``encoded.n_tokens`` over an epoch,
so a trainer reports words/s and decays the learning rate by words processed like
word2vec, on the host or inside a scan. (``words`` is per batch, not per example: leave it
out of what is vmapped over examples.) The same record serves CBOW: ``center`` is the
target w_O and ``context`` its context set.

Where windows are generated: host numpy, by measurement. On this project's 2-core CPU
machine (``python scripts/bench_pipeline.py --compare-jax --jax-block B`` on realtext-v1:
2.96M encoded tokens, window 5, sample 1e-3, batch 1024, median of 3 epochs) this
generator produces 17-23M corpus tokens/s (13-18M examples/s, batches sliced and yielded);
a jitted JAX version of the same algorithm (cumsum + scatter compaction over fixed blocks
of B = 2^14..2^20 tokens, the token stream already on the device) runs at 4.7-6.8M
tokens/s on the XLA CPU backend (6.2M with the stream's transfer): numpy is 3-4x faster
on CPU, where the "device" is the host anyway. Not measured on a GPU (none in this task):
there the host path ships ~58 bytes per example (centre, 2w contexts, mask, words), about
0.8 GB/s at 13M examples/s, far below PCIe bandwidth, and its limit is the host's ~13M
examples/s per core; an accelerator that trains faster than that (a skip-gram step at
small N can) is better served by the jitted generator in ``scripts/bench_pipeline.py``
moved into the train step. Until then: run :func:`epoch_batches` under :func:`prefetch`
(a background thread; numpy releases the GIL) and stack several batches per compiled call.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import mmap
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.corpus import (
    DEFAULT_CHUNK_BYTES,
    CorpusStats,
    PathsLike,
    describe,
    iter_chunks,
    prefetch,
    resolve_paths,
    token_spans,
)
from sgjax.huffman import HuffmanTree, path_fields
from sgjax.params import ARCHITECTURES, OUTPUTS
from sgjax.vocab import Vocab, keep_probs, noise_distribution

log = logging.getLogger(__name__)

__all__ = [
    "EncodedCorpus",
    "NOISE_TOTAL",
    "NoiseSampler",
    "complete_batch",
    "device_tree",
    "encode_corpus",
    "epoch_batches",
    "noise_sampler",
    "noise_table",
    "prefetch",
    "sample_negatives",
    "window_bucket_slices",
]

# --------------------------------------------------------------------------------------------
# Exact token -> id lookup on byte keys.

_KEY_BYTES = 24  # tokens of up to 24 bytes are keyed exactly by three little-endian uint64
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_C = [
    np.uint64(x)
    for x in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)
]


def _token_keys(
    padded: bytes, n_bytes: int, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact keys of tokens of up to 24 bytes: ``k0`` (all tokens) = bytes 0..7,
    zero-filled past the end; ``long`` = indices of the tokens longer than 8 bytes and
    ``k12`` (len(long), 2) their bytes 8..15 and 16..23. Also returns the slot hash.
    ``padded`` is the data followed by at least 24 zero bytes."""
    # Every byte offset viewed as the start of an unaligned little-endian uint64.
    v = np.ndarray((n_bytes + 16,), dtype="<u8", buffer=padded, strides=(1,))
    k0 = v[starts]
    k0 &= _MASKS[np.minimum(lengths, 8)]
    h = lengths.astype(np.uint64)
    h *= _C[3]
    h ^= k0
    long = np.flatnonzero(lengths > 8)
    k12 = np.zeros((long.size, 2), dtype=np.uint64)
    if long.size:
        s, ln = starts[long], lengths[long]
        k12[:, 0] = v[s + 8] & _MASKS[np.clip(ln - 8, 0, 8)]
        k12[:, 1] = v[s + 16] & _MASKS[np.clip(ln - 16, 0, 8)]
        h[long] ^= k12[:, 0] * _C[1] ^ k12[:, 1] * _C[2]
    h *= _C[0]  # multiply-shift: the top bits depend on every input bit
    return k0, long, k12, h


class _ByteLookup:
    """Vocabulary word bytes -> id: open addressing (linear probing, load <= 1/2) on a
    multiply-shift hash; a probe matches only on the word's exact key (bytes and length),
    so the mapping is exact."""

    def __init__(self, vocab: Vocab) -> None:
        words = [w.encode("utf-8") for w in vocab.words]
        V = len(words)
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=V)
        self.long = {w: i for i, w in enumerate(words) if len(w) > _KEY_BYTES}
        short = np.flatnonzero(lengths <= _KEY_BYTES)
        buf = b" ".join(words[i] for i in short.tolist())
        ls = lengths[short]
        starts = np.zeros(short.size, dtype=np.int64)
        np.cumsum(ls[:-1] + 1, out=starts[1:])
        k0, long, k12, h = _token_keys(buf + bytes(_KEY_BYTES), len(buf), starts, ls)
        # Per word id: its key; long words (> 24 bytes) get length 0 and never match here.
        self.k0 = np.zeros(V, dtype=np.uint64)
        self.k0[short] = k0
        self.k12 = np.zeros((V, 2), dtype=np.uint64)
        self.k12[short[long]] = k12
        self.len = np.zeros(V, dtype=np.int8)
        self.len[short] = ls
        self.bits = max(4, int(2 * max(short.size, 1) - 1).bit_length())
        size = 1 << self.bits
        self.ids = np.full(size, -1, dtype=np.int32)
        slot = (h >> np.uint64(64 - self.bits)).astype(np.int64)
        pend = np.arange(short.size)
        while pend.size:  # vectorised insertion: per round, one word per free slot
            s = slot[pend]
            free = np.flatnonzero(self.ids[s] < 0)
            uniq, first = np.unique(s[free], return_index=True)
            won = free[first]
            self.ids[uniq] = short[pend[won]]
            placed = np.zeros(pend.size, dtype=bool)
            placed[won] = True
            pend = pend[~placed]
            slot[pend] = (slot[pend] + 1) & (size - 1)

    def __call__(self, data: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Word ids (int32, -1 = not in the vocabulary) of the tokens ``data[s:s+l]``."""
        if starts.size == 0:
            return np.zeros(0, dtype=np.int32)
        k0, long, k12, h = _token_keys(data + bytes(_KEY_BYTES), len(data), starts, lengths)
        mask = (1 << self.bits) - 1
        slot = (h >> np.uint64(64 - self.bits)).astype(np.int64)
        idx = None  # tokens still probing (None: all, in the first round)
        while True:
            cand = self.ids[slot]
            if idx is None:
                match = self.k0[cand] == k0
                match &= self.len[cand] == lengths
            else:
                match = self.k0[cand] == k0[idx]
                match &= self.len[cand] == lengths[idx]
            match &= cand >= 0
            # tokens of 9..24 bytes: also compare bytes 8..23 (rows of k12 via ``long``)
            lm = np.flatnonzero(match & ((lengths if idx is None else lengths[idx]) > 8))
            if lm.size:
                rows = np.searchsorted(long, lm if idx is None else idx[lm])
                match[lm] = np.all(self.k12[cand[lm]] == k12[rows], axis=1)
            more = np.flatnonzero(~match & (cand >= 0))  # occupied by another word: probe on
            if idx is None:
                out = np.where(match, cand, -1).astype(np.int32)
                idx = more
            else:
                out[idx[match]] = cand[match]
                idx = idx[more]
            if idx.size == 0:
                break
            slot = (slot[more] + 1) & mask
        longs = np.flatnonzero(lengths > _KEY_BYTES)
        if longs.size:  # rare: tokens longer than 24 bytes
            get = self.long.get
            out[longs] = [
                get(data[a : a + b], -1)
                for a, b in zip(starts[longs].tolist(), lengths[longs].tolist(), strict=True)
            ]
        return out


# --------------------------------------------------------------------------------------------
# Encoding.

_FORMAT = 1
_NPY_HEADER = 128


def _npy_header(dtype: np.dtype, n: int) -> bytes:
    """A .npy v1.0 header for a 1-D array of n items, always 128 bytes long, so that the
    data can be streamed first and the final length written afterwards."""
    text = f"{{'descr': '{np.dtype(dtype).str}', 'fortran_order': False, 'shape': ({n},), }}"
    hlen = _NPY_HEADER - 10
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", hlen) + text.ljust(hlen - 1).encode() + b"\n"


class _Sink:
    """Append-only 1-D int array: streamed to a .npy file, or kept in memory."""

    def __init__(self, path: Path | None, dtype: type) -> None:
        self.path, self.dtype, self.n = path, np.dtype(dtype), 0
        self.parts: list[np.ndarray] = []
        self.f = open(path, "wb") if path is not None else None  # noqa: SIM115
        if self.f is not None:
            self.f.write(_npy_header(self.dtype, 0))

    def append(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, dtype=self.dtype)
        self.n += a.size
        if self.f is not None:
            self.f.write(memoryview(a).cast("B"))
        else:
            self.parts.append(a)

    def close(self) -> np.ndarray | None:
        if self.f is None:
            return np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)
        self.f.seek(0)
        self.f.write(_npy_header(self.dtype, self.n))
        self.f.close()
        return None

    def abort(self) -> None:
        if self.f is not None:
            self.f.close()
            Path(self.f.name).unlink(missing_ok=True)


@dataclass
class _EncodeState:
    carry: int = 0  # tokens already seen of the current (unfinished) line
    open_kept: bool = False  # the open sentence piece already holds an encoded token
    n: int = 0  # encoded tokens so far


def _encode_chunk(
    data: bytes, continues: bool, lookup: _ByteLookup, max_line_tokens: int, st: _EncodeState
) -> tuple[np.ndarray, np.ndarray, int]:
    """Ids of the in-vocabulary tokens of one chunk, the stream positions where a new
    sentence starts, and the chunk's raw token count. A sentence is a line, or a piece of
    ``max_line_tokens`` raw tokens of it; empty sentences vanish. Per-token work is a few
    vectorised passes; the sentence bookkeeping is per line."""
    a = np.frombuffer(data, dtype=np.uint8)
    starts, lengths = token_spans(a)
    nl = np.flatnonzero(a == 10)
    n = starts.size
    M = max_line_tokens
    # Lines of the chunk: line j holds tokens [first[j], first[j + 1]); line 0 continues the
    # previous chunk's last line when ``continues`` (it already had ``carry`` tokens).
    first = np.empty(nl.size + 2, dtype=np.int64)
    first[0], first[-1] = 0, n
    first[1:-1] = np.searchsorted(starts, nl + 1)
    count = np.diff(first)
    base = np.zeros(count.size, dtype=np.int64)
    base[0] = st.carry if continues else 0
    # Pieces start where the position in the line (base + i) is a multiple of M.
    k0 = -(-base // M)
    n_pieces = np.maximum((base + count - 1) // M - k0 + 1, 0)
    piece = np.repeat(first[:-1] - base + M * k0, n_pieces)
    if piece.size:
        within = np.arange(piece.size) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
        piece += M * within
    st.carry = int(base[-1] + count[-1])
    if n == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int64), 0
    ids = lookup(data, starts, lengths)
    kept = ids >= 0
    before = np.zeros(n + 1, dtype=np.int64)  # encoded tokens before raw token i
    np.cumsum(kept, out=before[1:])
    # Sentence pieces of this chunk; if token 0 starts none, a virtual one continues the
    # open piece of the previous chunk (a sentence starts there only if that one is empty).
    virtual = piece.size == 0 or piece[0] != 0
    if virtual:
        piece = np.concatenate([[0], piece])
    kb = before[np.append(piece, n)]
    nonempty = kb[1:] > kb[:-1]
    new = nonempty.copy()
    if virtual:
        new[0] &= not st.open_kept
    st.open_kept = bool(nonempty[-1]) or (virtual and piece.size == 1 and st.open_kept)
    bounds = kb[:-1][new] + st.n
    st.n += int(kb[-1])
    return ids[kept], bounds, n


@dataclass(frozen=True, eq=False)
class EncodedCorpus:
    """The corpus as word ids. Sentence s is ``tokens[offsets[s]:offsets[s+1]]`` (never
    empty). Arrays are memory-mapped when the corpus was encoded into a cache directory."""

    tokens: np.ndarray  # (N,) int32
    offsets: np.ndarray  # (S + 1,) int64, offsets[0] = 0, offsets[-1] = N, increasing
    raw_tokens: int = 0  # corpus tokens before dropping out-of-vocabulary words
    vocab_size: int = 0  # 0: unknown
    cache_dir: Path | None = None
    reused: bool = False
    manifest: Mapping = field(default_factory=dict, repr=False)

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_sentences(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @classmethod
    def from_sentences(cls, sentences: Sequence[Sequence[int]], vocab_size: int = 0):
        """Build one in memory from lists of word ids (tests, small experiments)."""
        sents = [np.asarray(s, dtype=np.int32).reshape(-1) for s in sentences]
        sents = [s for s in sents if s.size]
        tokens = np.concatenate(sents) if sents else np.zeros(0, np.int32)
        offsets = np.zeros(len(sents) + 1, dtype=np.int64)
        np.cumsum([s.size for s in sents], out=offsets[1:])
        return cls(tokens, offsets, raw_tokens=tokens.size, vocab_size=vocab_size)


def _corpus_key(files: Sequence[Path], vocab: Vocab, max_line_tokens: int) -> dict:
    meta = []
    for p in files:
        st = p.stat()
        meta.append({"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    key = {
        "format": _FORMAT,
        "files": meta,
        "vocab": vocab.fingerprint(),
        "vocab_size": len(vocab),
        "max_line_tokens": max_line_tokens,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return {**key, "sha256": digest}


def _load_cached(cache: Path, key: dict) -> EncodedCorpus | None:
    try:
        manifest = json.loads((cache / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("sha256") != key["sha256"]:
        return None
    try:
        tokens = np.load(cache / "tokens.npy", mmap_mode="r")
        offsets = np.load(cache / "offsets.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if tokens.shape != (manifest["n_tokens"],) or offsets.shape != (manifest["n_sentences"] + 1,):
        return None
    return EncodedCorpus(
        tokens,
        offsets,
        raw_tokens=manifest["raw_tokens"],
        vocab_size=manifest["vocab_size"],
        cache_dir=cache,
        reused=True,
        manifest=manifest,
    )


def encode_corpus(
    paths: PathsLike,
    vocab: Vocab,
    cache_dir: str | os.PathLike | None,
    max_line_tokens: int = 1000,
    *,
    stats: CorpusStats | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> EncodedCorpus:
    """Encode the corpus to word ids (out-of-vocabulary tokens dropped) with sentence
    offsets, streaming (memory: a few chunks). With ``cache_dir`` the result is written
    there as ``tokens.npy``/``offsets.npy`` + ``manifest.json``, memory-mapped, and reused
    while the corpus files (path, size, mtime), the vocabulary and ``max_line_tokens`` are
    unchanged; ``cache_dir=None`` keeps it in memory."""
    if max_line_tokens < 1:
        raise ValueError(f"max_line_tokens must be >= 1, got {max_line_tokens}")
    if len(vocab) == 0:
        raise ValueError("cannot encode with an empty vocabulary")
    files = resolve_paths(paths)
    cache = None if cache_dir is None else Path(cache_dir)
    key = _corpus_key(files, vocab, max_line_tokens)
    if cache is not None:
        found = _load_cached(cache, key)
        if found is not None:
            log.info("reusing the encoded corpus in %s", cache)
            return found
        cache.mkdir(parents=True, exist_ok=True)
    stats = CorpusStats() if stats is None else stats
    lookup = _ByteLookup(vocab)
    tmp = None if cache is None else f".tmp-{os.getpid()}"
    tok_sink = _Sink(None if cache is None else cache / f"tokens.npy{tmp}", np.int32)
    off_sink = _Sink(None if cache is None else cache / f"offsets.npy{tmp}", np.int64)
    state = _EncodeState()
    try:
        for chunk in iter_chunks(files, chunk_bytes=chunk_bytes, stats=stats):
            ids, bounds, n_raw = _encode_chunk(
                chunk.data, chunk.continues, lookup, max_line_tokens, state
            )
            stats.tokens += n_raw
            tok_sink.append(ids)
            off_sink.append(bounds)
        off_sink.append(np.array([state.n], dtype=np.int64))
    except BaseException:
        tok_sink.abort()
        off_sink.abort()
        raise
    if stats.replacements:
        log.warning("corpus: %s", stats.report())
    if state.n == 0:
        tok_sink.abort()
        off_sink.abort()
        what = "empty" if stats.tokens == 0 else "made only of words outside the vocabulary"
        raise ValueError(f"corpus {describe(files)} is {what}: nothing to train on")
    tokens, offsets = tok_sink.close(), off_sink.close()
    manifest = {
        **key,
        "n_tokens": state.n,
        "n_sentences": off_sink.n - 1,
        "raw_tokens": stats.tokens,
        "stats": stats.as_dict(),
    }
    if cache is None:
        return EncodedCorpus(
            tokens, offsets, stats.tokens, len(vocab), None, False, manifest=manifest
        )
    os.replace(cache / f"tokens.npy{tmp}", cache / "tokens.npy")
    os.replace(cache / f"offsets.npy{tmp}", cache / "offsets.npy")
    (cache / f"manifest.json{tmp}").write_text(json.dumps(manifest, indent=1))
    os.replace(cache / f"manifest.json{tmp}", cache / "manifest.json")
    found = _load_cached(cache, key)
    assert found is not None, f"just-written cache in {cache} does not load"
    return EncodedCorpus(
        found.tokens, found.offsets, stats.tokens, len(vocab), cache, False, manifest=manifest
    )


# --------------------------------------------------------------------------------------------
# Host-side example generation.

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
    u = rng.random(tok.size, dtype=np.float32)
    kidx = np.flatnonzero(u < keep[tok])  # subsampling: positions of the kept tokens
    klen = np.diff(np.searchsorted(kidx, offs))  # kept tokens per sentence
    # A centre has a context word iff its sentence kept >= 2 tokens (b >= 1): drop the rest
    # before windowing (their removal changes no other window: windows stay in sentences).
    multi = klen >= 2
    if not multi.all():
        kidx = kidx[np.repeat(multi, klen)]
        klen = klen[multi]
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
    b = rng.integers(1, window + 1, size=m, dtype=np.int32)  # effective window
    code = np.minimum(b, p) * (window + 1) + np.minimum(b, rem)  # (left reach, right reach)
    pad = np.zeros(m + 2 * window, dtype=np.int32)
    pad[window : window + m] = kt
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * window + 1)
    context = win[:, np.r_[0:window, window + 1 : 2 * window + 1]]  # one copy, (m, 2w)
    mask = _mask_table(window)[code]
    context *= mask
    return kt, context, mask, kidx, b.astype(np.int8)


class _Reader:
    """Copies of slices of a 1-D array. A memory-mapped ``.npy`` is read with ``os.pread``,
    so an epoch over a corpus larger than RAM leaves none of it resident in the process
    (mapped pages, once touched, would count in its RSS until unmapped)."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr, self.fd = arr, None
        if (
            isinstance(arr, np.memmap)
            and isinstance(arr.base, mmap.mmap)
            and arr.filename
            and arr.flags.c_contiguous
        ):
            self.fd = os.open(arr.filename, os.O_RDONLY)
            self.start, self.item = int(arr.offset), arr.dtype.itemsize

    def __call__(self, a: int, z: int) -> np.ndarray:
        if self.fd is None:
            return np.array(self.arr[a:z])
        n = (z - a) * self.item
        parts, got = [], 0
        while got < n:
            part = os.pread(self.fd, n - got, self.start + a * self.item + got)
            if not part:
                raise OSError(f"{self.arr.filename} is shorter than its header says")
            parts.append(part)
            got += len(part)
        return np.frombuffer(b"".join(parts) if len(parts) > 1 else parts[0], self.arr.dtype)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _blocks(
    offsets: _Reader, n_sentences: int, chunk_tokens: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Consecutive blocks of whole sentences of about ``chunk_tokens`` tokens (at least one
    sentence): ``(first token, the block's sentence offsets from 0)``. Reads the offsets
    in windows sized to the blocks."""
    j, w = 0, 1024
    while j < n_sentences:
        win = offsets(j, min(n_sentences, j + w) + 1)
        k = int(np.searchsorted(win, win[0] + chunk_tokens, side="right")) - 1
        if k == win.size - 1 and j + k < n_sentences:  # the block may go on: read more
            w *= 2
            continue
        k = max(k, 1)
        yield int(win[0]), win[: k + 1] - win[0]
        j += k
        w = max(1024, 2 * k)


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
    architecture: str,
    window: int,
    sample: float,
    batch_size: int,
    seed: int,
    epoch: int,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    window_buckets: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of fixed-shape batches (see the module docstring for the record),
    deterministic given ``(seed, epoch)`` (and ``chunk_tokens``). Streams over the
    (memory-mapped) token stream about ``chunk_tokens`` tokens at a time.

    ``window_buckets``: the same examples (the same random draws), grouped by their
    effective window b: rows ``[(b-1) B/w, b B/w)`` of every batch hold centres whose
    window is b, so only context slots ``w-b .. w+b-1`` (offsets -b..-1, 1..b) can be set
    there and a step may compute each group on those 2b slots alone
    (:func:`window_bucket_slices`): on average (w+1)/2w of the padded work. A centre waits in
    its group's queue until every group can fill its share of a batch, so the order
    departs from the stream's by a few batches at most; the last batches of the epoch are
    padded per group. ``batch_size`` must be a multiple of ``window``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}"
        )
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
    blocks = _example_blocks(encoded, vocab, window, sample, seed, epoch, chunk_tokens)
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


def _example_blocks(
    encoded: EncodedCorpus,
    vocab: Vocab,
    window: int,
    sample: float,
    seed: int,
    epoch: int,
    chunk_tokens: int,
) -> Iterator[dict[str, np.ndarray]]:
    """The epoch's examples, a block of whole sentences at a time, in stream order: rows
    ``center``, ``context``, ``mask``, ``words`` (the tokens from after the previous centre
    to this one) and ``b`` (the effective window)."""
    keep = keep_probs(vocab, sample).astype(np.float32)
    rng = np.random.default_rng([seed, epoch])
    tokens, offsets = _Reader(encoded.tokens), _Reader(encoded.offsets)
    last_end = 0  # stream position after the previous centre
    try:
        for a, offs in _blocks(offsets, encoded.n_sentences, chunk_tokens):
            tok = tokens(a, a + int(offs[-1]))
            center, context, mask, pos, b = _windows(tok, offs, keep, window, rng)
            if center.size == 0:
                continue
            ends = pos + (a + 1)
            words = np.diff(ends, prepend=last_end).astype(np.int32)
            last_end = int(ends[-1])
            yield {"center": center, "context": context, "mask": mask, "words": words, "b": b}
    finally:
        tokens.close()
        offsets.close()


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


# --------------------------------------------------------------------------------------------
# Device side: pure JAX, used inside the compiled train step.

NOISE_TOTAL = 2**31 - 1  # resolution of the noise CDF: probabilities are multiples of 1/T


def noise_table(vocab: Vocab, ns_exponent: float = 0.75) -> jax.Array:
    """The noise distribution P_n(w) ∝ count(w)^ns_exponent as an int32 cumulative table
    (V,) with last entry ``NOISE_TOTAL``: word w owns the integers [cdf[w-1], cdf[w]).
    (Resolution 2^-31 per word, against word2vec.c's 1e-8 of its 1e8-entry unigram table.)"""
    p = noise_distribution(vocab, ns_exponent)
    cdf = np.minimum(np.floor(np.cumsum(p) * NOISE_TOTAL), NOISE_TOTAL).astype(np.int64)
    cdf[-1] = NOISE_TOTAL
    return jnp.asarray(cdf.astype(np.int32))


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=("cdf", "start"), meta_fields=("steps",)
)
@dataclass(frozen=True)
class NoiseSampler:
    """:func:`noise_table`'s CDF with a guide table (Chen and Asau's indexed search): the
    draw ``u`` lies in bucket ``u >> shift`` of 2^g equal buckets of [0, NOISE_TOTAL), and
    ``start[b]`` is the number of CDF entries <= the bucket's first value, so the answer is
    in ``[start[b], start[b] + span]``, ``span`` the most words any bucket reaches into.
    A binary search over that window (``steps = ceil(log2(span + 1))``, static) gives
    exactly ``searchsorted(cdf, u, side="right")``: the same words from the same ``u``, in
    one lookup and a few steps instead of log2(V) (about 3x faster on the XLA CPU backend
    for V = 26k). Build with :func:`noise_sampler`; a pytree (``steps`` is static)."""

    cdf: jax.Array  # (V,) int32, as noise_table
    start: jax.Array  # (2^g,) int32
    steps: int  # binary-search steps inside a bucket's window

    @property
    def shift(self) -> int:
        return 31 - (int(self.start.shape[0]).bit_length() - 1)


def noise_sampler(table: jax.Array | np.ndarray, bucket_bits: int | None = None) -> NoiseSampler:
    """A :class:`NoiseSampler` over the CDF ``table`` of :func:`noise_table` (host work:
    O(2^g log V)). ``bucket_bits`` g defaults to ceil(log2 V) + 1, within 8..22."""
    cdf = np.asarray(table).astype(np.int64)
    V = cdf.shape[0]
    g = bucket_bits if bucket_bits is not None else min(22, max(8, (V - 1).bit_length() + 1))
    if not 1 <= g <= 31:
        raise ValueError(f"bucket_bits must be in 1..31, got {g}")
    first = np.arange(2**g, dtype=np.int64) << (31 - g)
    last = np.minimum(first + (1 << (31 - g)) - 1, NOISE_TOTAL - 1)
    start = np.searchsorted(cdf, first, side="right")
    span = int((np.searchsorted(cdf, last, side="right") - start).max())
    return NoiseSampler(
        cdf=jnp.asarray(cdf.astype(np.int32)),
        start=jnp.asarray(start.astype(np.int32)),
        steps=max(span, 1).bit_length(),  # ceil(log2(span + 1))
    )


def _guided_search(s: NoiseSampler, u: jax.Array) -> jax.Array:
    V = s.cdf.shape[0]
    lo = s.start[u >> s.shift]
    hi = jnp.minimum(lo + (1 << s.steps) - 1, V - 1)  # the answer is in [lo, hi]
    for _ in range(s.steps):
        mid = (lo + hi) >> 1
        right = s.cdf[mid] <= u
        lo = jnp.where(right, mid + 1, lo)
        hi = jnp.where(right, hi, mid)
    return lo


def sample_negatives(
    key: jax.Array, table: jax.Array | NoiseSampler, shape: Sequence[int]
) -> jax.Array:
    """i.i.d. draws from the noise distribution of :func:`noise_table` (int32, ``shape``):
    inverse-CDF sampling of ``u ~ U{0..NOISE_TOTAL-1}``, by a binary search over the CDF
    (O(log V)) or, for a :class:`NoiseSampler`, its guide table (same words, faster)."""
    u = jax.random.randint(key, tuple(shape), 0, NOISE_TOTAL, dtype=jnp.int32)
    if isinstance(table, NoiseSampler):
        return _guided_search(table, u).astype(jnp.int32)
    return jnp.searchsorted(table, u, side="right").astype(jnp.int32)


#: fields of a completed batch with a context-slot axis (axis 1) when they have 3 dimensions
#: (per-pair negatives, centre-input skip-gram's per-context Huffman paths); ``context`` and
#: ``mask`` always have one.
_PER_CONTEXT = ("negatives", "points", "codes", "path_mask")


def window_bucket_slices(batch: Mapping[str, jax.Array], window: int) -> list[dict]:
    """The ``window`` groups of a batch made by ``epoch_batches(window_buckets=True)``: group
    b (1..window) is rows ``[(b-1) B/w, b B/w)`` with the context-slot axis cut to slots
    ``w-b .. w+b-1`` (offsets -b..-1, 1..b), the only ones its mask can set. The groups
    together hold every unmasked slot of the batch, so any loss or rule summed over them
    equals its value on the whole batch. Fields without a row axis (``words``) are left out.
    """
    B = batch["center"].shape[0]
    Bb = B // window
    out = []
    for b in range(1, window + 1):
        rows = slice((b - 1) * Bb, b * Bb)
        cols = slice(window - b, window + b)
        part = {}
        for name, x in batch.items():
            if name == "words":
                continue
            if name in ("context", "mask") or (name in _PER_CONTEXT and x.ndim == 3):
                part[name] = x[rows, cols]
            else:
                part[name] = x[rows]
        out.append(part)
    return out


def device_tree(tree: HuffmanTree) -> HuffmanTree:
    """The Huffman tree's arrays as device arrays (for :func:`complete_batch`)."""
    return HuffmanTree(*(jnp.asarray(x) for x in tree))


def complete_batch(
    key: jax.Array,
    batch: Mapping[str, jax.Array],
    *,
    output: str,
    negatives: int = 5,
    table: jax.Array | None = None,
    tree_arrays: HuffmanTree | None = None,
    architecture: str = "skipgram",
    shared_negatives: bool = False,
    skipgram_input: str = "center",
) -> dict[str, jax.Array]:
    """Add the output layer's fields of :mod:`sgjax.losses`' record to a batch.

    - ``negative``: ``negatives`` (B, C, K) for skip-gram (one set per context word, as
      word2vec.c draws per pair), or (B, K) with ``shared_negatives`` (one set per centre,
      shared by its context panels), (B, K) for CBOW, i.i.d. from ``table``. A negative
      equal to the positive word is left in: the losses and rules skip it, as word2vec.c
      does.
    - ``hierarchical``: ``points``, ``codes``, ``path_mask`` of the output word's Huffman
      path: per context word (B, C, L) for skip-gram, per centre (B, L) for CBOW and for
      skip-gram with ``skipgram_input="context"`` (the centre is the output word).
    - ``softmax``: nothing.

    Other fields of ``batch`` (e.g. ``words``) are passed through unchanged.
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output layer {output!r}; valid: {', '.join(OUTPUTS)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}"
        )
    out = dict(batch)
    if output == "negative":
        if table is None:
            raise ValueError("negative sampling needs table=noise_table(vocab, ns_exponent)")
        if negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {negatives}")
        per_pair = architecture == "skipgram" and not shared_negatives
        base = batch["context"].shape if per_pair else batch["center"].shape
        out["negatives"] = sample_negatives(key, table, (*base, negatives))
    elif output == "hierarchical":
        if tree_arrays is None:
            raise ValueError(
                "hierarchical softmax needs tree_arrays=device_tree(build_huffman(...))"
            )
        per_context = architecture == "skipgram" and skipgram_input == "center"
        words = batch["context"] if per_context else batch["center"]
        out.update(path_fields(tree_arrays, jnp.asarray(words)))
    return out
