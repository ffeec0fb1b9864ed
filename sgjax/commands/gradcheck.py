"""Verify the explicit gradient rules against jax.grad of the loss (float64).

Prints one JSON object per (model, output layer): by default the paper's two architectures
(skipgram, cbow) times every registered output layer, and exits 0 only if every error is
<= 1e-9: ``max_rel_err`` (rule against autodiff) and ``pairwise_rel_err`` (the shared-rows
form against the same rule computed pair by pair). ``--all-variants`` adds skip-gram in
word2vec.c's orientation (``"model": "skipgram_context"``), negatives shared per example
(``"shared_negatives": true``) and CBOW's word2vec.c input update. An argument below its
minimum (listed with each) is refused before anything runs: one line, exit code 2.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sgjax.inputs import INPUTS
    from sgjax.outputs import REGISTRY

    p.add_argument(
        "--model", choices=tuple(INPUTS), action="append", help="input side(s) (default: both)"
    )
    p.add_argument(
        "--output",
        choices=tuple(REGISTRY),
        action="append",
        help="output layer(s) (default: all registered)",
    )
    p.add_argument(
        "--vocab-size", type=int, default=50, help="words (>= 2, the Huffman tree's minimum)"
    )
    p.add_argument("--dim", type=int, default=8, help="vector dimension (>= 1)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=12,
        help="examples (>= 4: three hold planted cases, the last is all padding)",
    )
    p.add_argument("--window", type=int, default=3, help="context slots each side (>= 1)")
    draws = [name for name, layer in REGISTRY.items() if layer.draws]
    p.add_argument(
        "--negatives",
        type=int,
        default=4,
        help=f"K noise words of the layers that draw them: >= 1 with {', '.join(draws)}; "
        "the others ignore it (>= 0 when only they are checked)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (>= 0)")
    p.add_argument("--all-variants", action="store_true", help="check the variants above too")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from sgjax.gradcheck import argument_errors, check, variants

    models = variants(args.model, args.output, args.all_variants)
    flag = "--{}".format
    if errors := argument_errors(vars(args), models, lambda k: flag(k.replace("_", "-"))):
        raise ValueError("; ".join(errors))  # one line, exit code 2 (sgjax.cli)
    ok = True
    for model in models:
        model = dataclasses.replace(model, negatives=args.negatives)
        r = check(
            model,
            vocab_size=args.vocab_size,
            dim=args.dim,
            batch_size=args.batch_size,
            window=args.window,
            seed=args.seed,
        )
        print(json.dumps(r), flush=True)
        ok &= r["ok"]
    return 0 if ok else 1
