"""Verify the paper's explicit gradient rules against jax.grad of the loss (float64).

Prints one JSON object per (model, output) combination and exits 0 only if every
max_rel_err <= 1e-9.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        choices=("skipgram", "cbow"),
        action="append",
        help="architecture(s) to check (default: both)",
    )
    p.add_argument(
        "--output",
        choices=("softmax", "hierarchical", "negative"),
        action="append",
        help="output layer(s) to check (default: all three)",
    )
    p.add_argument("--vocab-size", type=int, default=50)
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--window", type=int, default=3)
    p.add_argument("--negatives", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cbow-sum", action="store_true", help="CBOW h = sum, not mean")


def run(args: argparse.Namespace) -> int:
    import json

    from sgjax.gradcheck import check

    ok = True
    for model in args.model or ("skipgram", "cbow"):
        for output in args.output or ("softmax", "hierarchical", "negative"):
            r = check(
                model,
                output,
                cbow_mean=not args.cbow_sum,
                vocab_size=args.vocab_size,
                dim=args.dim,
                batch_size=args.batch_size,
                window=args.window,
                negatives=args.negatives,
                seed=args.seed,
            )
            print(json.dumps(r), flush=True)
            ok &= r["ok"]
    return 0 if ok else 1
