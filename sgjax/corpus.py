"""Corpus reading: UTF-8 text files (plain, .gz, .bz2, .xz) or directories of them.

Conventions, as word2vec.c and gensim's ``LineSentence``:

- tokens are separated by ASCII whitespace (space, ``\\t``, ``\\n``, ``\\r``, ``\\v``, ``\\f``:
  exactly ``bytes.split()``); other Unicode spaces are part of a token;
- a line (``\\n``) is a sentence boundary, and so is the end of every file;
- a line longer than ``max_line_tokens`` tokens (word2vec.c: 1000) is split into pieces of
  ``max_line_tokens`` tokens counted from the start of the line;
- invalid UTF-8 is replaced by U+FFFD, counted and reported (:class:`CorpusStats`), never a
  crash; a leading UTF-8 byte-order mark is dropped;
- a directory stands for its files (recursively, sorted by path, hidden entries skipped);
- gzip, bzip2 and xz files are decompressed whatever their names (their magic bytes
  decide; a ``.lzma`` suffix selects the legacy LZMA format); zstd, zip and 7z files are
  refused with a :class:`CorpusError`, as is a corrupt or truncated compressed stream (the
  message names the file and the uncompressed byte offset reached).

Two readers share this: :func:`iter_chunks` (the fast path: byte chunks of whole lines for
the vectorised tokeniser :func:`token_spans` and the encoders) and :func:`iter_lines` (token
lists per line, for users and tests). The fast path decompresses in a background thread so
that decompression (which releases the GIL) overlaps tokenisation. Decompression speeds:
see BENCHMARKS.md, "Data pipeline".
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import queue
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

log = logging.getLogger(__name__)

WHITESPACE = b" \t\n\r\x0b\x0c"  # the bytes bytes.split() splits on
DEFAULT_CHUNK_BYTES = 2 << 20
MAX_TOKEN_BYTES = 1 << 20  # a token longer than this and the chunk size is cut in pieces
_BOM = b"\xef\xbb\xbf"
_REPLACEMENT = "\ufffd"
_REPLACEMENT_BYTES = _REPLACEMENT.encode("utf-8")
# (magic bytes, name, opener): the compressed formats read transparently, by content
_COMPRESSED = (
    (b"\x1f\x8b\x08", "gzip", gzip.open),
    (b"BZh", "bzip2", bz2.open),  # + a block size digit and the block magic, checked below
    (b"\xfd7zXZ\x00", "xz", lzma.open),
)
_REFUSED = ((b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"), (b"7z\xbc\xaf\x27\x1c", "7z"))
_DECOMPRESS_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)

PathsLike = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass
class CorpusStats:
    """What a pass over the corpus saw. ``replacements`` counts invalid UTF-8 sequences
    (each replaced by one U+FFFD); ``first_replacement`` is ``(path, byte offset)`` of the
    first one, the offset counted in the uncompressed stream."""

    files: int = 0
    bytes: int = 0
    lines: int = 0
    tokens: int = 0
    replacements: int = 0
    replaced_per_file: dict[str, int] = field(default_factory=dict)
    first_replacement: tuple[str, int] | None = None

    def report(self) -> str:
        """One human-readable line (plus the UTF-8 warning when anything was replaced)."""
        s = (
            f"{self.files} file(s), {self.bytes:,} bytes, {self.lines:,} lines, "
            f"{self.tokens:,} tokens"
        )
        if self.replacements:
            path, off = self.first_replacement or ("?", -1)
            s += (
                f"; {self.replacements:,} invalid UTF-8 sequence(s) replaced by U+FFFD in "
                f"{len(self.replaced_per_file)} file(s), first in {path} at byte {off:,}"
            )
        return s

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "lines": self.lines,
            "tokens": self.tokens,
            "replacements": self.replacements,
            "first_replacement": list(self.first_replacement) if self.first_replacement else None,
        }


class Chunk(NamedTuple):
    """Valid UTF-8 bytes of one file, cut after a newline where possible, else after a
    whitespace byte (a token is cut only if longer than ``MAX_TOKEN_BYTES`` and the chunk).

    ``continues``: the first line continues the previous chunk's last line (same file).
    ``offset``: byte offset of ``data`` in the file's uncompressed stream (before any
    replacement of invalid UTF-8).
    """

    data: bytes
    path: str
    offset: int
    continues: bool


def resolve_paths(paths: PathsLike) -> list[Path]:
    """The corpus files: paths as given, directories expanded (recursive, sorted, hidden
    entries skipped). A missing path is a ``FileNotFoundError`` naming it."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("no corpus path given (set data.corpus)")
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not files:
                raise ValueError(f"corpus directory {p} contains no files")
            out.extend(files)
        elif p.is_file():
            out.append(p)
        elif p.exists():
            raise ValueError(f"corpus path {p} is neither a file nor a directory")
        else:
            raise FileNotFoundError(f"corpus path not found: {p}")
    return out


def describe(paths: Sequence[Path]) -> str:
    """Name the corpus in messages: the file, or the first files and how many there are."""
    names = [str(p) for p in paths]
    if len(names) <= 3:
        return ", ".join(names)
    return f"{', '.join(names[:3])} and {len(names) - 3} more file(s)"


class CorpusError(ValueError):
    """A corpus file that cannot be read as text: corrupt, truncated or unsupported."""


def compression(path: str | os.PathLike) -> tuple[str, object]:
    """``(name, opener)`` of a corpus file's compression from its first bytes ("plain",
    open for none); CorpusError for a format that is refused."""
    with open(path, "rb") as f:
        head = f.read(10)
    for magic, name, opener in _COMPRESSED:
        if head.startswith(magic) and (name != "bzip2" or head[3:10] == head[3:4] + b"1AY&SY"):
            return name, opener
    for magic, name in _REFUSED:
        if head.startswith(magic):
            raise CorpusError(f"{path}: a {name} archive; decompress it to text first")
    if Path(path).suffix.lower() == ".lzma":
        return "lzma", lzma.open
    return "plain", open


def open_binary(path: str | os.PathLike) -> BinaryIO:
    """Open a corpus file for binary reading, decompressing gzip, bzip2 and xz."""
    return compression(path)[1](path, "rb")


def _fix_utf8(data: bytes, path: str, offset: int, stats: CorpusStats | None) -> bytes:
    """``data`` if it is valid UTF-8, else with each invalid sequence replaced by U+FFFD
    (counted in ``stats``). The check runs at C speed (~2 GB/s for ASCII)."""
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError as err:
        first = offset + err.start
    text = data.decode("utf-8", "replace")
    n = text.count(_REPLACEMENT) - data.count(_REPLACEMENT_BYTES)
    if stats is not None:
        stats.replacements += n
        stats.replaced_per_file[path] = stats.replaced_per_file.get(path, 0) + n
        if stats.first_replacement is None:
            stats.first_replacement = (path, first)
    return text.encode("utf-8")


def _cut(buf: bytes, hard: bool) -> int:
    """Where to cut ``buf`` so that the head ends a line, else a token: after the last
    newline, else after the last whitespace byte; else 0 (keep reading), or, when ``hard``
    (a token longer than ``MAX_TOKEN_BYTES`` and the chunk), at a UTF-8 character boundary
    near the end."""
    cut = buf.rfind(b"\n") + 1
    if cut:
        return cut
    cut = max(buf.rfind(bytes([c])) for c in WHITESPACE) + 1
    if cut or not hard:
        return cut
    cut = len(buf)
    while cut > len(buf) - 3 and 0x80 <= buf[cut - 1] < 0xC0:
        cut -= 1
    if buf[cut - 1] >= 0xC0:  # a lead byte whose continuation bytes are in the tail
        cut -= 1
    return cut or len(buf)


def _file_chunks(path: Path, chunk_bytes: int, stats: CorpusStats | None) -> Iterator[Chunk]:
    name = str(path)
    offset = 0
    carry = b""
    continues = False
    last = b"\n"
    first = True
    kind, opener = compression(path)
    with opener(path, "rb") as f:
        while True:
            try:  # doubling the read while inside a token
                block = f.read(max(chunk_bytes, len(carry)))
            except _DECOMPRESS_ERRORS as e:
                what = "read error" if kind == "plain" else f"corrupt or truncated {kind} data"
                cause = getattr(e, "strerror", None) or str(e) or type(e).__name__
                raise CorpusError(
                    f"{name}: {what} after byte {offset + len(carry):,} ({cause})"
                ) from None
            buf = carry + block if carry else block
            if not buf:
                break
            if first:
                first = False
                if buf.startswith(_BOM):
                    buf = buf[3:]
                    offset = 3
            if block:
                cut = _cut(buf, hard=len(buf) >= max(chunk_bytes, MAX_TOKEN_BYTES))
                if not cut:  # inside a token longer than the chunk: read on
                    carry = buf
                    continue
                head, carry = buf[:cut], buf[cut:]
            else:
                head, carry = buf, b""
            if stats is not None:
                stats.bytes += len(head)
                stats.lines += head.count(b"\n")
            data = _fix_utf8(head, name, offset, stats)
            yield Chunk(data, name, offset, continues)
            offset += len(head)
            last = head[-1:]
            continues = last != b"\n"
            if not block:
                break
    if stats is not None:
        stats.files += 1
        if offset and last != b"\n":
            stats.lines += 1  # a last line without its newline


def prefetch(gen: Iterator, depth: int = 2) -> Iterator:
    """Run ``gen`` in a daemon thread, ``depth`` items ahead; exceptions are re-raised here.
    Closing the consumer stops the producer. (numpy and the decompressors release the GIL,
    so the producer overlaps the consumer's work even on CPython.)"""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put((done, e))

    t = threading.Thread(target=produce, name="sgjax-corpus-reader", daemon=True)
    t.start()
    try:
        while True:
            item, err = q.get()
            if item is done:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def iter_chunks(
    paths: PathsLike,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    stats: CorpusStats | None = None,
    background: bool = True,
) -> Iterator[Chunk]:
    """Stream the corpus as :class:`Chunk` s of about ``chunk_bytes`` each (bounded memory),
    file by file in :func:`resolve_paths` order; ``stats`` (if given) is filled on the way
    (all but ``tokens``, which the tokenising consumer adds). ``background`` reads and
    decompresses in a thread, two chunks ahead."""
    if chunk_bytes < 16:
        raise ValueError(f"chunk_bytes must be >= 16, got {chunk_bytes}")
    files = resolve_paths(paths)

    def gen() -> Iterator[Chunk]:
        for p in files:
            yield from _file_chunks(p, chunk_bytes, stats)

    return prefetch(gen(), depth=2) if background else gen()


def token_spans(data: bytes | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised whitespace tokeniser: ``(starts, lengths)`` (int64) of the tokens of
    ``data``, exactly the tokens ``bytes.split()`` finds, without a per-token Python loop."""
    a = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    # is_token[i+1] = byte i is not whitespace; whitespace = {9..13, 32}, tested with two
    # comparisons (uint8 wrap-around makes a - 9 > 4 for every byte below 9).
    is_token = np.zeros(a.size + 2, dtype=bool)
    inner = is_token[1:-1]
    np.greater(a - np.uint8(9), 4, out=inner)
    inner &= a != 32
    edges = np.flatnonzero(is_token[1:] != is_token[:-1])  # alternating starts and ends
    starts = edges[0::2]
    return starts, edges[1::2] - starts


def iter_lines(
    paths: PathsLike,
    max_line_tokens: int = 1000,
    stats: CorpusStats | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[list[str]]:
    """The corpus as one token list per sentence: each non-empty line, split into pieces of
    at most ``max_line_tokens`` tokens. A piece is yielded as soon as it is full, so a
    single 10-million-token line needs memory for one chunk only."""
    if max_line_tokens < 1:
        raise ValueError(f"max_line_tokens must be >= 1, got {max_line_tokens}")
    pending: list[str] = []
    for chunk in iter_chunks(paths, chunk_bytes=chunk_bytes, stats=stats):
        if not chunk.continues and pending:
            yield pending
            pending = []
        lines = chunk.data.split(b"\n")
        ends_line = chunk.data.endswith(b"\n")
        if ends_line:
            lines.pop()  # the empty remainder after the final newline
        for i, line in enumerate(lines):
            toks = [t.decode("utf-8") for t in line.split()]
            if stats is not None:
                stats.tokens += len(toks)
            pending.extend(toks)
            if len(pending) >= max_line_tokens:
                full = len(pending) - len(pending) % max_line_tokens
                for j in range(0, full, max_line_tokens):
                    yield pending[j : j + max_line_tokens]
                pending = pending[full:]
            if (i < len(lines) - 1 or ends_line) and pending:
                yield pending
                pending = []
    if pending:
        yield pending
