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

``--compare-jax`` also times the device path's generator (``data.examples: device``,
:func:`sgjax.device_examples.chunk_batches`) on the default JAX device, over chunks of
``--jax-block`` tokens already on the device (the measurement behind the CPU's default,
documented in :mod:`sgjax.batches`).

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
    """The device path's generator (:func:`sgjax.device_examples.chunk_batches`, jitted)
    on the default JAX device, over the chunks :func:`sgjax.device_examples.epoch_chunks`
    streams (``block`` tokens each: ``block / args.batch_size`` steps of the batch size)."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from sgjax.device_examples import chunk_batches, epoch_chunks  # noqa: PLC0415
    from sgjax.vocab import keep_probs  # noqa: PLC0415

    steps = max(1, block // args.batch_size)
    keep = jnp.asarray(keep_probs(vocab, args.sample), jnp.float32)
    gen = jax.jit(chunk_batches, static_argnums=3)
    key = jax.random.PRNGKey(args.seed)

    def epoch(e: int) -> tuple[float, int, float]:
        t = time.perf_counter()
        chunks = list(
            epoch_chunks(encoded, batch_size=args.batch_size, steps=steps, seed=args.seed,
                         epoch=e, shuffle=False)
        )  # fmt: skip
        host = time.perf_counter() - t
        dev = [jax.device_put(c) for c in chunks]
        jax.block_until_ready(dev)
        t = time.perf_counter()
        outs = [gen(jax.random.fold_in(key, i), c, keep, args.window) for i, c in enumerate(dev)]
        jax.block_until_ready(outs)
        return time.perf_counter() - t, sum(int(o["mask"].any(-1).sum()) for o in outs), host

    epoch(0)  # compile
    runs = [epoch(e) for e in range(args.epochs)]
    dt = statistics.median(r[0] for r in runs)
    N = encoded.n_tokens
    return {
        "jax_device": str(jax.devices()[0]),
        "jax_chunk_tokens": steps * args.batch_size,
        "jax_corpus_tokens_per_s": round(N / dt),
        "jax_examples_per_s": round(runs[-1][1] / dt),
        "jax_host_chunking_tokens_per_s": round(N / statistics.median(r[2] for r in runs)),
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
