"""Benchmark the data pipeline: vocabulary, encoding, one epoch of examples.

Builds the vocabulary, encodes the corpus into a fresh cache directory and generates
epochs of skip-gram examples with the defaults (min_count 5, sample 1e-3, window 5,
5 negatives), then prints one JSON object as its last line. Keys:

- ``tokens``: corpus tokens (whitespace-separated, before any filtering);
- ``vocab_size``, ``encoded_tokens`` (in-vocabulary tokens: what an epoch consumes);
- ``read_mb_per_s``: reading + decompressing alone (MB of text per second);
- ``vocab_s``; ``encode_s`` and ``encode_tokens_per_s`` (corpus tokens per second, from the
  compressed file to the memory-mapped cache, decompression included);
- ``examples_per_s`` (centre words with their contexts per second) and
  ``corpus_tokens_per_s`` (encoded tokens consumed per second), example generation only,
  median over ``--epochs`` epochs;
- ``negatives_per_s``: negatives drawn by the jitted :func:`sgjax.model.complete`;
- ``peak_rss_mb``: the process's peak resident memory (``peak_rss_mb_jax_imported``,
  ``..._after_vocab``, ``..._after_encode``: the same peak at those points).

``--compare-jax`` also times a jitted JAX version of the window generator on the default
JAX device (the measurement behind the choice documented in :mod:`sgjax.batches`).

    python scripts/bench_pipeline.py --corpus sgjax/data/realtext-v1.txt.xz
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def time_read(corpus: str) -> tuple[float, int]:
    from sgjax.corpus import iter_chunks  # noqa: PLC0415

    t = time.perf_counter()
    n = sum(len(c.data) for c in iter_chunks(corpus, background=False))
    return time.perf_counter() - t, n


def time_epoch(encoded, vocab, args, epoch: int) -> tuple[float, int, int]:
    from sgjax.batches import epoch_batches  # noqa: PLC0415

    t = time.perf_counter()
    batches = 0
    last = None
    for b in epoch_batches(
        encoded,
        vocab,
        architecture=args.architecture,
        window=args.window,
        sample=args.sample,
        batch_size=args.batch_size,
        seed=args.seed,
        epoch=epoch,
    ):
        batches += 1
        last = b
    dt = time.perf_counter() - t
    examples = (batches - 1) * args.batch_size + int(last["mask"].any(1).sum())
    return dt, examples, batches


def time_negatives(vocab, args) -> float:
    """Negatives per second drawn by the jitted sgjax.model.complete (B x 2w x K per batch)."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from sgjax.model import ModelSpec, complete  # noqa: PLC0415

    model = ModelSpec(output="negative", negatives=args.negatives)
    consts = model.layer.prepare(vocab, model)
    B, C = args.batch_size, 2 * args.window
    batch = {
        "center": jnp.zeros(B, jnp.int32),
        "context": jnp.zeros((B, C), jnp.int32),
        "mask": jnp.ones((B, C), bool),
    }
    f = jax.jit(lambda k: complete(k, batch, consts, model)["negatives"])
    f(jax.random.PRNGKey(0)).block_until_ready()
    reps = 50
    t = time.perf_counter()
    for i in range(reps):
        out = f(jax.random.PRNGKey(i))
    out.block_until_ready()
    return reps * B * C * args.negatives / (time.perf_counter() - t)


def jax_windows(encoded, vocab, args, block: int) -> dict:
    """The same algorithm as sgjax.batches._windows, jitted, over fixed blocks of the token
    stream held on the device (sentences are cut at block edges: timing only)."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from sgjax.vocab import keep_probs  # noqa: PLC0415

    W, M = args.window, block
    off = np.r_[-W:0, 1 : W + 1]

    @jax.jit
    def windows(key, tok, sid, keep):
        k1, k2 = jax.random.split(key)
        km = (jax.random.uniform(k1, (M,)) < keep[tok]) & (sid >= 0)
        dest = jnp.where(km, jnp.cumsum(km) - 1, M)
        kt = jnp.zeros(M, jnp.int32).at[dest].set(tok, mode="drop")
        ks = jnp.full(M, -1, jnp.int32).at[dest].set(sid, mode="drop")
        b = jax.random.randint(k2, (M,), 1, W + 1)
        idx = jnp.arange(M)[:, None] + off
        idc = jnp.clip(idx, 0, M - 1)
        mask = (idx == idc) & (ks[idc] == ks[:, None]) & (ks[:, None] >= 0)
        mask &= jnp.abs(off) <= b[:, None]
        ctx = jnp.where(mask, kt[idc], 0)
        good = mask.any(1)
        gd = jnp.where(good, jnp.cumsum(good) - 1, M)
        center = jnp.zeros(M, jnp.int32).at[gd].set(kt, mode="drop")
        context = jnp.zeros((M, 2 * W), jnp.int32).at[gd].set(ctx, mode="drop")
        maskc = jnp.zeros((M, 2 * W), bool).at[gd].set(mask, mode="drop")
        return center, context, maskc, good.sum()

    N = encoded.n_tokens
    nb = -(-N // M)
    tok = np.zeros(nb * M, np.int32)
    tok[:N] = encoded.tokens
    sid = np.full(nb * M, -1, np.int32)
    sid[:N] = np.repeat(np.arange(encoded.n_sentences, dtype=np.int32), np.diff(encoded.offsets))
    keep = jnp.asarray(keep_probs(vocab, args.sample).astype(np.float32))
    t = time.perf_counter()
    tok_d = jnp.asarray(tok.reshape(nb, M))
    sid_d = jnp.asarray(sid.reshape(nb, M))
    jax.block_until_ready((tok_d, sid_d))
    transfer = time.perf_counter() - t
    key = jax.random.PRNGKey(args.seed)
    jax.block_until_ready(windows(key, tok_d[0], sid_d[0], keep))  # compile
    times, examples = [], 0
    for e in range(args.epochs):
        t = time.perf_counter()
        outs = [
            windows(jax.random.fold_in(key, e * nb + i), tok_d[i], sid_d[i], keep)
            for i in range(nb)
        ]
        jax.block_until_ready(outs)
        times.append(time.perf_counter() - t)
        examples = int(sum(int(o[3]) for o in outs))
    dt = statistics.median(times)
    return {
        "jax_device": str(jax.devices()[0]),
        "jax_corpus_tokens_per_s": round(N / dt),
        "jax_corpus_tokens_per_s_with_transfer": round(N / (dt + transfer)),
        "jax_examples_per_epoch": examples,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default = importlib.resources.files("sgjax") / "data" / "realtext-v1.txt.xz"
    p.add_argument("--corpus", default=str(default), help="file or directory (%(default)s)")
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negatives", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--architecture", default="skipgram", choices=["skipgram", "cbow"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3, help="epochs timed (median reported)")
    p.add_argument("--cache-dir", help="encode here (default: a fresh temporary directory)")
    p.add_argument("--skip-read", action="store_true", help="do not time reading alone")
    p.add_argument("--skip-negatives", action="store_true", help="do not time negatives")
    p.add_argument("--compare-jax", action="store_true", help="also time a JAX window generator")
    p.add_argument("--jax-block", type=int, default=1 << 18, help="tokens per JAX block")
    args = p.parse_args(argv)

    import jax  # noqa: F401, PLC0415 - imported first, so that its memory shows at once

    from sgjax.corpus import CorpusStats  # noqa: PLC0415
    from sgjax.encode import encode_corpus  # noqa: PLC0415
    from sgjax.vocab import build_vocab  # noqa: PLC0415

    out: dict = {"corpus": args.corpus, "peak_rss_mb_jax_imported": round(rss_mb(), 1)}
    if not args.skip_read:
        dt, n = time_read(args.corpus)
        out["read_mb_per_s"] = round(n / dt / 1e6, 1)
        log(f"read: {n / 1e6:.1f} MB in {dt:.2f} s ({n / dt / 1e6:.1f} MB/s)")

    stats = CorpusStats()
    t = time.perf_counter()
    vocab = build_vocab(args.corpus, min_count=args.min_count, stats=stats)
    out["vocab_s"] = round(time.perf_counter() - t, 3)
    out["tokens"] = stats.tokens
    out["vocab_size"] = len(vocab)
    out["peak_rss_mb_after_vocab"] = round(rss_mb(), 1)
    log(f"vocab: {len(vocab):,} words from {stats.report()} in {out['vocab_s']:.2f} s")

    with tempfile.TemporaryDirectory(prefix="sgjax-bench-") as tmp:
        cache = Path(args.cache_dir) if args.cache_dir else Path(tmp) / "encoded"
        t = time.perf_counter()
        encoded = encode_corpus(args.corpus, vocab, cache)
        dt = time.perf_counter() - t
        out["encode_s"] = round(dt, 3)
        out["encode_reused_cache"] = encoded.reused
        out["encode_tokens_per_s"] = round(encoded.raw_tokens / dt)
        out["encoded_tokens"] = encoded.n_tokens
        out["peak_rss_mb_after_encode"] = round(rss_mb(), 1)
        log(
            f"encode: {encoded.raw_tokens:,} tokens -> {encoded.n_tokens:,} ids, "
            f"{encoded.n_sentences:,} sentences in {dt:.2f} s "
            f"({encoded.raw_tokens / dt / 1e6:.2f} M tokens/s)"
        )

        runs = [time_epoch(encoded, vocab, args, e) for e in range(args.epochs)]
        dt = statistics.median(r[0] for r in runs)
        examples, batches = runs[0][1], runs[0][2]
        out["epoch_s"] = round(dt, 3)
        out["epoch_s_all"] = [round(r[0], 3) for r in runs]
        out["examples"] = examples
        out["batches"] = batches
        out["examples_per_s"] = round(examples / dt)
        out["corpus_tokens_per_s"] = round(encoded.n_tokens / dt)
        log(
            f"epoch: {examples:,} examples in {batches:,} batches of {args.batch_size} in "
            f"{dt:.3f} s ({encoded.n_tokens / dt / 1e6:.1f} M corpus tokens/s, "
            f"{examples / dt / 1e6:.1f} M examples/s)"
        )
        if args.compare_jax:
            out.update(jax_windows(encoded, vocab, args, block=args.jax_block))
            log(f"jax windows: {out['jax_corpus_tokens_per_s'] / 1e6:.1f} M corpus tokens/s")
        del encoded
    if not args.skip_negatives:
        out["negatives_per_s"] = round(time_negatives(vocab, args))
        log(f"negatives: {out['negatives_per_s'] / 1e6:.1f} M/s")
    out["peak_rss_mb"] = round(rss_mb(), 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
