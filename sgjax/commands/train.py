"""Train word vectors from a YAML config.

With no arguments: the quickstart, skip-gram with negative sampling on the embedded
3M-token corpus (under a minute on 2 CPU cores), then analogy and similarity scores and a few
nearest neighbours. The run directory gets config.yaml, vocab.txt, metrics.jsonl,
checkpoints/, vectors.bin, vectors.txt and scores.json.
"""

from __future__ import annotations

import argparse

from sgjax.commands import add_config_arguments

QUICKSTART_WORDS = ("king", "france", "computer", "good", "city")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--out", default="runs/quickstart", help="run directory (default: %(default)s)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest checkpoint; with --set "
        "train.epochs=N (more than the run's) it trains on, the rest of its schedule "
        "stretched over the added epochs (sgjax.continuation)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its config, vocabulary, metrics, checkpoints "
        "and vectors are deleted first)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    from sgjax.config_docs import describe_keys

    p.epilog = describe_keys()
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from sgjax.config import load_config
    from sgjax.experiment import train
    from sgjax.sharding import initialize_distributed, is_primary
    from sgjax.signals import Interrupted
    from sgjax.timing import Clock
    from sgjax.train import NonFiniteLossError

    clock = Clock(from_process_start=True)  # import: the process's start until here

    if args.resume and (args.config or args.overwrite):
        print(
            "sgjax train: error: --resume uses the run's own config.yaml (with --set: more "
            "train.epochs, or the keys that may change); drop --config/--overwrite",
            file=sys.stderr,
        )
        return 2
    saved = Path(args.out) / "config.yaml"
    if args.resume:  # --set on top of the run's config: checked by train (sgjax.experiment)
        cfg = load_config(saved, args.overrides) if args.overrides and saved.is_file() else None
    else:
        cfg = load_config(args.config, args.overrides)
    # multi-host: jax.distributed starts before any other JAX work (sgjax.sharding)
    mesh = cfg.mesh if cfg is not None else load_config(saved).mesh if saved.is_file() else None
    initialize_distributed(mesh)
    try:  # other errors: one line and exit code 2 (sgjax.cli)
        result = train(
            cfg,
            args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.quiet,
            clock=clock,
        )
    except NonFiniteLossError as e:
        print(f"sgjax train: {e}", file=sys.stderr)
        return 3
    except Interrupted as e:
        print(
            f"sgjax train: {e}; continue with: sgjax train --resume --out {args.out}",
            file=sys.stderr,
        )
        return 128 + e.signum  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them
    if not is_primary():  # process 0 reports for all
        return 0
    print(json.dumps({"out": str(result.out_dir), **result.scores}))
    if not args.quiet:
        for w in QUICKSTART_WORDS:
            if w in result.vectors:
                near = result.vectors.most_similar(w, topn=5)
                print(f"{w:>10}: " + ", ".join(f"{n} ({s:.2f})" for n, s in near))
    return 0
