"""Verify the paper's explicit gradient rules against jax.grad of the loss (float64).

Prints one JSON object per (model, output) combination (six lines by default) and exits 0
only if every max_rel_err <= 1e-9. ``--all-variants`` (or the per-variant options) adds the
variants of the example record: skip-gram in word2vec.c's orientation
(``"skipgram_input": "context"``), negatives shared per centre word
(``"shared_negatives": true``) and CBOW's word2vec.c input update (``"cbow_update":
"word2vec"``).
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
    p.add_argument(
        "--shared-negatives",
        choices=("both", "no", "only"),
        default="no",
        help="skip-gram negative sampling: check per-pair negatives (default), negatives "
        "shared per centre word, or both",
    )
    p.add_argument(
        "--skipgram-input",
        choices=("both", "center", "context"),
        default="center",
        help="skip-gram's input word: the paper's centre word (default), word2vec.c's "
        "context words, or both",
    )
    p.add_argument(
        "--cbow-update",
        choices=("both", "paper", "word2vec"),
        default="paper",
        help="CBOW input update: the paper's EH / C (default), word2vec.c's EH, or both",
    )
    p.add_argument("--all-variants", action="store_true", help="check every variant above ('both')")


def run(args: argparse.Namespace) -> int:
    import itertools
    import json

    from sgjax.gradcheck import check

    if args.all_variants:
        args.shared_negatives = args.skipgram_input = args.cbow_update = "both"
    ok = True
    for model in args.model or ("skipgram", "cbow"):
        for output in args.output or ("softmax", "hierarchical", "negative"):
            shared_variants = [False]
            inputs = ["center"]
            updates = ["paper"]
            if model == "cbow" and not args.cbow_sum:
                updates = {"both": ["paper", "word2vec"]}.get(args.cbow_update, [args.cbow_update])
            if model == "skipgram":
                inputs = {"both": ["center", "context"]}.get(
                    args.skipgram_input, [args.skipgram_input]
                )
                if output == "negative":
                    shared_variants = {"both": [False, True], "no": [False], "only": [True]}[
                        args.shared_negatives
                    ]
            for skipgram_input, shared, update in itertools.product(
                inputs, shared_variants, updates
            ):
                r = check(
                    model,
                    output,
                    cbow_mean=not args.cbow_sum,
                    cbow_update=update,
                    vocab_size=args.vocab_size,
                    dim=args.dim,
                    batch_size=args.batch_size,
                    window=args.window,
                    negatives=args.negatives,
                    seed=args.seed,
                    shared_negatives=shared,
                    skipgram_input=skipgram_input,
                )
                print(json.dumps(r), flush=True)
                ok &= r["ok"]
    return 0 if ok else 1
