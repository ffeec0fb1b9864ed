"""sgjax.vectors: the lookup object and the word2vec text/binary formats (vs gensim, byte level,
and every kind of malformed file)."""

from __future__ import annotations

import gzip
import struct

import jax.numpy as jnp
import numpy as np
import pytest

from sgjax import vectors_io
from sgjax.vectors import (
    VectorsFormatError,
    WordVectors,
    detect_binary,
    read_word2vec,
    write_word2vec,
)

WORDS = ["the", "of", "naïve", "日本", "Paris", "paris", "x"]


def random_vectors(v: int = 7, n: int = 5, seed: int = 0) -> WordVectors:
    rng = np.random.default_rng(seed)
    words = WORDS[:v] if v <= len(WORDS) else WORDS + [f"w{i}" for i in range(v - len(WORDS))]
    # wide dynamic range: tiny, huge, negative, exact zero
    m = rng.standard_normal((v, n)) * 10.0 ** rng.integers(-8, 8, (v, n))
    m[0, 0] = 0.0
    return WordVectors.from_params(words, m.astype(np.float32))


def f32(*xs: float) -> bytes:
    return struct.pack(f"<{len(xs)}f", *xs)


# --- the object -------------------------------------------------------------------------------
def test_from_params_accepts_jax_arrays_and_param_pytrees():
    W = jnp.arange(12, dtype=jnp.float32).reshape(4, 3)
    a = WordVectors.from_params(["a", "b", "c", "d"], W)
    b = WordVectors.from_params(["a", "b", "c", "d"], {"W": W, "W_out": W})
    assert a.matrix.dtype == np.float32 and a.matrix.shape == (4, 3)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    np.testing.assert_array_equal(a["c"], [6, 7, 8])
    np.testing.assert_array_equal(a[["d", "a"]], [[9, 10, 11], [0, 1, 2]])
    assert "b" in a and "z" not in a and len(a) == 4 and a.dim == 3
    assert a.index == {"a": 0, "b": 1, "c": 2, "d": 3}
    with pytest.raises(ValueError):
        a.matrix[0, 0] = 1.0  # read-only


@pytest.mark.parametrize(
    ("words", "shape", "match"),
    [
        (["a", "b", "a"], (3, 2), "duplicate word 'a' at positions 0 and 2"),
        (["a", "b"], (3, 2), r"expected \(2, N\)"),
        (["a", ""], (2, 2), "non-empty"),
        (["a", "b"], (2,), r"expected \(2, N\)"),
    ],
)
def test_from_params_rejects_bad_input(words, shape, match):
    with pytest.raises(ValueError, match=match):
        WordVectors.from_params(words, np.zeros(shape, np.float32))


def test_unit_rows_and_zero_rows():
    kv = WordVectors.from_params(["a", "b", "z"], np.array([[3, 4], [0, -2], [0, 0]], np.float32))
    np.testing.assert_allclose(kv.unit, [[0.6, 0.8], [0, -1], [0, 0]])
    np.testing.assert_allclose(kv.norms, [5, 2, 0])
    assert kv.similarity("a", "b") == pytest.approx(-0.8)
    assert kv.similarity("a", "z") == 0.0
    with pytest.raises(KeyError, match="'q' not in vocabulary"):
        kv.similarity("a", "q")


def test_most_similar_matches_gensim():
    gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(300)]
    kv = WordVectors.from_params(words, rng.standard_normal((300, 16)).astype(np.float32))
    g = gensim_kv.KeyedVectors(16)
    g.add_vectors(words, kv.matrix)
    vec = rng.standard_normal(16).astype(np.float32)
    cases = [
        dict(positive=["w1"]),
        dict(positive=["w1", "w2"], negative=["w3"], topn=7),
        dict(positive="w5", restrict_vocab=50),
        dict(positive=[("w4", 2.0), "w9"], negative=[("w8", -0.5)], topn=3),
        dict(positive=[vec, "w7"], topn=4),
        dict(negative=["w10"], topn=5),
    ]
    for kw in cases:
        ours, theirs = kv.most_similar(**kw), g.most_similar(**kw)
        assert [w for w, _ in ours] == [w for w, _ in theirs], kw
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6)
    np.testing.assert_allclose(
        kv.most_similar(["w1", "w2"], ["w3"], topn=None),
        g.most_similar(["w1", "w2"], ["w3"], topn=None),
        atol=1e-6,
    )
    assert kv.most_similar("w1", topn=0) == []
    got = kv.similar_by_vector(vec, topn=3)
    assert [w for w, _ in got] == [w for w, _ in g.similar_by_vector(vec, topn=3)]


# --- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("binary", "newline", "suffix"),
    [
        (False, True, ".txt"),
        (True, True, ".bin"),
        (True, False, ".bin"),
        (False, True, ".txt.gz"),
        (True, True, ".bin.gz"),
    ],
)
def test_round_trip_is_exact(tmp_path, binary, newline, suffix, monkeypatch):
    kv = random_vectors()
    p = tmp_path / f"v{suffix}"
    write_word2vec(kv, p, binary=binary, newline=newline)
    whole = gzip.open(p).read() if suffix.endswith(".gz") else p.read_bytes()
    for rows in (1, 3):  # written a block of rows at a time: the same bytes
        monkeypatch.setattr(vectors_io, "_WRITE_ROWS", rows)
        write_word2vec(kv, tmp_path / f"b{suffix}", binary=binary, newline=newline)
        b = tmp_path / f"b{suffix}"
        assert (gzip.open(b).read() if suffix.endswith(".gz") else b.read_bytes()) == whole
    for flag in (binary, None):  # stated and detected format
        back = read_word2vec(p, flag)
        assert back.words == kv.words
        assert back.index == kv.index
        np.testing.assert_array_equal(back.matrix, kv.matrix)  # 9 digits restore float32
    assert detect_binary(p) is binary
    assert not list(tmp_path.glob("*.tmp"))


def test_writer_refuses_words_and_vectors_of_different_counts(tmp_path):
    m = np.ones((3, 2), np.float32)
    for binary in (True, False):
        with pytest.raises(ValueError, match="2 words but 3 vectors"):
            vectors_io.write_arrays(["a", "b"], m, tmp_path / "v", binary)
    assert not list(tmp_path.iterdir())


def test_binary_bytes_are_word2vec_c_layout(tmp_path):
    kv = WordVectors.from_params(["ab", "ç"], np.array([[1.5, -2.0], [0.25, 3.0]], np.float32))
    write_word2vec(kv, tmp_path / "c.bin", binary=True)
    write_word2vec(kv, tmp_path / "g.bin", binary=True, newline=False)
    c_layout = b"2 2\nab " + f32(1.5, -2.0) + b"\n" + "ç ".encode() + f32(0.25, 3.0) + b"\n"
    assert (tmp_path / "c.bin").read_bytes() == c_layout
    gensim_layout = b"2 2\nab " + f32(1.5, -2.0) + "ç ".encode() + f32(0.25, 3.0)
    assert (tmp_path / "g.bin").read_bytes() == gensim_layout
    write_word2vec(kv, tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_bytes() == "2 2\nab 1.5 -2\nç 0.25 3\n".encode()


def test_reads_c_style_text_trailing_space_and_crlf(tmp_path):
    # word2vec.c writes "%s " then "%lf " per value: a space before the newline
    p = tmp_path / "c.txt"
    p.write_bytes(b"2 3\r\nthe 0.100000 -0.200000 0.300000 \r\nof 1.000000 2.000000 3.000000 \r\n")
    kv = read_word2vec(p)
    assert kv.words == ("the", "of")
    np.testing.assert_array_equal(kv.matrix, np.float32([[0.1, -0.2, 0.3], [1, 2, 3]]))


def test_limit_and_duplicates_first(tmp_path):
    p = tmp_path / "d.txt"
    p.write_bytes(b"4 1\na 1\nb 2\na 3\nc 4\n")
    kv = read_word2vec(p, duplicates="first")
    assert kv.words == ("a", "b", "c")
    np.testing.assert_array_equal(kv.matrix[:, 0], [1, 2, 4])
    assert read_word2vec(p, limit=2).words == ("a", "b")
    with pytest.raises(ValueError, match="duplicates"):
        read_word2vec(p, duplicates="last")


def test_empty_table(tmp_path):
    kv = WordVectors.from_params([], np.zeros((0, 3), np.float32))
    for binary in (False, True):
        write_word2vec(kv, tmp_path / "e", binary=binary)
        assert (tmp_path / "e").read_bytes() == b"0 3\n"
        back = read_word2vec(tmp_path / "e", binary)
        assert back.matrix.shape == (0, 3) and back.words == ()


@pytest.mark.parametrize("word", ["a b", "tab\there", "new\nline", ""])
def test_writer_rejects_words_the_format_cannot_hold(tmp_path, word):
    kv = WordVectors(("ok", word), {"ok": 0, word: 1}, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="whitespace"):
        write_word2vec(kv, tmp_path / "x.txt")


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_ours_and_we_read_gensims(tmp_path, binary):
    keyedvectors = pytest.importorskip("gensim.models.keyedvectors")
    kv = random_vectors(40, 12, seed=1)
    ours = tmp_path / "ours"
    write_word2vec(kv, ours, binary=binary)
    g = keyedvectors.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    assert g.index_to_key == list(kv.words)
    np.testing.assert_array_equal(g.vectors, kv.matrix)  # text too: 9 significant digits

    theirs = tmp_path / "theirs"
    g2 = keyedvectors.KeyedVectors(12)
    g2.add_vectors(list(kv.words), kv.matrix)
    g2.save_word2vec_format(str(theirs), binary=binary)
    back = read_word2vec(theirs)  # format detected
    assert back.words == kv.words
    # gensim prints str(np.float32): the shortest repr that parses back to the same float32
    np.testing.assert_array_equal(back.matrix, kv.matrix)


# --- malformed files --------------------------------------------------------------------------
HDR = b"2 2\n"
GOOD_REC = b"a " + f32(1, 2) + b"\n"
MALFORMED = [
    # (content, binary, fragments the message must contain)
    (b"", None, ["line 1", "no header"]),
    (b"hello world\n", None, ["line 1", "bad header 'hello world'"]),
    (b"3\n", None, ["line 1", "bad header"]),
    (b"3 2 1\n", None, ["line 1", "bad header"]),
    (b"-3 2\n", None, ["line 1", "bad header"]),
    (b"3 0\n", None, ["line 1", "bad header"]),
    # text
    (b"2 3\na 1 2 3\nb 1 2\n", False, ["line 3", "expected 3 values after the word 'b', found 2"]),
    (b"2 2\na 1 2\nb 1 2 3\n", False, ["line 3", "found 3"]),
    (b"2 2\na 1 2\nb\n", False, ["line 3", "found 0"]),
    (b"2 2\na 1 x\nb 1 2\n", False, ["line 2", "value 2 of word 'a' is not a number: 'x'"]),
    (b"2 2\na 1 2\nb 1e9e9 2\n", False, ["line 3", "not a number: '1e9e9'"]),
    (b"3 2\na 1 2\nb 1 2\n", False, ["line 4", "header declares 3 vectors, found 2"]),
    (b"3 2\na 1 2\nb 1 2", False, ["line 4", "found 2"]),
    (b"2 2\na 1 2\nb 1 2\nc 1 2\n", False, ["line 4", "more lines than the 2 vectors"]),
    (b"3 2\na 1 2\n\nb 1 2\n", False, ["line 3", "empty word"]),
    (b"2 2\na 1 2\n\xff\xfeb 1 2\n", False, ["line 3", "not valid UTF-8"]),
    (b"3 1\na 1\nb 2\na 3\n", False, ["line 4", "duplicate word 'a' (first seen at line 2)"]),
    # binary (offsets: the header is 4 bytes, a record "w " + 8 bytes + "\n" is 11)
    (HDR + GOOD_REC + b"b " + f32(1), True, ["byte offset 17", "needs 8 bytes of vector, 4 left"]),
    (
        b"3 2\n" + GOOD_REC + b"b " + f32(1, 2) + b"c " + f32(1)[:3],
        True,
        ["byte offset 27", "word 'c' (record 3 of 3) needs 8 bytes of vector, 3 left"],
    ),
    (HDR + GOOD_REC + b"bbbb", True, ["byte offset 15", "record 2 of 2 has no word"]),
    (
        b"3 2\n" + GOOD_REC * 1 + b"b " + f32(1, 2) + b"\nc" + b"\0" * 20,
        True,
        ["byte offset 26", "record 3 of 3 has no word"],
    ),
    (HDR + GOOD_REC + b"\xc3\x28 " + f32(1, 2), True, ["byte offset 15", "not valid UTF-8"]),
    (
        HDR + GOOD_REC + b"a " + f32(1, 2),
        True,
        ["byte offset 15", "duplicate word 'a' (first seen at byte offset 4)"],
    ),
    (
        HDR + GOOD_REC + b"b " + f32(1, 2) + b"\nextra",
        True,
        ["byte offset 26", "unexpected data after the 2 vectors"],
    ),
    (b"2 2\nthe 0.123 0.456\nof 0.3 0.4\n", True, ["byte offset 16", "word contains a newline"]),
]


@pytest.mark.parametrize(("content", "binary", "fragments"), MALFORMED)
def test_malformed_files_name_the_place(tmp_path, content, binary, fragments):
    p = tmp_path / "bad.vec"
    p.write_bytes(content)
    with pytest.raises(VectorsFormatError) as info:
        read_word2vec(p, binary)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert msg.startswith(str(p) + ": ")
    for frag in fragments:
        assert frag in msg, msg
    assert (info.value.line is not None) or (info.value.offset is not None)


def test_malformed_gzip_and_missing_file(tmp_path):
    p = tmp_path / "v.txt.gz"
    p.write_bytes(gzip.compress(b"2 2\na 1 2\nb 1 2\n")[:-6])
    with pytest.raises(VectorsFormatError, match="gzip"):
        read_word2vec(p)
    with pytest.raises(FileNotFoundError):
        read_word2vec(tmp_path / "nope.txt")


def test_unicode_errors_replace_reads_cut_words(tmp_path):
    # word2vec.c can cut a long word inside a multi-byte character
    p = tmp_path / "cut.bin"
    p.write_bytes(b"1 2\n" + "日".encode()[:2] + b" " + f32(1, 2) + b"\n")
    with pytest.raises(VectorsFormatError, match="byte offset 4"):
        read_word2vec(p, True)
    assert read_word2vec(p, True, unicode_errors="replace").words == ("\ufffd",)
