"""Examples made on the device (sgjax.device_examples) against the host's (sgjax.batches):
the same examples for the same draws, the same distributions for their own draws
(tolerances from the sample size), exact accounting of words, training and exact resume."""

from __future__ import annotations

import json
import lzma
from importlib.resources import files

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from test_train import _interrupt_after, params_of, tiny_cfg, write_toy_corpus

from sgjax import checkpoint
from sgjax.batches import _windows, epoch_batches
from sgjax.config import ConfigError, load_config
from sgjax.device_examples import chunk_batches, epoch_chunks, windows
from sgjax.encode import encode_corpus
from sgjax.experiment import build, train
from sgjax.signals import Interrupted
from sgjax.vocab import build_vocab, keep_probs

Z = 5.0  # two-sided tolerance in standard errors: P(false failure) ~ 6e-7 per check


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


def _stream(seed: int, n_sentences: int, vocab: int):
    """Token ids and sentence offsets: lengths 1..12 (single-token sentences included)."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 13, size=n_sentences)
    offs = np.r_[0, np.cumsum(lens)]
    tok = rng.zipf(1.3, size=int(offs[-1])) % vocab
    return tok.astype(np.int32), offs


@pytest.mark.parametrize("window", [1, 2, 5])
@pytest.mark.parametrize("keep_all", [True, False])
def test_same_draws_give_the_host_examples(window, keep_all):
    """Fed the uniforms and windows numpy draws, the device generator returns exactly the
    host's examples: centres, contexts, masks and positions, in stream order."""
    V = 50
    tok, offs = _stream(window, 400, V)
    keep = np.ones(V, np.float32) if keep_all else np.linspace(0.05, 1.0, V).astype(np.float32)
    c_h, x_h, m_h, pos_h, _ = _windows(tok, offs, keep, window, np.random.default_rng(7))

    rng = np.random.default_rng(7)  # the host's draws, replayed
    u = rng.random(tok.size, dtype=np.float32)
    kidx = np.flatnonzero(u < keep[tok])
    klen = np.diff(np.searchsorted(kidx, offs))
    multi = np.repeat(klen >= 2, klen)  # the host draws b for these kept tokens only
    b = np.ones(kidx.size, np.int32)
    b[multi] = rng.integers(1, window + 1, size=int(multi.sum()), dtype=np.int32)

    M = tok.size + 37  # padding after the last sentence
    pad = M - tok.size
    sid = np.r_[np.repeat(np.arange(offs.size - 1), np.diff(offs)), -np.ones(pad)]
    ex = jax.jit(windows, static_argnums=5)(
        jnp.asarray(np.r_[tok, np.zeros(pad, np.int32)]),
        jnp.asarray(sid.astype(np.int32)),
        jnp.asarray(keep),
        jnp.asarray(np.r_[u, np.zeros(pad, np.float32)]),
        jnp.asarray(np.r_[b, np.ones(M - b.size, np.int32)]),
        window,
    )
    n = int(ex["n"])
    assert n == c_h.size > 0
    np.testing.assert_array_equal(np.asarray(ex["center"])[:n], c_h)
    np.testing.assert_array_equal(np.asarray(ex["context"])[:n], x_h)
    np.testing.assert_array_equal(np.asarray(ex["mask"])[:n], m_h)
    np.testing.assert_array_equal(np.asarray(ex["pos"])[:n], pos_h)
    assert not np.asarray(ex["mask"])[n:].any() and not np.asarray(ex["center"])[n:].any()


def _chunk(tok, offs, S, B):
    M = S * B
    t = np.zeros(M, np.int32)
    t[: tok.size] = tok
    s = np.full(M, -1, np.int32)
    s[: tok.size] = np.repeat(np.arange(offs.size - 1), np.diff(offs))
    return {"tokens": t.reshape(S, B), "sentence": s.reshape(S, B), "words": np.int32(tok.size)}


@pytest.mark.parametrize("sentence_len", [1, 3, 40])
def test_chunk_batches_account_for_every_word(sentence_len):
    """Words sum to the chunk's tokens; batches are full up to the last active one, which
    holds the rest; inactive ones are empty; a chunk without examples is one empty step."""
    S, B, window = 8, 16, 3
    n_tok = 100
    tok = (np.arange(n_tok) % 7).astype(np.int32)
    offs = np.r_[np.arange(0, n_tok, sentence_len), n_tok]
    keep = jnp.asarray(np.full(7, 0.8, np.float32))
    g = jax.device_get(chunk_batches(jax.random.PRNGKey(3), _chunk(tok, offs, S, B), keep, window))
    rows = g["mask"].any(axis=2)  # (S, B): real examples
    n = int(rows.sum())
    steps = max(1, -(-n // B))
    assert g["words"].sum() == n_tok
    np.testing.assert_array_equal(g["active"], np.arange(S) < steps)
    np.testing.assert_array_equal(rows.reshape(-1), np.arange(S * B) < n)
    assert (g["words"][~g["active"]] == 0).all()
    if sentence_len == 1:
        assert n == 0 and g["words"][0] == n_tok
    else:
        assert n > B  # several batches: the per-batch words are checked, not only the sum
        assert (g["words"][: steps - 1] > 0).all()


def _key_counts(g) -> tuple[np.ndarray, np.ndarray]:
    rows = g["mask"].any(axis=-1)
    return g["center"][rows], g["mask"][rows]


def test_subsampling_keeps_each_word_with_its_probability():
    """One long sentence: a kept token is a centre (it has a kept neighbour); each word's
    count of centres is Binomial(count, keep), within Z standard errors."""
    S, B, window = 64, 1024, 2
    p = np.array([1.0, 0.5, 0.2, 0.05], np.float32)
    rng = np.random.default_rng(0)
    tok = rng.integers(0, p.size, size=S * B).astype(np.int32)
    chunk = _chunk(tok, np.array([0, tok.size]), S, B)
    g = jax.device_get(chunk_batches(jax.random.PRNGKey(11), chunk, jnp.asarray(p), window))
    centres, _ = _key_counts(g)
    count = np.bincount(tok, minlength=p.size)
    got = np.bincount(centres, minlength=p.size)
    sd = np.sqrt(count * p * (1 - p))
    assert got[0] == count[0]
    np.testing.assert_array_less(np.abs(got[1:] - count[1:] * p[1:]), Z * sd[1:])


def test_effective_windows_are_uniform():
    """Interior centres of a long sentence (nothing subsampled) have 2b context slots,
    b ~ U{1..window}: a chi-square test of the b counts."""
    S, B, window = 32, 1024, 5
    tok = np.zeros(S * B, np.int32)
    chunk = _chunk(tok, np.array([0, tok.size]), S, B)
    g = jax.device_get(chunk_batches(jax.random.PRNGKey(5), chunk, jnp.ones(1), window))
    _, mask = _key_counts(g)
    b = mask[window:-window, :window].sum(axis=1)  # left slots of interior centres
    assert (b == mask[window:-window, window:].sum(axis=1)).all()
    counts = np.bincount(b, minlength=window + 1)[1:]
    assert counts.sum() == b.size and b.min() >= 1
    assert stats.chisquare(counts).pvalue > 1e-6


def test_device_and_host_epochs_have_the_same_distributions(tmp_path):
    """On a real-text sample: examples and pairs per epoch agree in mean (Z standard errors
    of the difference of the means over epochs), and the centres' words agree (chi-square
    test of homogeneity over the frequent words)."""
    lines = (tmp_path / "c.txt").open("w", encoding="utf-8")
    with lzma.open(files("sgjax") / "data" / "realtext-v1.txt.xz", "rt", encoding="utf-8") as f:
        for _, line in zip(range(3000), f, strict=False):
            lines.write(line)
    lines.close()
    paths = [str(tmp_path / "c.txt")]
    vocab = build_vocab(paths, min_count=5)
    enc = encode_corpus(paths, vocab, None)
    keep = jnp.asarray(keep_probs(vocab, 1e-3), jnp.float32)
    window, B, S = 5, 512, 32
    host, dev = [], []
    top = 200
    words_h = np.zeros(top + 1, np.int64)
    words_d = np.zeros(top + 1, np.int64)
    step = jax.jit(chunk_batches, static_argnums=3)
    for e in range(6):
        n = pairs = 0
        for bt in epoch_batches(
            enc, vocab, window=window, sample=1e-3, batch_size=B, seed=1, epoch=e
        ):
            rows = bt["mask"].any(axis=1)
            n += int(rows.sum())
            pairs += int(bt["mask"].sum())
            np.add.at(words_h, np.minimum(bt["center"][rows], top), 1)
        host.append((n, pairs))
        n = pairs = 0
        chunks = epoch_chunks(enc, batch_size=B, steps=S, seed=1, epoch=e, shuffle=True)
        words = 0
        for c, ch in enumerate(chunks):
            g = jax.device_get(step(jax.random.PRNGKey(100 * e + c), ch, keep, window))
            words += int(g["words"].sum())
            rows = g["mask"].any(axis=2)
            n += int(rows.sum())
            pairs += int(g["mask"].sum())
            np.add.at(words_d, np.minimum(g["center"][rows], top), 1)
        assert words == enc.n_tokens
        dev.append((n, pairs))
    h, d = np.array(host, float), np.array(dev, float)
    se = np.sqrt(h.var(axis=0, ddof=1) / len(h) + d.var(axis=0, ddof=1) / len(d))
    np.testing.assert_array_less(np.abs(h.mean(axis=0) - d.mean(axis=0)), Z * se)
    assert stats.chi2_contingency(np.stack([words_h, words_d])).pvalue > 1e-6


def test_a_run_with_device_examples_trains_and_resumes_exactly(corpus, tmp_path, monkeypatch):
    over = ("data.examples=device", "data.sample=1e-3", "train.epochs=3")
    over += ("train.batch_size=16", "train.steps_per_call=8", "data.max_line_tokens=100")
    cfg = tiny_cfg(corpus, *over)
    assert not cfg.train.window_buckets  # turned off: the device makes plain batches
    full = train(cfg, tmp_path / "full", progress=False)
    epochs = [r for r in full.history if r["event"] == "epoch"]
    # the schedule's length counts seed 0's epoch 0 on the device: exactly its steps
    assert epochs[0]["step"] * 3 == build(cfg).total_steps
    words = [r["words"] for r in epochs]
    assert words == [sum(1 for _ in open(corpus, encoding="utf-8").read().split())] * 3
    chunks_per_epoch = sum(1 for _ in build(cfg).batches(0))
    assert chunks_per_epoch >= 3
    with monkeypatch.context() as m:
        _interrupt_after(m, chunks_per_epoch + 2)  # in the middle of epoch 2
        with pytest.raises(Interrupted):
            train(cfg, tmp_path / "cut", progress=False)
    meta = json.loads((checkpoint.latest(tmp_path / "cut") / "meta.json").read_text())
    assert meta["epoch"] == 1 and meta["batch_in_epoch"] == 2  # chunks applied
    resumed = train(None, tmp_path / "cut", resume=True, progress=False)
    for k in ("W", "W_out"):
        np.testing.assert_array_equal(params_of(full)[k], params_of(resumed)[k])
    # another seed draws other examples
    other = train(tiny_cfg(corpus, *over, "train.seed=1"), tmp_path / "s1", progress=False)
    assert not np.array_equal(params_of(other)["W"], params_of(full)["W"])


@pytest.mark.parametrize(
    "over,key",
    [
        (["data.examples=device", "mesh.data=2", "train.batch_size=64"], "data.examples"),
        (["data.examples=device", "train.window_buckets=true"], "train.window_buckets"),
        (
            ["data.examples=device", "train.batch_size=8", "train.steps_per_call=4"],
            "data.max_line_tokens",
        ),
    ],
)
def test_device_examples_config_errors(over, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, over)


@pytest.mark.parametrize("examples", ["host", "device"])
def test_the_custom_loop_of_the_readme_runs_either_source(corpus, examples):
    """``for batch in run.calls(epoch): state, m = run.step(state, batch, run.tables,
    run.spec)`` covers an epoch's words with host batches and with token chunks."""
    cfg = tiny_cfg(corpus, f"data.examples={examples}", "data.max_line_tokens=100")
    run = build(cfg)
    state = run.state
    for batch in run.calls(0):
        state, m = run.step(state, batch, run.tables, run.spec)
        assert bool(m["finite"])
    assert int(state.words) == run.encoded.n_tokens and int(state.step) > 0
