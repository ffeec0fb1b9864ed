"""Vocabulary: counts, min_count, gensim's ordering and max_final_vocab, the C tool's vocab
file, subsampling probabilities and the noise distribution."""

from __future__ import annotations

import importlib.resources
import logging
from collections import Counter

import numpy as np
import pytest

from sgjax.corpus import CorpusStats
from sgjax.vocab import (
    Vocab,
    build_vocab,
    count_words,
    effective_min_count,
    keep_probs,
    load_vocab,
    noise_distribution,
    save_vocab,
    subsampled_total,
    vocab_from_counts,
)


def zipf_corpus(rng: np.random.Generator, n_tokens: int, V: int, s: float = 1.1) -> str:
    p = 1.0 / np.arange(1, V + 1) ** s
    ids = rng.choice(V, size=n_tokens, p=p / p.sum())
    words = [f"w{i}" for i in ids]
    lines, i = [], 0
    while i < len(words):
        k = int(rng.integers(1, 30))
        lines.append(" ".join(words[i : i + k]))
        i += k
    return "\n".join(lines) + "\n"


def gensim_vocab(path, min_count: int, max_final_vocab: int | None = None) -> list[str]:
    from gensim.models import Word2Vec  # noqa: PLC0415

    m = Word2Vec(vector_size=4, min_count=min_count, max_final_vocab=max_final_vocab)
    m.build_vocab(corpus_file=str(path))
    return list(m.wv.index_to_key)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "zipf.txt"
    path.write_text(zipf_corpus(np.random.default_rng(0), 30_000, 3_000))
    return path


# --------------------------------------------------------------------------------------------
# counting and ordering


def test_counts_match_a_plain_counter(corpus_file, tokens_method):
    stats = CorpusStats()
    v = build_vocab(corpus_file, min_count=1, stats=stats)
    ref = Counter(corpus_file.read_text().split())
    assert dict(zip(v.words, v.counts.tolist(), strict=True)) == dict(ref)
    assert v.total == v.raw_tokens == stats.tokens == sum(ref.values())
    assert np.all(np.diff(v.counts) <= 0)
    assert [v.index[w] for w in v.words] == list(range(len(v)))


@pytest.mark.parametrize("min_count", [1, 2, 5, 20])
def test_order_and_min_count_equal_gensim(corpus_file, min_count):
    v = build_vocab(corpus_file, min_count=min_count)
    assert list(v.words) == gensim_vocab(corpus_file, min_count)
    assert v.min_count == min_count
    assert v.counts.min() >= min_count


@pytest.mark.parametrize("max_vocab_size", [1, 10, 100, 500, 10**6])
def test_max_vocab_size_is_gensim_max_final_vocab(corpus_file, max_vocab_size):
    v = build_vocab(corpus_file, min_count=2, max_vocab_size=max_vocab_size)
    assert list(v.words) == gensim_vocab(corpus_file, 2, max_vocab_size)
    assert len(v) <= max_vocab_size


def test_tie_break_is_deterministic_and_gensims(tmp_path):
    """Equal counts: the word seen later first (gensim's lexsort((-first_seen, -count)))."""
    path = tmp_path / "ties.txt"
    path.write_text("b a c\nc a b d\nd e\n")
    v = build_vocab(path, min_count=1)
    assert v.words == ("d", "c", "a", "b", "e")  # first seen b, a, c, d: later-first among 2s
    assert list(v.words) == gensim_vocab(path, 1)


@pytest.mark.parametrize(
    ("counts", "min_count", "cap", "expected"),
    [
        ([9, 7, 7, 5, 3], 1, 2, 8),  # 3rd count is 7: ties are never split
        ([9, 7, 7, 5, 3], 1, 3, 6),
        ([9, 7, 7, 5, 3], 6, 4, 6),  # min_count already stricter
        ([9, 7, 7, 5, 3], 1, 5, 1),
        ([9, 7, 7, 5, 3], 2, None, 2),
    ],
)
def test_effective_min_count(counts, min_count, cap, expected):
    assert effective_min_count(np.array(counts), min_count, cap) == expected


def test_vocab_from_counts_orders_ties_later_first():
    counts = {b"a": 50, b"b": 1, b"c": 1, b"d": 2, b"e": 1}
    v = vocab_from_counts(counts, min_count=1)
    assert v.words == ("a", "d", "e", "c", "b")


def test_count_words_with_pruning(tmp_path, tokens_method):
    path = tmp_path / "p.txt"
    rare = " ".join(f"r{i}" for i in range(2000))
    path.write_text(("the of and " * 50 + "\n" + rare + "\n") * 3)
    counts, min_reduce = count_words(path, max_unique_words=100, chunk_bytes=1024)
    assert len(counts) <= 100 + 1024  # at most one chunk's new words above the cap
    assert min_reduce > 1
    assert counts[b"the"] == counts[b"of"] == counts[b"and"] == 150


def _tricky_corpus(rng: np.random.Generator) -> bytes:
    """Every ASCII whitespace byte, NUL and other control bytes, non-ASCII spaces (part of
    a token), tokens of 1 to 40 bytes, repeated and rare words, no final newline."""
    words = ["a", "ab", "a\x00b", "\x01", "x" * 8, "x" * 9, "y" * 24, "z" * 40, "déjà"]
    words += ["日本\u3000語", "a\u00a0b", "\x7f"] + [f"w{i}" for i in range(300)]
    seps = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "  \n\n", "\r\n"]
    picks = rng.integers(0, len(words), 3000) ** 2 % len(words)  # a skewed draw
    return "".join(words[i] + seps[int(rng.integers(0, len(seps)))] for i in picks).encode()[:-1]


@pytest.mark.parametrize("chunk_bytes", [16, 100, 1 << 20])
@pytest.mark.parametrize("max_unique_words", [None, 20])
def test_c_counts_equal_pythons(tmp_path, chunk_bytes, max_unique_words, monkeypatch, c_library):
    """sgjax.ctokens' counts: the same words, counts, order, pruning and stats as Python's."""
    from sgjax import ctokens  # noqa: PLC0415

    lib = c_library("tokens")
    paths = [tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "empty.txt"]
    paths[0].write_bytes(_tricky_corpus(np.random.default_rng(0)))
    paths[1].write_bytes(b"\xef\xbb\xbf" + _tricky_corpus(np.random.default_rng(1)) + b" caf\xe9")
    paths[2].write_bytes(b"")
    results = []
    for library in (lambda: lib, lambda: None):
        monkeypatch.setattr(ctokens, "library", library)
        stats = CorpusStats()
        counts, min_reduce = count_words(paths, max_unique_words, stats, chunk_bytes)
        results.append((list(counts.items()), min_reduce, stats))
    assert results[0] == results[1]
    assert (results[0][1] > 1) == (max_unique_words is not None)
    if max_unique_words is None:
        text = b"\n".join(p.read_bytes() for p in paths).replace(b"\xef\xbb\xbf", b"")
        assert dict(results[0][0]) == Counter(text.replace(b"\xe9", "\ufffd".encode()).split())


def test_c_library_is_used_where_jax_is_imported(tmp_path, monkeypatch, c_library):
    """A run (JAX imported) counts and encodes in C; without JAX, Python (no build)."""
    import jax  # noqa: F401, PLC0415

    from sgjax import ctokens, encode  # noqa: PLC0415

    c_library("tokens")
    path = tmp_path / "c.txt"
    path.write_text("b a b\nc b\n")
    calls = []
    real = ctokens.count_words
    monkeypatch.setattr(ctokens, "count_words", lambda *a: calls.append(1) or real(*a))
    assert build_vocab(path, min_count=1).words == ("b", "c", "a") and calls
    assert isinstance(encode._lookup(build_vocab(path, min_count=1)), ctokens.Lookup)
    monkeypatch.delitem(__import__("sys").modules, "jax")
    calls.clear()
    assert build_vocab(path, min_count=1).words == ("b", "c", "a") and not calls
    assert isinstance(encode._lookup(build_vocab(path, min_count=1)), encode._ByteLookup)


def test_invalid_utf8_words_are_replaced_and_counted(tmp_path, caplog, tokens_method):
    path = tmp_path / "u.txt"
    path.write_bytes(b"caf\xe9 caf\xe9 ok\nok\n")
    stats = CorpusStats()
    with caplog.at_level(logging.WARNING, logger="sgjax.vocab"):
        v = build_vocab(path, min_count=1, stats=stats)
    assert v.words == ("ok", "caf\ufffd") or v.words == ("caf\ufffd", "ok")
    assert stats.replacements == 2
    assert "invalid UTF-8" in caplog.text and str(path) in caplog.text


# --------------------------------------------------------------------------------------------
# bad input


def test_empty_corpus_names_the_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"\n  \n")
    with pytest.raises(ValueError, match=r"empty\.txt.*empty"):
        build_vocab(path)


def test_all_rare_words_name_the_file_and_the_setting(tmp_path):
    path = tmp_path / "rare.txt.gz"
    import gzip  # noqa: PLC0415

    path.write_bytes(gzip.compress(b"a b c d\ne f g\na\n"))
    with pytest.raises(ValueError, match=r"rare\.txt\.gz.*data\.min_count") as err:
        build_vocab(path, min_count=5)
    assert "occurs 2 times" in str(err.value)


def test_vocab_validation():
    with pytest.raises(ValueError, match="descending"):
        Vocab(("a", "b"), np.array([1, 2]))
    with pytest.raises(ValueError, match="unique"):
        Vocab(("a", "a"), np.array([2, 1]))
    with pytest.raises(ValueError, match="min_count"):
        vocab_from_counts({"a": 1}, min_count=0)


# --------------------------------------------------------------------------------------------
# files


def test_save_load_round_trip_in_c_format(tmp_path, corpus_file):
    v = build_vocab(corpus_file, min_count=3)
    path = tmp_path / "vocab.txt"
    save_vocab(v, path, sentences=123)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "</s> 123"
    assert lines[1] == f"{v.words[0]} {v.counts[0]}"
    assert load_vocab(path) == v


def test_load_word2vec_c_vocab(tmp_path):
    path = tmp_path / "c.vocab"
    path.write_bytes("</s> 5\nthe 10\nnaïve 4\nof 7\n".encode())
    v = load_vocab(path)
    assert v.words == ("the", "of", "naïve")
    assert v.counts.tolist() == [10, 7, 4]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"the 10\nbroken\n", r"x\.vocab:2: expected 'word count'"),
        (b"the 10\nof seven\n", r"x\.vocab:2: count is not an integer"),
        (b"the 10\nof -1\n", r"x\.vocab:2: negative count"),
        (b"the 10\nthe 3\n", r"x\.vocab: word 'the' appears twice"),
        (b"the 10\n\xff 3\n", r"x\.vocab:2: invalid UTF-8"),
        (b"", r"x\.vocab holds no words"),
    ],
)
def test_load_vocab_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "x.vocab"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_vocab(path)


# --------------------------------------------------------------------------------------------
# subsampling and noise


def test_keep_probs_formula():
    counts = np.array([1000, 100, 10, 1])
    v = Vocab(("a", "b", "c", "d"), counts)
    s = 1e-2
    f = counts / counts.sum()
    expected = np.minimum(1.0, (np.sqrt(f / s) + 1) * s / f)
    np.testing.assert_allclose(keep_probs(v, s), expected, rtol=1e-12)
    assert keep_probs(v, s)[0] < 0.2 and keep_probs(v, s)[-1] == 1.0
    np.testing.assert_array_equal(keep_probs(v, 0.0), np.ones(4))
    assert subsampled_total(v, 0.0) == counts.sum()
    with pytest.raises(ValueError, match="sample"):
        keep_probs(v, -1e-3)


@pytest.mark.parametrize("exponent", [0.0, 0.5, 0.75, 1.0])
def test_noise_distribution(exponent):
    counts = np.array([81, 16, 16, 1])
    v = Vocab(("a", "b", "c", "d"), counts)
    p = noise_distribution(v, exponent)
    assert p.dtype == np.float64 and abs(p.sum() - 1) < 1e-15
    np.testing.assert_allclose(p, counts**exponent / (counts**exponent).sum(), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# the real corpus


@pytest.mark.slow
def test_realtext_vocabulary_size_equals_gensim():
    path = importlib.resources.files("sgjax") / "data" / "realtext-v1.txt.xz"
    stats = CorpusStats()
    v = build_vocab(path, min_count=5, stats=stats)
    assert len(v) == 25_939
    assert stats.tokens == v.raw_tokens == 3_046_612
    assert stats.lines == 124_236
    assert v.words[:5] == ("the", "of", "and", "to", "a")
