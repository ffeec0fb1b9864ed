"""Corpus reading: paths, compression, UTF-8 repair, line splitting, the vectorised tokeniser."""

from __future__ import annotations

import bz2
import gzip
import lzma
import tracemalloc

import numpy as np
import pytest

from sgjax.corpus import (
    MAX_TOKEN_BYTES,
    CorpusStats,
    iter_chunks,
    iter_lines,
    prefetch,
    resolve_paths,
    token_spans,
)


def reference_lines(texts: list[bytes], max_line_tokens: int) -> list[list[str]]:
    """Plain-Python statement of the reader's contract."""
    out = []
    for data in texts:
        for line in data.split(b"\n"):
            toks = [t.decode("utf-8", "replace") for t in line.split()]
            out.extend(toks[i : i + max_line_tokens] for i in range(0, len(toks), max_line_tokens))
    return out


def random_text(rng: np.random.Generator, n_lines: int, max_len: int = 30) -> bytes:
    words = ["a", "bb", "ccc", "déjà", "x" * 30, "naïve", "日本", "z9"]
    seps = [" ", " ", " ", "\t", "  ", "\r", "\x0b", "\x0c"]
    lines = []
    for _ in range(n_lines):
        k = int(rng.integers(0, max_len))
        toks = [words[i] for i in rng.integers(0, len(words), k)]
        line = "".join(t + seps[int(rng.integers(0, len(seps)))] for t in toks)
        lines.append(seps[int(rng.integers(0, len(seps)))] * int(rng.integers(0, 2)) + line)
    return "\n".join(lines).encode("utf-8")


# --------------------------------------------------------------------------------------------
# paths


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        resolve_paths(missing)
    (tmp_path / "ok.txt").write_bytes(b"a b\n")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        list(iter_lines([tmp_path / "ok.txt", missing]))


def test_empty_directory_and_empty_list(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="contains no files"):
        resolve_paths(tmp_path / "d")
    with pytest.raises(ValueError, match="data.corpus"):
        resolve_paths([])


def test_directory_sorted_recursive_hidden_skipped(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"b\n")
    (tmp_path / "a.txt").write_bytes(b"a\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_bytes(b"c\n")
    (tmp_path / ".hidden").write_bytes(b"h\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x").write_bytes(b"x\n")
    names = [p.name for p in resolve_paths(tmp_path)]
    assert names == ["a.txt", "b.txt", "c.txt"]
    assert list(iter_lines(tmp_path)) == [["a"], ["b"], ["c"]]


def test_directory_of_mixed_compressed_files(tmp_path):
    rng = np.random.default_rng(0)
    texts = [random_text(rng, 50) for _ in range(5)]
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "0-plain.txt").write_bytes(texts[0])
    (d / "1-gzip.txt.gz").write_bytes(gzip.compress(texts[1]))
    (d / "2-bzip2.txt.bz2").write_bytes(bz2.compress(texts[2]))
    (d / "3-xz.txt.xz").write_bytes(lzma.compress(texts[3]))
    (d / "4-upper.TXT.GZ").write_bytes(gzip.compress(texts[4]))
    stats = CorpusStats()
    got = list(iter_lines(d, max_line_tokens=7, stats=stats, chunk_bytes=64))
    assert got == reference_lines(texts, 7)
    assert stats.files == 5
    assert stats.bytes == sum(map(len, texts))
    assert stats.tokens == sum(len(t.split()) for t in texts)
    assert stats.lines == sum(t.count(b"\n") + (not t.endswith(b"\n")) for t in texts)


# --------------------------------------------------------------------------------------------
# tokeniser and chunks


@pytest.mark.parametrize("seed", range(5))
def test_token_spans_is_bytes_split(seed):
    rng = np.random.default_rng(seed)
    alphabet = np.array([0, 8, 9, 10, 11, 12, 13, 14, 31, 32, 33, 97, 128, 160, 200, 255], np.uint8)
    for _ in range(50):
        data = rng.choice(alphabet, size=int(rng.integers(0, 200))).tobytes()
        starts, lengths = token_spans(data)
        assert [data[s : s + n] for s, n in zip(starts, lengths, strict=True)] == data.split()


@pytest.mark.parametrize("chunk_bytes", [16, 23, 64, 1000, 1 << 20])
def test_chunks_reassemble_and_cut_at_whitespace(tmp_path, chunk_bytes):
    rng = np.random.default_rng(1)
    text = random_text(rng, 80)
    path = tmp_path / "c.txt"
    path.write_bytes(text)
    chunks = list(iter_chunks(path, chunk_bytes=chunk_bytes))
    assert b"".join(c.data for c in chunks) == text
    for prev, c in zip(chunks, chunks[1:], strict=False):
        assert c.continues == (not prev.data.endswith(b"\n"))
        assert prev.data[-1:].isspace()  # no token is cut (all are shorter than the chunk)
    assert [c.offset for c in chunks] == list(np.cumsum([0] + [len(c.data) for c in chunks])[:-1])


@pytest.mark.parametrize("n_bytes", [80, 3 * MAX_TOKEN_BYTES])
def test_huge_token(tmp_path, n_bytes):
    """A token longer than the chunk is kept whole up to MAX_TOKEN_BYTES, and beyond that
    cut on a character boundary (never into invalid UTF-8)."""
    word = "é" * (n_bytes // 2)
    path = tmp_path / "long.txt"
    path.write_text(f"a {word} b\n", encoding="utf-8")
    stats = CorpusStats()
    chunks = list(iter_chunks(path, chunk_bytes=16, stats=stats))
    assert stats.replacements == 0
    assert "".join(c.data.decode("utf-8") for c in chunks) == f"a {word} b\n"
    tokens = [t for c in chunks for t in c.data.split()]
    if n_bytes < MAX_TOKEN_BYTES:
        assert tokens == [b"a", word.encode(), b"b"]
    else:
        assert len(tokens) > 3 and max(map(len, tokens)) <= 2 * MAX_TOKEN_BYTES


def test_bom_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello world\n")
    assert list(iter_lines(path)) == [["hello", "world"]]


# --------------------------------------------------------------------------------------------
# lines


@pytest.mark.parametrize("max_line_tokens", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("chunk_bytes", [16, 37, 1 << 20])
def test_iter_lines_matches_reference(tmp_path, max_line_tokens, chunk_bytes):
    rng = np.random.default_rng(max_line_tokens * 100 + chunk_bytes)
    text = random_text(rng, 60)
    path = tmp_path / "r.txt"
    path.write_bytes(text)
    got = list(iter_lines(path, max_line_tokens=max_line_tokens, chunk_bytes=chunk_bytes))
    assert got == [line for line in reference_lines([text], max_line_tokens) if line]


def test_empty_lines_and_no_final_newline(tmp_path):
    path = tmp_path / "e.txt"
    path.write_bytes(b"\n\n  \n one two \n\nthree")
    stats = CorpusStats()
    assert list(iter_lines(path, stats=stats)) == [["one", "two"], ["three"]]
    assert stats.lines == 6


def test_empty_file_reads_as_nothing(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    stats = CorpusStats()
    assert list(iter_lines(path, stats=stats)) == []
    assert (stats.files, stats.bytes, stats.lines, stats.tokens) == (1, 0, 0, 0)


def test_bad_max_line_tokens(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"a\n")
    with pytest.raises(ValueError, match="max_line_tokens"):
        list(iter_lines(path, max_line_tokens=0))


def test_ten_million_token_line_is_split_and_streamed(tmp_path):
    """One line of 10M tokens (20 MB): pieces of max_line_tokens, yielded while reading, so
    the reader's memory stays at a few chunks (the whole line as str objects: ~600 MB)."""
    n, m = 10_000_003, 1000
    path = tmp_path / "one-line.txt"
    path.write_bytes(b"w " * n)
    stats = CorpusStats()
    pieces = 0
    tracemalloc.start()
    try:
        for piece in iter_lines(path, max_line_tokens=m, stats=stats, chunk_bytes=1 << 18):
            assert len(piece) == m or pieces == n // m
            pieces += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pieces == n // m + 1
    assert stats.tokens == n
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"


# --------------------------------------------------------------------------------------------
# invalid UTF-8


def test_invalid_utf8_replaced_counted_reported(tmp_path):
    good = "naïve café\n".encode()
    bad = b"caf\xe9 ok \xff\xfe end\n"  # three invalid bytes, two of them adjacent
    path = tmp_path / "bad.txt.gz"
    path.write_bytes(gzip.compress(good + bad + b"\xef\xbf\xbd kept\n"))
    stats = CorpusStats()
    lines = list(iter_lines(path, stats=stats))
    assert lines == [
        ["naïve", "café"],
        ["caf\ufffd", "ok", "\ufffd\ufffd", "end"],
        ["\ufffd", "kept"],  # a genuine U+FFFD in the input is not counted
    ]
    assert stats.replacements == 3
    assert stats.replaced_per_file == {str(path): 3}
    assert stats.first_replacement == (str(path), len(good) + 3)
    report = stats.report()
    assert "3 invalid UTF-8" in report and str(path) in report and f"byte {len(good) + 3}" in report


def test_invalid_utf8_offsets_across_chunks(tmp_path):
    path = tmp_path / "bad.txt"
    data = b"aaaa bbbb\n" * 10 + b"x\x80y\n"
    path.write_bytes(data)
    stats = CorpusStats()
    list(iter_chunks(path, chunk_bytes=16, stats=stats))
    assert stats.first_replacement == (str(path), data.index(b"\x80"))
    assert stats.replacements == 1


# --------------------------------------------------------------------------------------------
# prefetch


def test_prefetch_order_errors_and_early_close():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise RuntimeError("boom")

    it = prefetch(failing())
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="boom"):
        next(it)

    it = prefetch(iter(range(10**9)), depth=2)
    assert next(it) == 0
    it.close()  # must return promptly, stopping the producer thread
