"""Encoding, caching, word2vec-exact example generation, fixed-shape batches, negatives."""

from __future__ import annotations

import gzip
import importlib.resources
import json
import os
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import tiered
from scipy import stats as sps

from sgjax import ctokens, encode
from sgjax.batches import _mask_table, epoch_batches, epoch_steps
from sgjax.corpus import CorpusStats
from sgjax.encode import EncodedCorpus, encode_corpus
from sgjax.gradcheck import toy_vocab
from sgjax.huffman import build_huffman, path_fields
from sgjax.inputs import INPUTS
from sgjax.losses import pair_losses
from sgjax.model import ModelSpec, complete
from sgjax.model import spec as model_spec
from sgjax.noise import NOISE_TOTAL, noise_table, sample_negatives
from sgjax.outputs import REGISTRY
from sgjax.params import init_params
from sgjax.vocab import Vocab, build_vocab, keep_probs, noise_distribution

# Words that stress the byte keys: 8/9/16/17/24/25-byte boundaries, NUL bytes, shared
# prefixes, non-ASCII, long words that take the dict path.
WORDS = [
    "a",
    "a\x00",
    "ab",
    "abcdefgh",
    "abcdefghi",
    "abcdefgh\x00",
    "abcdefghijklmnop",
    "abcdefghijklmnopq",
    "abcdefghijklmnopqrstuvwx",
    "abcdefghijklmnopqrstuvwxy",
    "x" * 40,
    "x" * 41,
    "déjà",
    "日本語",
    "naïve",
    "the",
    "of",
]


def vocab_of(words: list[str]) -> Vocab:
    return Vocab(tuple(words), np.arange(len(words), 0, -1) * 10)


def random_corpus(rng: np.random.Generator, n_lines: int, words: list[str]) -> bytes:
    seps = [" ", " ", "\t", "  ", "\r", "\x0b"]
    lines = []
    for _ in range(n_lines):
        k = int(rng.integers(0, 25))
        toks = [words[i] for i in rng.integers(0, len(words), k)]
        lines.append("".join(t + seps[int(rng.integers(0, len(seps)))] for t in toks))
    return "\n".join(lines).encode("utf-8")


def reference_encode(texts: list[bytes], vocab: Vocab, max_line_tokens: int):
    """Plain-Python statement of the encoder's contract."""
    tokens, offsets = [], [0]
    for data in texts:
        for line in data.split(b"\n"):
            toks = line.split()
            for i in range(0, len(toks), max_line_tokens):
                piece = [t.decode("utf-8", "replace") for t in toks[i : i + max_line_tokens]]
                ids = [vocab.index[w] for w in piece if w in vocab.index]
                if ids:
                    tokens += ids
                    offsets.append(len(tokens))
    return np.array(tokens, np.int32), np.array(offsets, np.int64)


# --------------------------------------------------------------------------------------------
# encoding


@pytest.mark.parametrize("seed", range(3))
def test_byte_lookup_is_exact(seed, tokens_method):
    rng = np.random.default_rng(seed)
    in_vocab = [w for w in WORDS if rng.random() < 0.6] or ["a"]
    lookup = encode._lookup(vocab_of(in_vocab))
    assert isinstance(lookup, ctokens.Lookup) == (tokens_method == "c")
    data = random_corpus(rng, 200, WORDS + ["oov", "abcdefghij", "a\x00\x00", "x" * 42])
    data += b" \x0c trailing\n\n"
    index = {w.encode(): i for i, w in enumerate(in_vocab)}
    for cut in (len(data), 0, 1, 7, len(data) // 2):  # also chunks cut anywhere
        piece = data[:cut]
        ids, nl_first = lookup.tokens(piece)
        np.testing.assert_array_equal(ids, [index.get(t, -1) for t in piece.split()])
        lines = piece.split(b"\n")[:-1]  # the tokens before each newline
        assert nl_first.tolist() == np.cumsum([len(x.split()) for x in lines]).tolist()


def test_byte_lookup_large_vocabulary(tokens_method):
    words = [f"w{i}" for i in range(50_000)] + [f"{'y' * 20}{i}" for i in range(2_000)]
    v = Vocab(tuple(words), np.ones(len(words), np.int64))
    data = " ".join(words[::-1] + ["w50000", "w-1", "y" * 20]).encode()
    ids, _ = encode._lookup(v).tokens(data)
    np.testing.assert_array_equal(ids[:-3], np.arange(len(words))[::-1])
    assert ids[-3:].tolist() == [-1, -1, -1]


@pytest.mark.parametrize("in_vocab", [0.15, 0.7])
@pytest.mark.parametrize("max_line_tokens", [1, 3, 1000])
@pytest.mark.parametrize("chunk_bytes", [17, 64, 1 << 20])
def test_encode_matches_reference(tmp_path, max_line_tokens, chunk_bytes, in_vocab, tokens_method):
    rng = np.random.default_rng(max_line_tokens + chunk_bytes + int(100 * in_vocab))
    vocab = vocab_of([w for w in WORDS if rng.random() < in_vocab] or ["the"])
    texts = [random_corpus(rng, 100, WORDS) for _ in range(3)]
    texts[1] += b"\n" + b" ".join([b"the"] * 50)  # a long line, ends without a newline
    texts[2] = b"caf\xe9 the \xff " + texts[2]  # invalid UTF-8
    paths = [tmp_path / "0.txt", tmp_path / "1.txt.gz", tmp_path / "2.txt"]
    paths[0].write_bytes(texts[0])
    paths[1].write_bytes(gzip.compress(texts[1]))
    paths[2].write_bytes(texts[2])
    stats = CorpusStats()
    enc = encode_corpus(paths, vocab, None, max_line_tokens, stats=stats, chunk_bytes=chunk_bytes)
    tokens, offsets = reference_encode(texts, vocab, max_line_tokens)
    np.testing.assert_array_equal(enc.tokens, tokens)
    np.testing.assert_array_equal(enc.offsets, offsets)
    assert enc.raw_tokens == stats.tokens == sum(len(t.split()) for t in texts)
    assert stats.replacements == 2
    assert np.all(np.diff(enc.offsets) >= 1)


def test_cache_is_reused_and_invalidated(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the of a\nab the\n")
    vocab = vocab_of(["the", "of", "a", "ab"])
    cache = tmp_path / "cache"
    first = encode_corpus(corpus, vocab, cache)
    assert not first.reused and isinstance(first.tokens, np.memmap)
    again = encode_corpus(corpus, vocab, cache)
    assert again.reused
    np.testing.assert_array_equal(again.tokens, first.tokens)
    np.testing.assert_array_equal(np.load(cache / "offsets.npy"), [0, 3, 5])
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["n_tokens"] == 5 and len(manifest["sha256"]) == 64
    # a different vocabulary or setting re-encodes
    assert not encode_corpus(corpus, vocab_of(["the", "of"]), cache).reused
    assert not encode_corpus(corpus, vocab, cache, max_line_tokens=2).reused
    assert encode_corpus(corpus, vocab, cache, max_line_tokens=2).reused
    # a changed corpus file (same size, new mtime) re-encodes
    corpus.write_text("ab ab ab\nab the\n")
    st = corpus.stat()
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = encode_corpus(corpus, vocab, cache, max_line_tokens=2)
    assert not changed.reused
    assert changed.tokens.tolist() == [3, 3, 3, 3, 0]
    # a damaged cache re-encodes
    with open(cache / "tokens.npy", "r+b") as f:
        f.truncate(130)
    assert not encode_corpus(corpus, vocab, cache, max_line_tokens=2).reused


def test_encode_errors(tmp_path, tokens_method):
    vocab = vocab_of(["the"])
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        encode_corpus(tmp_path / "missing.txt", vocab, None)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        encode_corpus(empty, vocab, tmp_path / "cache")
    oov = tmp_path / "oov.txt"
    oov.write_bytes(b"a b c\n")
    with pytest.raises(ValueError, match=r"oov\.txt is made only of words outside"):
        encode_corpus(oov, vocab, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.tmp-*"))  # no partial files left behind


def test_ten_million_token_line(tmp_path, tokens_method):
    """A 10M-token single line is split at max_line_tokens; encoding streams through a 20 MB
    file into a 36 MB memory-mapped stream with a small fraction of that in memory."""
    path = tmp_path / "line.txt"
    path.write_bytes(b"a b c d e f g h i j " * 1_000_000)
    vocab = vocab_of(list("abcdefghi"))  # 'j' is out of the vocabulary
    tracemalloc.start()
    try:
        enc = encode_corpus(path, vocab, tmp_path / "cache", 1000, chunk_bytes=1 << 18)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert enc.n_tokens == 9_000_000 and enc.raw_tokens == 10_000_000
    assert enc.n_sentences == 10_000
    assert np.all(np.diff(enc.offsets) == 900)
    assert enc.tokens[:10].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0]
    assert peak < 24 << 20, f"peak {peak / 2**20:.1f} MiB"


# --------------------------------------------------------------------------------------------
# example generation


def run_epoch(enc, vocab, **kw):
    args = dict(window=3, sample=0.0, batch_size=16, seed=0, epoch=0)
    args.update(kw)
    return list(epoch_batches(enc, vocab, **args))


def distinct_corpus(rng, n_sentences, max_len):
    """Every token a distinct word, so an id tells its sentence and position."""
    lens = rng.integers(1, max_len + 1, n_sentences)
    N = int(lens.sum())
    offsets = np.concatenate([[0], np.cumsum(lens)])
    enc = EncodedCorpus.from_sentences(
        [np.arange(offsets[s], offsets[s + 1]) for s in range(n_sentences)], vocab_size=N
    )
    vocab = Vocab(tuple(f"w{i}" for i in range(N)), np.ones(N, np.int64))
    return enc, vocab


def check_batches(batches, enc, window, batch_size, sample_zero=True, grouped=False):
    """Fixed shapes; padding masked; windows inside sentences and of one b per centre; words.
    ``grouped`` (window_buckets): padding rows may sit in any batch and group."""
    C = 2 * window
    offs = np.asarray(enc.offsets)
    sent = np.repeat(np.arange(enc.n_sentences), np.diff(offs))
    table = _mask_table(window)
    rows = 0
    for i, b in enumerate(batches):
        assert b["center"].shape == (batch_size,) and b["center"].dtype == np.int32
        assert b["context"].shape == (batch_size, C) and b["context"].dtype == np.int32
        assert b["mask"].shape == (batch_size, C) and b["mask"].dtype == np.bool_
        assert b["words"].shape == () and b["words"].dtype == np.int32
        real = b["mask"].any(1)
        if grouped:
            assert not b["center"][~real].any() and not b["context"][~real].any()
        elif i < len(batches) - 1:
            assert real.all()
        else:  # padding: only at the end, fully masked, zero ids
            n = int(real.sum())
            assert real[:n].all() and not real[n:].any()
            assert not b["center"][n:].any() and not b["context"][n:].any()
        assert not b["context"][~b["mask"]].any()  # masked slots hold 0
        if sample_zero:  # ids are positions: check the window exactly
            c = b["center"][real]
            ctx = b["context"][real]
            m = b["mask"][real]
            off = np.r_[-window:0, 1 : window + 1]
            pos = c[:, None] + off
            np.testing.assert_array_equal(np.where(m, pos, 0), ctx)  # the right neighbours
            inside = (pos >= 0) & (pos < enc.n_tokens)
            same = inside & (sent[np.clip(pos, 0, enc.n_tokens - 1)] == sent[c][:, None])
            assert not (m & ~same).any(), "a window crosses a sentence boundary"
            # one b per centre: mask == table[min(b, left room), min(b, right room)]
            left = m[:, :window].sum(1)
            right = m[:, window:].sum(1)
            room_l = c - offs[sent[c]]
            room_r = offs[sent[c] + 1] - 1 - c
            for bb in range(1, window + 1):
                ok = (np.minimum(bb, room_l) == left) & (np.minimum(bb, room_r) == right)
                hit = ok & (table[left * (window + 1) + right] == m).all(1)
                if bb == 1:
                    consistent = hit
                else:
                    consistent |= hit
            assert consistent.all()
        rows += int(real.sum())
    assert sum(int(b["words"].sum()) for b in batches) == enc.n_tokens
    return rows


@pytest.mark.parametrize("chunk_tokens", [1, 7, 1 << 16])
@pytest.mark.parametrize(("window", "batch_size"), [(1, 1), (3, 16), (5, 7)])
def test_windows_exact_with_sample_zero(chunk_tokens, window, batch_size):
    rng = np.random.default_rng(window * 1000 + batch_size)
    enc, vocab = distinct_corpus(rng, 200, 12)
    batches = run_epoch(enc, vocab, window=window, batch_size=batch_size, chunk_tokens=chunk_tokens)
    rows = check_batches(batches, enc, window, batch_size)
    lens = np.diff(np.asarray(enc.offsets))
    assert rows == lens[lens >= 2].sum()  # every token of a multi-word sentence, once
    centers = np.concatenate([b["center"][b["mask"].any(1)] for b in batches])
    assert np.array_equal(np.sort(centers), centers)  # in corpus order


def _rows(batches) -> list[tuple]:
    """Every real example of an epoch as a hashable (centre, contexts, mask) row."""
    out = []
    for b in batches:
        real = b["mask"].any(1)
        for c, ctx, m in zip(b["center"][real], b["context"][real], b["mask"][real], strict=True):
            out.append((int(c), tuple(ctx.tolist()), tuple(m.tolist())))
    return out


@pytest.mark.parametrize("chunk_tokens", [7, 1 << 16])
@pytest.mark.parametrize(("window", "batch_size"), [(1, 3), (3, 15), (5, 20)])
def test_window_buckets_regroup_the_same_examples(chunk_tokens, window, batch_size):
    """window_buckets: the same examples (same draws) as the plain epoch, regrouped so that
    rows [(b-1) B/w, b B/w) only use the 2b slots around the centre; every batch but the
    padded tail ones is full; the words still add up to the corpus."""
    rng = np.random.default_rng(window)
    enc, vocab = distinct_corpus(rng, 300, 12)
    kw = dict(window=window, batch_size=batch_size, chunk_tokens=chunk_tokens)
    plain = run_epoch(enc, vocab, **kw)
    grouped = run_epoch(enc, vocab, window_buckets=True, **kw)
    check_batches(grouped, enc, window, batch_size, grouped=True)  # windows exact, words
    assert sorted(_rows(grouped)) == sorted(_rows(plain))
    Bb = batch_size // window
    full = 0
    for b in grouped:
        for k in range(window):  # group b = k + 1: slots window-b .. window+b-1 only
            rows = slice(k * Bb, (k + 1) * Bb)
            outside = np.ones(2 * window, bool)
            outside[window - k - 1 : window + k + 1] = False
            assert not b["mask"][rows][:, outside].any()
            assert not b["context"][rows][:, outside].any()
        full += bool(b["mask"].any(1).all())
    n_rows = len(_rows(plain))
    assert full >= n_rows // batch_size - 4 * window  # only the queues' tail is padded
    for k in range(window):  # the centres of one group stay in stream order
        rows = slice(k * Bb, (k + 1) * Bb)
        cs = np.concatenate([b["center"][rows][b["mask"][rows].any(1)] for b in grouped])
        assert np.array_equal(np.sort(cs), cs)


def test_window_buckets_need_a_multiple_of_window():
    rng = np.random.default_rng(0)
    enc, vocab = distinct_corpus(rng, 20, 5)
    with pytest.raises(ValueError, match="multiple of window=3"):
        run_epoch(enc, vocab, window=3, batch_size=16, window_buckets=True)


def test_window_buckets_no_examples():
    enc = EncodedCorpus.from_sentences([np.array([0]), np.array([1])], vocab_size=2)
    vocab = Vocab(("a", "b"), np.ones(2, np.int64))
    (b,) = run_epoch(enc, vocab, window=2, batch_size=4, window_buckets=True)
    assert not b["mask"].any() and int(b["words"]) == 2


@pytest.mark.parametrize("sample", [1e-3, 1e-2])
def test_windows_valid_with_subsampling(sample):
    rng = np.random.default_rng(1)
    ids = rng.zipf(1.3, 20_000) % 300
    sents = np.split(ids, np.cumsum(rng.integers(1, 30, 2000)))
    counts = np.bincount(ids, minlength=300)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(300, np.int64)
    rank[order] = np.arange(300)
    enc = EncodedCorpus.from_sentences([rank[s] for s in sents], vocab_size=300)
    vocab = Vocab(tuple(f"w{i}" for i in range(300)), counts[order])
    batches = run_epoch(enc, vocab, sample=sample, window=4, batch_size=64, chunk_tokens=500)
    check_batches(batches, enc, 4, 64, sample_zero=False)


def test_memory_mapped_stream_reads_like_memory(tmp_path):
    """Epochs over the cached (memory-mapped, read with pread) stream equal epochs over the
    same arrays in memory; many short sentences exercise the offsets' read-ahead."""
    rng = np.random.default_rng(4)
    lines = [" ".join(rng.choice(list("abcdefg"), rng.integers(1, 4))) for _ in range(6000)]
    path = tmp_path / "short.txt"
    path.write_text("\n".join(lines))
    vocab = vocab_of(list("abcdef"))  # 'g' is dropped
    cached = encode_corpus(path, vocab, tmp_path / "cache")
    assert isinstance(cached.tokens, np.memmap)
    memory = EncodedCorpus(np.array(cached.tokens), np.array(cached.offsets), vocab_size=6)
    for chunk_tokens in (5, 1 << 16):
        kw = dict(window=2, sample=1e-2, batch_size=64, chunk_tokens=chunk_tokens)
        a, b = run_epoch(cached, vocab, **kw), run_epoch(memory, vocab, **kw)
        assert len(a) == len(b) > 10
        for x, y in zip(a, b, strict=True):
            for k in x:
                np.testing.assert_array_equal(x[k], y[k])
        check_batches(a, memory, 2, 64, sample_zero=False)


def test_deterministic_per_seed_and_epoch():
    enc, vocab = distinct_corpus(np.random.default_rng(2), 300, 20)
    kw = dict(sample=0.0, window=5, batch_size=32)

    def flat(batches):
        return np.concatenate(
            [np.concatenate([b["center"], b["context"].ravel()]) for b in batches]
        )

    a = flat(run_epoch(enc, vocab, seed=3, epoch=1, **kw))
    assert np.array_equal(a, flat(run_epoch(enc, vocab, seed=3, epoch=1, **kw)))
    assert not np.array_equal(a, flat(run_epoch(enc, vocab, seed=3, epoch=2, **kw)))
    assert not np.array_equal(a, flat(run_epoch(enc, vocab, seed=4, epoch=1, **kw)))


def test_one_record_serves_every_input_side():
    """The epoch's record names no architecture: every input side reads the same batches.
    Skip-gram's pairs are the real context slots (centre -> context, or each context word ->
    centre), CBOW's one pair per real example."""
    enc, vocab = distinct_corpus(np.random.default_rng(3), 50, 10)
    batches = run_epoch(enc, vocab)
    W = jnp.zeros((len(vocab), 4))
    for b in batches:
        B, C = b["context"].shape
        pairs = {}
        for name, side in INPUTS.items():
            model = ModelSpec(input=name)
            H, T = side.layout(C)
            h, hmask = side.hidden(W, b, model)
            targets, tmask = side.targets(b)
            assert h.shape == (B, H, 4) and targets.shape == (B, T), name
            pairs[name] = int((hmask[:, :, None] & tmask[:, None, :]).sum())
        np.testing.assert_array_equal(INPUTS["skipgram"].targets(b)[0], b["context"])
        np.testing.assert_array_equal(INPUTS["cbow"].targets(b)[0][:, 0], b["center"])
        slots, examples = int(b["mask"].sum()), int(b["mask"].any(1).sum())
        assert slots > examples > 0
        assert pairs["skipgram"] == pairs["skipgram_context"] == slots
        assert pairs["cbow"] == examples


def test_no_examples_gives_one_masked_batch_with_all_words():
    enc = EncodedCorpus.from_sentences([[0], [1], [0]], vocab_size=2)
    vocab = Vocab(("a", "b"), np.array([2, 1]))
    (b,) = run_epoch(enc, vocab, batch_size=4)
    assert not b["mask"].any() and not b["center"].any()
    assert b["words"] == 3


def test_words_attribute_dropped_tokens():
    enc = EncodedCorpus.from_sentences([[0, 1], [1], [0, 1, 0], [1]], vocab_size=2)
    vocab = Vocab(("a", "b"), np.array([4, 3]))
    batches = run_epoch(enc, vocab, batch_size=2, window=2)
    assert [b["center"][b["mask"].any(1)].size for b in batches] == [2, 2, 1]
    # centres at positions 0, 1 | 3, 4 | 5: the singleton at 2 counts with the second
    # batch, the one at 6 (the epoch's tail) with the last
    assert [int(b["words"]) for b in batches] == [2, 3, 2]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(window=0), "window"),
        (dict(batch_size=0), "batch_size"),
        (dict(sample=-1.0), "sample"),
    ],
)
def test_epoch_argument_errors(kw, match):
    enc, vocab = distinct_corpus(np.random.default_rng(0), 5, 5)
    with pytest.raises(ValueError, match=match):
        run_epoch(enc, vocab, **kw)


def test_vocab_mismatch_is_an_error():
    enc, vocab = distinct_corpus(np.random.default_rng(0), 5, 5)
    small = Vocab(("a",), np.array([1]))
    with pytest.raises(ValueError, match="encoded with a vocabulary"):
        run_epoch(enc, small)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(
    ("window", "batch_size", "buckets"), [(1, 1, False), (3, 16, False), (5, 7, False),
                                          (2, 4, True), (5, 20, True), (3, 300, True)]
)  # fmt: skip
@pytest.mark.parametrize("sample", [0.0, 1e-2])
def test_epoch_steps_counts_the_batches(shuffle, window, batch_size, buckets, sample):
    """epoch_steps (the schedule's length) = the batches epoch_batches yields, for the
    same draws: subsampling, windows, buckets, shuffled order, across epochs and seeds."""
    enc, vocab = zipf_stream(3, 6003, 200, 9)
    for seed, epoch, chunk in [(0, 0, 1 << 16), (1, 2, 50), (2, 1, 7)]:
        kw = dict(window=window, batch_size=batch_size, window_buckets=buckets, shuffle=shuffle)
        kw.update(sample=sample, seed=seed, epoch=epoch, chunk_tokens=chunk)
        assert epoch_steps(enc, vocab, **kw) == len(run_epoch(enc, vocab, **kw)), (seed, epoch)


def test_epoch_steps_without_examples_and_bad_arguments():
    enc = EncodedCorpus.from_sentences([[0], [1], [0]], vocab_size=2)
    vocab = Vocab(("a", "b"), np.array([2, 1]))
    kw = dict(window=2, sample=0.0, batch_size=4, seed=0, epoch=0)
    assert epoch_steps(enc, vocab, **kw) == 1 == len(run_epoch(enc, vocab, **kw))
    with pytest.raises(ValueError, match="window"):
        epoch_steps(enc, vocab, **{**kw, "window": 0})


# --------------------------------------------------------------------------------------------
# statistics (fixed seeds; tolerances from the sample size)


def zipf_stream(seed, n_tokens, V, sentence_len):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, V + 1) ** 1.1
    ids = rng.choice(V, size=n_tokens, p=p / p.sum())
    counts = np.bincount(ids, minlength=V)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(V, np.int64)
    rank[order] = np.arange(V)
    ids = rank[ids]
    vocab = Vocab(tuple(f"w{i}" for i in range(V)), counts[order])
    enc = EncodedCorpus.from_sentences(np.split(ids, n_tokens // sentence_len), vocab_size=V)
    return enc, vocab


def test_subsampling_kept_fraction_of_the_20_most_frequent_words():
    """Each of the top-20 words is a centre count(w) * keep(w) times in expectation; with
    sentences of 200 tokens every kept token has a context, so the number of times it is a
    centre over E epochs is Binomial(E * count(w), keep(w)): 5-sigma bounds."""
    enc, vocab = zipf_stream(0, 200_000, 2_000, 200)
    sample, E = 1e-3, 4
    keep = keep_probs(vocab, sample)
    assert keep[0] < 0.15 and keep[19] < 0.7  # the top words really are subsampled
    seen = np.zeros(len(vocab), np.int64)
    for epoch in range(E):
        for b in epoch_batches(
            enc, vocab, window=5, sample=sample,
            batch_size=4096, seed=11, epoch=epoch,
        ):  # fmt: skip
            real = b["mask"].any(1)
            seen += np.bincount(b["center"][real], minlength=len(vocab))
    n = E * vocab.counts[:20]
    p = keep[:20]
    sigma = np.sqrt(n * p * (1 - p))
    np.testing.assert_array_less(np.abs(seen[:20] - n * p), 5 * sigma)


def test_effective_window_is_uniform():
    """Centres with >= window tokens on both sides reach exactly b each way: b's histogram
    must be uniform on 1..window (chi-square, p > 1e-4 at a fixed seed)."""
    window = 7
    enc, vocab = zipf_stream(1, 100_000, 500, 100)
    b_all = []
    pos = 0
    offs = np.asarray(enc.offsets)
    sent_of = np.repeat(np.arange(enc.n_sentences), np.diff(offs))
    p_in = np.arange(enc.n_tokens) - offs[sent_of]
    r_in = offs[sent_of + 1] - 1 - np.arange(enc.n_tokens)
    for b in epoch_batches(
        enc, vocab, window=window, sample=0.0,
        batch_size=1024, seed=5, epoch=0,
    ):  # fmt: skip
        real = b["mask"].any(1)
        m = b["mask"][real]
        idx = np.arange(pos, pos + m.shape[0])  # sample=0: centres are tokens in order
        pos += m.shape[0]
        interior = (p_in[idx] >= window) & (r_in[idx] >= window)
        left, right = m[interior, :window].sum(1), m[interior, window:].sum(1)
        assert np.array_equal(left, right)
        b_all.append(left)
    b_all = np.concatenate(b_all)
    assert b_all.size > 80_000
    hist = np.bincount(b_all, minlength=window + 1)[1:]
    assert hist.sum() == b_all.size  # b in 1..window
    assert sps.chisquare(hist).pvalue > 1e-4


@pytest.mark.parametrize("exponent", [0.75, 0.0, 1.0])
def test_negatives_follow_counts_power(exponent):
    counts = np.array([5000, 2000, 900, 400, 400, 100, 30, 7, 5, 1])
    vocab = Vocab(tuple("abcdefghij"), counts)
    table = noise_table(vocab, exponent)
    assert table.dtype == jnp.int32 and int(table[-1]) == NOISE_TOTAL
    assert np.all(np.diff(np.asarray(table)) >= 0)
    n = 400_000
    draws = np.asarray(jax.jit(sample_negatives, static_argnums=2)(
        jax.random.PRNGKey(0), table, (n // 8, 8)
    ))  # fmt: skip
    assert draws.dtype == np.int32 and draws.shape == (n // 8, 8)
    observed = np.bincount(draws.ravel(), minlength=len(vocab))
    expected = n * noise_distribution(vocab, exponent)
    assert sps.chisquare(observed, expected).pvalue > 1e-4


# --------------------------------------------------------------------------------------------
# completing batches on the device


def _complete_cases():
    """Every input side with every output layer, and with shared negatives where the layer
    draws them."""
    for side in INPUTS:
        for output in REGISTRY:
            yield ModelSpec(input=side, output=output, negatives=4)
            if "negatives" in REGISTRY[output].scopes(ModelSpec(output=output)):
                yield ModelSpec(input=side, output=output, negatives=4, shared_negatives=True)


def _label(m: ModelSpec) -> str:
    return f"{m.input}-{m.output}" + ("-shared" if m.shared_negatives else "")


@pytest.mark.parametrize("model", tiered(list(_complete_cases())), ids=_label)
def test_complete_fields_and_padding_contributes_nothing(model):
    """``sgjax.model.complete`` (the layer's ``prepare`` and ``complete``) on an epoch's
    padded last batch: the layer's fields, shaped by their scopes; the batch's own fields
    (``words`` too) passed through; padded examples have E = 0, real ones E > 0."""
    enc, vocab = zipf_stream(2, 3_000, 60, 10)
    batches = run_epoch(enc, vocab, batch_size=128, window=2)
    last = batches[-1]
    assert not last["mask"].all(1).all()  # the last batch is padded
    consts = model.layer.prepare(vocab, model)
    fill = jax.jit(complete, static_argnums=3)
    full = fill(jax.random.PRNGKey(0), {k: jnp.asarray(v) for k, v in last.items()}, consts, model)
    assert int(full.pop("words")) == int(last["words"])  # passed through; not per example
    last = {k: v for k, v in last.items() if k != "words"}
    for k, v in last.items():
        np.testing.assert_array_equal(np.asarray(full[k]), v)
    B, C = last["context"].shape
    H, T = model.side.layout(C)
    scopes = model.layer.scopes(model)
    assert set(full) == set(last) | set(scopes)
    lead = {"example": (B,), "target": (B, T), "pair": (B, H, T)}
    for name, scope in scopes.items():
        assert full[name].shape[: len(lead[scope])] == lead[scope], name
    if "negatives" in scopes:  # i.i.d. noise words: K per pair, or per example if shared
        shape = (B, 4) if model.shared_negatives else (B, H, T, 4)
        assert full["negatives"].shape == shape and full["negatives"].dtype == jnp.int32
        assert 0 <= int(full["negatives"].min()) and int(full["negatives"].max()) < len(vocab)
    if model.output == "hierarchical":  # the output words' Huffman paths
        tree = build_huffman(vocab.counts)
        words = last["context"] if model.input == "skipgram" else last["center"][:, None]
        expected = path_fields(tree, words)
        for k in ("points", "codes", "path_mask"):
            assert full[k].shape == (B, T, tree.max_length)
            np.testing.assert_array_equal(np.asarray(full[k]), expected[k])
    if model.output == "softmax":
        assert not scopes
    params = init_params(jax.random.PRNGKey(1), len(vocab), 8, model.output)
    params = jax.tree.map(lambda x: x + 0.1, params)  # nonzero output vectors
    E, w = jax.jit(pair_losses, static_argnums=2)(params, full, model, consts)
    losses = np.asarray((E * w).sum((1, 2)))
    real = last["mask"].any(1)
    assert np.all(losses[~real] == 0.0)
    assert np.all(losses[real] > 0.0)


def test_complete_errors():
    """Unknown input sides and output layers are errors that list the choices; a layer's
    ``complete`` without the constants its ``prepare`` makes names the missing one."""
    with pytest.raises(ValueError, match="input side 'glove'.*skipgram"):
        ModelSpec(input="glove").side  # noqa: B018
    with pytest.raises(ValueError, match="output layer 'glove'.*negative"):
        ModelSpec(output="glove").layer  # noqa: B018
    with pytest.raises(ValueError, match="skipgram_input"):
        model_spec("skipgram", "negative", skipgram_input="centre")
    batch = {
        "center": jnp.zeros(2, jnp.int32),
        "context": jnp.zeros((2, 2), jnp.int32),
        "mask": jnp.ones((2, 2), bool),
    }
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match=r"consts\['noise'\].*prepare"):
        complete(key, batch, {}, ModelSpec(output="negative"))
    with pytest.raises(ValueError, match=r"consts\['tree'\].*prepare"):
        complete(key, batch, {}, ModelSpec(output="hierarchical"))
    no_negatives = ModelSpec(output="nce", negatives=0)
    with pytest.raises(ValueError, match="'nce' needs negatives >= 1"):
        no_negatives.layer.prepare(toy_vocab(10), no_negatives)
    assert set(complete(key, batch, {}, ModelSpec(output="softmax"))) == set(batch)


# --------------------------------------------------------------------------------------------
# the real corpus


@pytest.mark.slow
def test_realtext_end_to_end(tmp_path):
    path = importlib.resources.files("sgjax") / "data" / "realtext-v1.txt.xz"
    vocab = build_vocab(path, min_count=5)
    assert len(vocab) == 25_939
    enc = encode_corpus(path, vocab, tmp_path / "cache")
    assert enc.n_tokens == vocab.total == 2_957_312 and enc.raw_tokens == 3_046_612
    assert encode_corpus(path, vocab, tmp_path / "cache").reused
    rows = words = 0
    for b in epoch_batches(
        enc, vocab, window=5, sample=1e-3,
        batch_size=1024, seed=0, epoch=0,
    ):  # fmt: skip
        rows += int(b["mask"].any(1).sum())
        words += int(b["words"].sum())
    assert words == enc.n_tokens
    expected = float(np.dot(vocab.counts, keep_probs(vocab, 1e-3)))
    assert abs(rows - expected) < 0.01 * expected
