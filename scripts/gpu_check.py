"""The GPU benchmark of ``scripts/gpu_check.sh``: sgjax alone (gensim is not on a GPU
machine's image), each model at the large-batch settings, on realtext-v1, in a time budget.

Rows: skip-gram NS (examples made on the host and on the device; float32 and bfloat16
tables; 1 epoch for the rate, 5 for the quality), CBOW NS, skip-gram HS, and the paper's
full softmax at realtext-v1's full vocabulary (dim 100, 1 epoch), next to the GFLOP/s a
plain ``jnp.dot`` reaches on the softmax step's shapes. Each row is
:func:`bench_throughput.run_sgjax` (training time only; words/s = corpus tokens x epochs /
seconds; ``steady_words_per_s`` without the first, compiling call) plus the run's analogy
and WordSim scores. Prints one JSON object (and writes it to ``--out``); rows past the
budget are skipped, not cut.

    python scripts/gpu_check.py --out gpu-check.json --budget-s 400
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_throughput import device_info, resolve_corpus, run_sgjax  # noqa: E402

LARGE = [
    "train.batch_size=16384",
    "train.row_damping=true",
    "optimizer.learning_rate=0.05",
    "train.steps_per_call=20",
    "train.compile_cache=false",
]
DEVICE = ["data.examples=device"]
ROWS = [  # (name, overrides, epochs)
    ("sg-ns, device examples", [*LARGE, *DEVICE], 1),
    ("sg-ns, host examples", LARGE, 1),
    ("sg-ns, device examples, bfloat16", [*LARGE, *DEVICE, "train.dtype=bfloat16"], 1),
    ("sg-ns, device examples, 5 epochs", [*LARGE, *DEVICE], 5),
    (
        "cbow-ns, device examples",
        [*LARGE, *DEVICE, "model.architecture=cbow", "optimizer.learning_rate=0.2"],
        1,
    ),
    ("sg-hs, device examples", [*LARGE, *DEVICE, "model.output=hierarchical"], 1),
    (
        "sg-softmax, full vocabulary",
        [
            "model.output=softmax",
            "data.max_vocab_size=null",
            "train.batch_size=2048",
            "train.steps_per_call=20",
            "train.compile_cache=false",
        ],
        1,
    ),
]


def dot_gflops(B: int, N: int, V: int, repeats: int = 20) -> float:
    """GFLOP/s of a plain float32 (B x N)(N x V) product on the default device."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (B, N), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (N, V), jnp.float32)
    f = jax.jit(jnp.dot)
    f(a, b).block_until_ready()
    t = time.perf_counter()
    for _ in range(repeats):
        out = f(a, b)
    out.block_until_ready()
    return 2.0 * B * N * V * repeats / (time.perf_counter() - t) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--budget-s", type=float, default=400.0, help="skip rows after this")
    ap.add_argument("--rows", help="comma-separated row numbers (default: all)")
    args = ap.parse_args(argv)

    from sgjax.config import load_config

    work = Path(tempfile.mkdtemp(prefix="sgjax-gpu-"))
    _, corpus = resolve_corpus("realtext-v1", work)
    report: dict = {"device": device_info(), "rows": [], "skipped": []}
    t0 = time.perf_counter()
    chosen = [int(i) for i in args.rows.split(",")] if args.rows else range(len(ROWS))
    for i in chosen:
        name, over, epochs = ROWS[i]
        if time.perf_counter() - t0 > args.budget_s:
            report["skipped"].append(name)
            continue
        cfg = load_config(None, [*over, f"train.epochs={epochs}"])
        row: dict = {"row": name, "overrides": over, "epochs": epochs}
        try:
            row.update(run_sgjax(cfg, corpus, work, f"gpu-{i}"))
        except Exception as e:  # a row that fails is reported, the others still run
            row["error"] = f"{type(e).__name__}: {e}"[:500]
        print(json.dumps(row), file=sys.stderr, flush=True)
        report["rows"].append(row)
    report["dot_gflops_softmax_shapes"] = round(dot_gflops(2048, 100, 25_939), 1)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
