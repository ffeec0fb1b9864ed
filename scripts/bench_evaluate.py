"""Benchmark sgjax.evaluate and sgjax.vectors on a synthetic table; prints one JSON object.

The table holds every word of the shipped questions-words.txt, so all 19,544 questions are
evaluated (the worst case), padded with filler words to --vocab rows of random vectors.

    python scripts/bench_evaluate.py                  # 30,000 x 100, best of --repeat runs
    python scripts/bench_evaluate.py --gensim         # also time gensim 4 on the same vectors
    python scripts/bench_evaluate.py --c-helpers      # the C analogy search and writer (a run's)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sgjax.evaluate import (
    evaluate_word_analogies,
    evaluate_word_pairs,
    nearest_neighbors,
    questions_words_path,
    wordsim353_path,
)
from sgjax.vectors import WordVectors, read_word2vec, write_word2vec


def build_table(vocab: int, dim: int, seed: int) -> WordVectors:
    """All analogy and WordSim words (lower-case), then fillers, shuffled; random vectors."""
    words: dict[str, None] = {}
    for line in questions_words_path().read_text().splitlines():
        if not line.startswith(":"):
            words.update(dict.fromkeys(w.lower() for w in line.split()))
    for line in wordsim353_path().read_text().splitlines():
        if not line.startswith("#"):
            words.update(dict.fromkeys(w.lower() for w in line.split("\t")[:2]))
    if len(words) > vocab:
        raise SystemExit(f"--vocab must be at least {len(words)}")
    rng = np.random.default_rng(seed)
    names = list(words) + [f"filler{i}" for i in range(vocab - len(words))]
    names = [names[i] for i in rng.permutation(len(names))]
    return WordVectors.from_params(names, rng.standard_normal((vocab, dim)).astype(np.float32))


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=30_000)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gensim", action="store_true", help="time gensim's evaluators too")
    ap.add_argument(
        "--c-helpers",
        action="store_true",
        help="import JAX first, so that the analogy search and the text writer use their C "
        "libraries (sgjax.kernels), as in a run; without it, numpy's methods",
    )
    args = ap.parse_args()
    if args.c_helpers:
        import jax  # noqa: F401, PLC0415 (sgjax.analogy and sgjax.textfloat then use C)

    kv = build_table(args.vocab, args.dim, args.seed)
    r: dict[str, Any] = {
        "vocab": args.vocab,
        "dim": args.dim,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "repeat": args.repeat,
        "c_helpers": args.c_helpers,
    }
    _ = kv.unit  # normalise once, as any evaluation after loading would
    for method in ("add", "mul"):
        for threads in (1, None):
            t, res = best_of(
                args.repeat,
                lambda m=method, th=threads: evaluate_word_analogies(kv, method=m, threads=th),
            )
            key = f"analogies_{method}_{'1thread' if threads == 1 else 'threads'}_s"
            r[key] = round(t, 3)
        r[f"analogies_{method}_accuracy"] = res.score
        r["analogy_questions_evaluated"] = res.total.evaluated
    t, pairs = best_of(args.repeat, lambda: evaluate_word_pairs(kv))
    r["wordsim353_s"] = round(t, 4)
    r["wordsim353_pairs"] = pairs.pairs
    probe = list(kv.words[:100])
    t, _ = best_of(args.repeat, lambda: nearest_neighbors(kv, probe))
    r["neighbors_100_words_s"] = round(t, 4)

    with tempfile.TemporaryDirectory() as tmp:
        for binary in (False, True):
            name = "binary" if binary else "text"
            path = Path(tmp) / f"vectors.{name}"
            r[f"write_{name}_s"] = round(
                best_of(args.repeat, lambda p=path, b=binary: write_word2vec(kv, p, b))[0], 3
            )
            r[f"{name}_file_mb"] = round(path.stat().st_size / 2**20, 1)
            t, back = best_of(args.repeat, lambda p=path: read_word2vec(p))
            r[f"read_{name}_s"] = round(t, 3)
            assert back.words == kv.words and np.array_equal(back.matrix, kv.matrix)

        if args.gensim:
            from gensim.models import KeyedVectors

            gkv = KeyedVectors.load_word2vec_format(Path(tmp) / "vectors.binary", binary=True)
            t, (score, _) = best_of(
                1, lambda: gkv.evaluate_word_analogies(str(questions_words_path()))
            )
            r["gensim_analogies_add_s"] = round(t, 3)
            r["gensim_analogies_add_accuracy"] = score
            t, (_, sp, _) = best_of(1, lambda: gkv.evaluate_word_pairs(str(wordsim353_path())))
            r["gensim_wordsim353_s"] = round(t, 4)
            r["spearman_abs_diff"] = abs(float(sp[0]) - pairs.spearman)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
