"""data.shuffle: the per-epoch shuffle of the corpus's sentences (sgjax.batches).

Each sentence once per epoch, in a permutation drawn from (seed, epoch); blocks gathered
from the (memory-mapped) stream; the same windows, words summing to the corpus; shuffle off
unchanged. (A shuffled run resuming bit for bit: tests/test_train.py, on the defaults.)
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pipeline import check_batches, distinct_corpus, run_epoch
from test_train import tiny_cfg, write_toy_corpus

import sgjax.sentences as batches_mod
from sgjax.batches import _shuffled_blocks, _stream_blocks, epoch_batches, sentence_order
from sgjax.encode import EncodedCorpus
from sgjax.experiment import _batches, build


def _sentences(enc: EncodedCorpus) -> list[np.ndarray]:
    offs = np.asarray(enc.offsets)
    return [np.asarray(enc.tokens[offs[s] : offs[s + 1]]) for s in range(enc.n_sentences)]


def _memory_mapped(enc: EncodedCorpus, directory) -> EncodedCorpus:
    """The same corpus as memory-mapped .npy files (as sgjax.encode caches it)."""
    np.save(directory / "tokens.npy", np.asarray(enc.tokens))
    np.save(directory / "offsets.npy", np.asarray(enc.offsets))
    tokens = np.load(directory / "tokens.npy", mmap_mode="r")
    offsets = np.load(directory / "offsets.npy", mmap_mode="r")
    assert isinstance(tokens, np.memmap)
    return EncodedCorpus(tokens, offsets, vocab_size=enc.vocab_size)


def _equal_epochs(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x
    )


# --------------------------------------------------------------------------------------------
# The permutation and the blocks.


def test_sentence_order_is_a_seeded_permutation():
    n = 1000
    perm = sentence_order(n, seed=3, epoch=0)
    assert perm.dtype == np.int32 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))  # each sentence once
    assert not np.array_equal(perm, np.arange(n))  # not the file's order
    np.testing.assert_array_equal(perm, sentence_order(n, seed=3, epoch=0))  # reproducible
    assert not np.array_equal(perm, sentence_order(n, seed=3, epoch=1))  # per epoch
    assert not np.array_equal(perm, sentence_order(n, seed=4, epoch=0))  # per seed
    assert sentence_order(0, 0, 0).size == 0


@pytest.mark.parametrize("mapped", [False, True])
@pytest.mark.parametrize("chunk_tokens", [1, 7, 50, 1 << 16])
def test_shuffled_blocks_gather_the_sentences_in_order(tmp_path, monkeypatch, mapped, chunk_tokens):
    """The blocks hold whole sentences in the permutation's order, each once, cut as the
    sequential blocks are (<= chunk_tokens tokens, or one sentence), at their positions in
    the permuted stream; the order 0..S-1 gives exactly the sequential blocks. Memory-mapped:
    read through a private mapping renewed every few tokens (here 16)."""
    enc, _ = distinct_corpus(np.random.default_rng(chunk_tokens), 400, 12)
    if mapped:
        enc = _memory_mapped(enc, tmp_path)
        monkeypatch.setattr(batches_mod, "_REMAP_TOKENS", 16)
    sents = _sentences(enc)
    order = sentence_order(enc.n_sentences, seed=1, epoch=2)
    blocks = list(_shuffled_blocks(enc, order, chunk_tokens))
    position = 0
    for a, tok, offs in blocks:
        assert type(tok) is np.ndarray and tok.dtype == np.int32
        assert a == position and offs[0] == 0 and offs[-1] == tok.size
        assert tok.size <= chunk_tokens or offs.size == 2
        position += tok.size
    assert position == enc.n_tokens
    gathered = np.concatenate([tok for _, tok, _ in blocks])
    np.testing.assert_array_equal(gathered, np.concatenate([sents[s] for s in order]))
    lens = np.concatenate([np.diff(offs) for _, _, offs in blocks])
    np.testing.assert_array_equal(lens, [sents[s].size for s in order])
    # each block takes as many sentences as fit: adding the next one would overflow it
    ends = np.cumsum([offs.size - 1 for _, _, offs in blocks])[:-1]
    overflow = [blocks[i][1].size + sents[order[e]].size for i, e in enumerate(ends)]
    assert all(x > chunk_tokens for x in overflow)

    identity = np.arange(enc.n_sentences, dtype=np.int32)
    for (a, tok, offs), (a2, tok2, offs2) in zip(
        _shuffled_blocks(enc, identity, chunk_tokens),
        _stream_blocks(enc, chunk_tokens),
        strict=True,
    ):
        assert a == a2
        np.testing.assert_array_equal(tok, tok2)
        np.testing.assert_array_equal(offs, offs2)


# --------------------------------------------------------------------------------------------
# Shuffled epochs.


@pytest.mark.parametrize("chunk_tokens", [7, 1 << 16])
@pytest.mark.parametrize(("window", "batch_size"), [(1, 1), (3, 16), (5, 7)])
def test_shuffled_epoch_reads_every_sentence_once_in_the_permutation(
    chunk_tokens, window, batch_size
):
    """sample=0, ids = positions: the centres are every token of every multi-word sentence,
    once, in the permutation's order; each window is the exact one of the file (contexts of
    the same sentence); ``words`` counts the permuted stream from after the previous batch's
    last centre to its own (the tail in the last batch), summing to the corpus."""
    enc, vocab = distinct_corpus(np.random.default_rng(window + batch_size), 300, 12)
    kw = dict(window=window, batch_size=batch_size, chunk_tokens=chunk_tokens, seed=5, epoch=1)
    batches = run_epoch(enc, vocab, shuffle=True, **kw)
    check_batches(batches, enc, window, batch_size)  # windows exact, padding, words sum
    order = sentence_order(enc.n_sentences, seed=5, epoch=1)
    sents = _sentences(enc)
    expected = np.concatenate([sents[s] for s in order if sents[s].size >= 2])
    centers = np.concatenate([b["center"][b["mask"].any(1)] for b in batches])
    np.testing.assert_array_equal(centers, expected)
    assert not np.array_equal(np.sort(centers), centers)  # not the file's order

    stream = np.concatenate([sents[s] for s in order])  # the permuted stream
    where = np.empty(enc.n_tokens, np.int64)
    where[stream] = np.arange(enc.n_tokens)
    done = 0
    for b in batches[:-1]:
        last = where[b["center"][b["mask"].any(1)][-1]] + 1
        assert int(b["words"]) == last - done
        done = last
    assert int(batches[-1]["words"]) == enc.n_tokens - done


@pytest.mark.parametrize("window_buckets", [False, True])
@pytest.mark.parametrize("sample", [0.0, 1e-2])
def test_shuffled_epochs_reproducible_and_words_sum(window_buckets, sample):
    """The same (seed, epoch) gives the same batches; another epoch or seed, others; the
    words sum to the corpus's tokens; the examples are valid windows (with subsampling too);
    with window_buckets the same examples as the shuffled plain epoch, regrouped."""
    enc, vocab = distinct_corpus(np.random.default_rng(7), 400, 15)
    kw = dict(window=3, batch_size=24, sample=sample, window_buckets=window_buckets)
    one = run_epoch(enc, vocab, shuffle=True, seed=1, epoch=2, **kw)
    assert _equal_epochs(one, run_epoch(enc, vocab, shuffle=True, seed=1, epoch=2, **kw))
    assert not _equal_epochs(one, run_epoch(enc, vocab, shuffle=True, seed=1, epoch=3, **kw))
    assert not _equal_epochs(one, run_epoch(enc, vocab, shuffle=True, seed=2, epoch=2, **kw))
    assert not _equal_epochs(one, run_epoch(enc, vocab, shuffle=False, seed=1, epoch=2, **kw))
    assert sum(int(b["words"]) for b in one) == enc.n_tokens
    check_batches(one, enc, 3, 24, sample_zero=sample == 0, grouped=window_buckets)
    if window_buckets:
        from test_pipeline import _rows

        plain = run_epoch(
            enc, vocab, shuffle=True, seed=1, epoch=2, **{**kw, "window_buckets": False}
        )
        assert sorted(_rows(one)) == sorted(_rows(plain))


@pytest.mark.parametrize("window_buckets", [False, True])
def test_shuffle_false_is_the_sequential_epoch(window_buckets):
    """shuffle=False: the very batches of epoch_batches without the argument."""
    enc, vocab = distinct_corpus(np.random.default_rng(8), 300, 15)
    kw = dict(window=3, sample=1e-2, batch_size=24, seed=0, epoch=1, window_buckets=window_buckets)
    assert _equal_epochs(
        list(epoch_batches(enc, vocab, **kw)), list(epoch_batches(enc, vocab, shuffle=False, **kw))
    )


def test_shuffled_memory_mapped_epoch_reads_like_memory(tmp_path, monkeypatch):
    """A shuffled epoch over the memory-mapped stream (its mapping renewed every 64 tokens)
    equals the epoch over the same arrays in memory."""
    enc, vocab = distinct_corpus(np.random.default_rng(9), 500, 10)
    mapped = _memory_mapped(enc, tmp_path)
    monkeypatch.setattr(batches_mod, "_REMAP_TOKENS", 64)
    for chunk_tokens in (5, 1 << 16):
        kw = dict(window=2, sample=1e-2, batch_size=32, chunk_tokens=chunk_tokens, shuffle=True)
        a, b = run_epoch(mapped, vocab, **kw), run_epoch(enc, vocab, **kw)
        assert len(a) > 10 and _equal_epochs(a, b)


# --------------------------------------------------------------------------------------------
# The config key and resume.


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


def test_config_key_reaches_the_batches(corpus):
    cfg = tiny_cfg(corpus, "data.shuffle=true", "train.window_buckets=true")
    assert tiny_cfg(corpus).data.shuffle  # the default
    assert not tiny_cfg(corpus, "data.shuffle=false").data.shuffle
    run = build(cfg)
    kw = dict(window=2, sample=0.0, batch_size=64, seed=cfg.train.seed, window_buckets=True)
    got = list(_batches(cfg, run.vocab, run.encoded, 1))
    assert _equal_epochs(
        got, list(epoch_batches(run.encoded, run.vocab, epoch=1, shuffle=True, **kw))
    )
    assert not _equal_epochs(got, list(epoch_batches(run.encoded, run.vocab, epoch=1, **kw)))


# Resume after shuffled epochs is bit-identical: tests/test_train.py's
# test_interrupted_run_resumes_to_the_same_vectors runs the defaults, data.shuffle: true.
