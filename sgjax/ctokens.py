"""The corpus's tokens counted and looked up in C (``sgjax/kernels/tokens.cc``): the
method :mod:`sgjax.vocab` and :mod:`sgjax.encode` use where it is built, with the same
results as their Python and numpy methods (``tests/test_pipeline.py`` runs both).

Counting realtext-v1's 3M tokens: 0.39 s with ``bytes.split`` and ``Counter`` against
0.11 s here (the C loop 0.084 s), encoding it 0.26 s with numpy against 0.12 s
(BENCHMARKS.md, "The seventh pass"). Used where JAX is imported already
(:mod:`sgjax.chelpers`), so that counting a corpus alone never imports JAX to build it.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from sgjax import chelpers
from sgjax.corpus import Chunk, CorpusStats


def library() -> ctypes.CDLL | None:
    """``tokens.cc``'s library where JAX is imported (:func:`sgjax.chelpers.library`)."""
    return chelpers.library("tokens")


class _Table:
    """A table of byte strings in C (``tokens.cc``'s ``Table``), freed on close."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.ptr = lib.sgjax_table_new()
        if not self.ptr:
            raise MemoryError("tokens.cc: no memory for a table")

    def close(self) -> None:
        if self.ptr:
            self.lib.sgjax_table_free(self.ptr)
            self.ptr = None

    def __del__(self) -> None:
        self.close()

    def size(self) -> int:
        total = np.zeros(1, np.int64)  # (held: the call writes into it)
        return int(self.lib.sgjax_table_size(self.ptr, total.ctypes.data))

    def strings(self) -> tuple[list[bytes], list[int]]:
        """Its strings and their counts, in order."""
        total = np.zeros(1, np.int64)
        n = self.lib.sgjax_table_size(self.ptr, total.ctypes.data)
        out = ctypes.create_string_buffer(int(total[0]) + n)
        counts = np.zeros(n, np.int64)
        self.lib.sgjax_table_export(self.ptr, out, counts.ctypes.data)
        return out.raw.split(b" ")[:n], counts.tolist()


def count_words(
    lib: ctypes.CDLL,
    chunks: Iterable[Chunk],
    max_unique_words: int | None,
    stats: CorpusStats | None,
) -> tuple[Counter, int]:
    """:func:`sgjax.vocab.count_words` on ``chunks``: the same counts in the same order
    (first occurrence), pruned after each chunk by the same rule."""
    table = _Table(lib)
    try:
        min_reduce = 1
        for chunk in chunks:
            n = lib.sgjax_count_tokens(table.ptr, chunk.data, len(chunk.data))
            if n < 0:
                raise MemoryError(f"{chunk.path}: no memory to count its distinct words")
            if stats is not None:
                stats.tokens += n
            if max_unique_words is not None and table.size() > max_unique_words:
                if lib.sgjax_table_prune(table.ptr, min_reduce) < 0:
                    raise MemoryError(f"{chunk.path}: no memory to prune its distinct words")
                min_reduce += 1
        words, counts = table.strings()
    finally:
        table.close()
    counter: Counter = Counter()
    dict.update(counter, zip(words, counts, strict=True))  # (Counter.update would count pairs)
    return counter, min_reduce


class Lookup:
    """Word bytes -> id for :mod:`sgjax.encode` (``_ByteLookup``'s ``tokens``)."""

    def __init__(self, lib: ctypes.CDLL, words: Iterable[str]) -> None:
        encoded = [w.encode("utf-8") for w in words]
        ends = np.cumsum([len(w) for w in encoded], dtype=np.int64)
        self.table = _Table(lib)
        joined = b"".join(encoded)
        status = lib.sgjax_table_add_words(self.table.ptr, joined, ends.ctypes.data, ends.size)
        if status:
            self.table.close()
            raise (MemoryError if status == -1 else ValueError)(
                "tokens.cc: " + ("no memory" if status == -1 else "a repeated vocabulary word")
            )
        self._ids = np.zeros(0, np.int32)
        self._lines = np.zeros(0, np.int64)

    def tokens(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The word id of each token of ``data`` (-1: none) and, for each newline, the
        tokens before it (views of buffers that the next call reuses)."""
        if self._ids.size < len(data) // 2 + 1:  # tokens and separators: at most this many
            self._ids = np.empty(len(data) // 2 + 1, np.int32)
        lines = data.count(b"\n")
        if self._lines.size < lines:
            self._lines = np.empty(lines, np.int64)
        lib: Any = self.table.lib
        ids, nl = self._ids.ctypes.data, self._lines.ctypes.data
        n = lib.sgjax_lookup_tokens(self.table.ptr, data, len(data), ids, nl)
        return self._ids[:n], self._lines[:lines]
