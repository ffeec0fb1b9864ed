"""The encoded token stream (:mod:`sgjax.encode`) read in blocks of whole sentences of about
``chunk_tokens`` tokens, in the file's order (:func:`_stream_blocks`) or in the random
permutation of the sentences that a shuffled epoch reads (:func:`sentence_order`,
:func:`_shuffled_blocks`), without keeping the corpus's pages resident: what
:mod:`sgjax.batches` windows and :mod:`sgjax.device_examples` chunks.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import numpy as np

from sgjax.encode import EncodedCorpus

# The shuffle's random stream, [seed, epoch, _SHUFFLE_TAG], apart from the subsampling and
# window draws' [seed, epoch].
_SHUFFLE_TAG = 0x5348554646  # "SHUFF"
_REMAP_TOKENS = 1 << 20  # tokens a shuffled epoch reads through one mapping of the stream


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


def sentence_order(n_sentences: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which a shuffled epoch reads the sentences: a permutation of
    ``0..n_sentences-1`` (int32, int64 from 2^31 sentences), a function of ``(seed, epoch)``
    drawn from its own random stream."""
    perm = np.arange(n_sentences, dtype=np.int32 if n_sentences < 2**31 else np.int64)
    np.random.default_rng([seed, epoch, _SHUFFLE_TAG]).shuffle(perm)
    return perm


class _Gather:
    """The elements of a 1-D array at index arrays. A memory-mapped ``.npy`` is read through
    a private read-only mapping of its file, dropped after every ``_REMAP_TOKENS`` elements
    read and at :meth:`close`, so that (as with :class:`_Reader`) a shuffled epoch over a
    corpus larger than RAM does not leave the pages it touched resident in the process."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr, self.file, self.view, self.read = arr, None, None, 0
        if (
            isinstance(arr, np.memmap)
            and isinstance(arr.base, mmap.mmap)
            and arr.filename
            and arr.flags.c_contiguous
            and arr.size
        ):
            self.file = (arr.filename, arr.dtype, int(arr.offset), arr.shape)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        if self.file is None:
            return self.arr[idx]
        if self.view is None:
            name, dtype, offset, shape = self.file
            self.view = np.memmap(name, dtype=dtype, mode="r", offset=offset, shape=shape)
        out = np.asarray(self.view[idx])  # fancy indexing: a copy
        self.read += idx.size
        if self.read >= _REMAP_TOKENS:
            self.close()
        return out

    def close(self) -> None:
        self.view, self.read = None, 0  # unmapped with its last reference


def _stream_blocks(
    encoded: EncodedCorpus, chunk_tokens: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The sequential epoch's blocks of whole sentences, in the file's order: ``(stream
    position of the block's first token, its tokens, its sentence offsets from 0)``."""
    tokens, offsets = _Reader(encoded.tokens), _Reader(encoded.offsets)
    try:
        for a, offs in _blocks(offsets, encoded.n_sentences, chunk_tokens):
            yield a, tokens(a, a + int(offs[-1])), offs
    finally:
        tokens.close()
        offsets.close()


def _shuffled_blocks(
    encoded: EncodedCorpus, order: np.ndarray, chunk_tokens: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Blocks of whole sentences taken in ``order`` (sentence ids), cut as :func:`_blocks`
    cuts the file (at most ``chunk_tokens`` tokens, at least one sentence): ``(position of
    the block's first token in the permuted stream, its tokens, its sentence offsets from
    0)``. Reads the whole offsets array once; gathers each block's tokens by fancy
    indexing (one index per token)."""
    n = encoded.n_sentences
    reader = _Reader(encoded.offsets)
    try:
        bounds = reader(0, n + 1)
    finally:
        reader.close()
    tokens = _Gather(encoded.tokens)
    try:
        a, j, w = 0, 0, 1024
        while j < n:
            ids = order[j : j + w]
            starts = bounds[ids]
            lens = bounds[ids + 1] - starts
            ends = np.cumsum(lens)
            k = int(np.searchsorted(ends, chunk_tokens, side="right"))
            if k == ids.size and j + k < n:  # the block may go on: take more sentences
                w *= 2
                continue
            k = max(k, 1)
            offs = np.zeros(k + 1, np.int64)
            offs[1:] = ends[:k]
            m = int(offs[-1])
            idx = np.repeat(starts[:k] - offs[:-1], lens[:k]) + np.arange(m, dtype=np.int64)
            yield a, tokens(idx), offs
            a += m
            j += k
            w = max(1024, 2 * k)
    finally:
        tokens.close()
