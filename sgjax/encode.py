"""Corpus -> word ids: the host-side encoding of a corpus into an int32 token stream.

:func:`encode_corpus` tokenises byte chunks with numpy (:func:`sgjax.corpus.token_spans`)
and maps each token to its word id through an open-addressing hash table keyed by the
token's exact bytes (tokens of up to 24 bytes packed into three uint64 words, so lookups
are exact, never probabilistic; longer tokens, rare in text, go through a dict). Words not
in the vocabulary are dropped, as word2vec.c and gensim drop them. No per-token Python loop.
Where JAX is imported (a run), :mod:`sgjax.ctokens` does the same tokenising and lookup in
C, one pass over a chunk's bytes (encoding realtext-v1: 0.26 -> 0.12 s).
The stream and its sentence offsets are written as ``.npy`` files in ``cache_dir`` and
memory-mapped, so a corpus larger than RAM works; a JSON manifest (corpus files' path, size
and mtime, vocabulary fingerprint, settings, and its sha256) makes the next run reuse them.
:mod:`sgjax.batches` turns the stream into an epoch's batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sgjax import ctokens
from sgjax.corpus import (
    DEFAULT_CHUNK_BYTES,
    CorpusStats,
    PathsLike,
    describe,
    iter_chunks,
    resolve_paths,
    token_spans,
)
from sgjax.vocab import Vocab

log = logging.getLogger(__name__)

__all__ = ["EncodedCorpus", "encode_corpus"]

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

    def tokens(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The word id of each token of ``data`` (-1: none) and, for each newline, the
        tokens before it (:class:`sgjax.ctokens.Lookup` gives the same, in C)."""
        a = np.frombuffer(data, dtype=np.uint8)
        starts, lengths = token_spans(a)
        return self(data, starts, lengths), np.searchsorted(starts, np.flatnonzero(a == 10) + 1)

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
            with self._named():
                self.f.write(memoryview(a).cast("B"))
        else:
            self.parts.append(a)

    def close(self) -> np.ndarray | None:
        if self.f is None:
            return np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)
        with self._named():
            self.f.seek(0)
            self.f.write(_npy_header(self.dtype, self.n))
            self.f.close()
        return None

    @contextlib.contextmanager
    def _named(self):
        """An OSError of a write (a full disk) names the file."""
        try:
            yield
        except OSError as e:
            if e.filename is not None:
                raise
            raise OSError(e.errno, e.strerror or str(e), str(self.path)) from None

    def abort(self) -> None:
        if self.f is not None:
            self.f.close()
            Path(self.f.name).unlink(missing_ok=True)


@dataclass
class _EncodeState:
    carry: int = 0  # tokens already seen of the current (unfinished) line
    open_kept: bool = False  # the open sentence piece already holds an encoded token
    n: int = 0  # encoded tokens so far


def _lookup(vocab: Vocab) -> _ByteLookup | ctokens.Lookup:
    """The vocabulary's token lookup: in C where :mod:`sgjax.ctokens` is built."""
    lib = ctokens.library()
    return _ByteLookup(vocab) if lib is None else ctokens.Lookup(lib, vocab.words)


def _encode_chunk(
    data: bytes,
    continues: bool,
    lookup: _ByteLookup | ctokens.Lookup,
    max_line_tokens: int,
    st: _EncodeState,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Ids of the in-vocabulary tokens of one chunk, the stream positions where a new
    sentence starts, and the chunk's raw token count. A sentence is a line, or a piece of
    ``max_line_tokens`` raw tokens of it; empty sentences vanish. Per-token work is a few
    vectorised passes; the sentence bookkeeping is per line."""
    ids, nl_first = lookup.tokens(data)
    n = ids.size
    M = max_line_tokens
    # Lines of the chunk: line j holds tokens [first[j], first[j + 1]); line 0 continues the
    # previous chunk's last line when ``continues`` (it already had ``carry`` tokens).
    first = np.empty(nl_first.size + 2, dtype=np.int64)
    first[0], first[-1] = 0, n
    first[1:-1] = nl_first
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
    lookup = _lookup(vocab)
    tmp = None if cache is None else f".tmp-{os.getpid()}"
    tok_sink = _Sink(None if cache is None else cache / f"tokens.npy{tmp}", np.int32)
    off_sink = _Sink(None if cache is None else cache / f"offsets.npy{tmp}", np.int64)
    state = _EncodeState()
    try:  # a full disk, a signal or bad input: no partial file is left in the cache
        for chunk in iter_chunks(files, chunk_bytes=chunk_bytes, stats=stats):
            ids, bounds, n_raw = _encode_chunk(
                chunk.data, chunk.continues, lookup, max_line_tokens, state
            )
            stats.tokens += n_raw
            tok_sink.append(ids)
            off_sink.append(bounds)
        off_sink.append(np.array([state.n], dtype=np.int64))
        if state.n == 0:
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
        (cache / f"manifest.json{tmp}").write_text(json.dumps(manifest, indent=1))
        for name in ("tokens.npy", "offsets.npy", "manifest.json"):
            os.replace(cache / f"{name}{tmp}", cache / name)
    except BaseException:
        tok_sink.abort()
        off_sink.abort()
        if cache is not None:
            (cache / f"manifest.json{tmp}").unlink(missing_ok=True)
        raise
    finally:  # (the vocabulary's pass over the same files has warned of replacements)
        if stats.replacements:
            log.info("corpus: %s", stats.report())
    found = _load_cached(cache, key)
    assert found is not None, f"just-written cache in {cache} does not load"
    return EncodedCorpus(
        found.tokens, found.offsets, stats.tokens, len(vocab), cache, False, manifest=manifest
    )
