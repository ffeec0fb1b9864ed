"""Nearest neighbours (cosine similarity) of words in a word2vec vectors file.

Prints one JSON object on stdout: {"vectors": ..., "topn": N, "neighbors": {WORD: [[word,
cosine], ...]}, "unknown": [...]}. When stderr is a terminal (or with --table) a readable
list is also written to stderr. A word that is not in the vocabulary is reported on stderr
(with its case variants in the file, if any) and listed under "unknown"; it is not an error.
A vectors file holding nan or inf values is refused unless --allow-nonfinite is given (a
nan cosine is then printed as null). Exit status: 0 on success, 2 if an argument is bad or
the file cannot be read or is malformed.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("words", nargs="+", metavar="WORD", help="words to look up")
    p.add_argument("--vectors", required=True, metavar="FILE", help="word2vec text or binary file")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--binary",
        dest="binary",
        action="store_true",
        default=None,
        help="the file is in the binary format (default: detect)",
    )
    fmt.add_argument(
        "--text",
        dest="binary",
        action="store_false",
        help="the file is in the text format (default: detect)",
    )
    p.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="load a file holding nan or inf values (default: refuse it; scores involving "
        "those words are meaningless)",
    )
    p.add_argument("--topn", type=int, default=10, metavar="N", help="neighbours per word")
    p.add_argument(
        "--restrict-vocab",
        type=int,
        default=0,
        metavar="N",
        help="search only the first N words of the file (default 0: all)",
    )
    p.add_argument(
        "--table",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write a readable list to stderr (default: when stderr is a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import math

    from sgjax.commands import read_vectors
    from sgjax.evaluate import nearest_neighbors

    if args.topn < 1 or args.restrict_vocab < 0:
        print(
            "sgjax neighbors: error: --topn must be >= 1 and --restrict-vocab >= 0", file=sys.stderr
        )
        return 2
    # a bad file: one line and exit code 2 (sgjax.cli)
    kv, _ = read_vectors("neighbors", args.vectors, args.binary, args.allow_nonfinite)
    known = [w for w in dict.fromkeys(args.words) if w in kv]
    unknown = [w for w in dict.fromkeys(args.words) if w not in kv]
    for w in unknown:
        variants = [v for v in kv.words if v.lower() == w.lower()][:5]
        hint = f"; case variants in the file: {', '.join(variants)}" if variants else ""
        print(
            f"sgjax neighbors: {w!r} is not in the vocabulary ({len(kv)} words){hint}",
            file=sys.stderr,
        )
    found = nearest_neighbors(kv, known, topn=args.topn, restrict_vocab=args.restrict_vocab or None)
    out = {
        "vectors": args.vectors,
        "topn": args.topn,
        "neighbors": {
            w: [[n, s if math.isfinite(s) else None] for n, s in found[w]] for w in known
        },
        "unknown": unknown,
    }
    print(json.dumps(out, ensure_ascii=False), flush=True)
    if args.table or (args.table is None and sys.stderr.isatty()):
        for w in known:
            print(f"\n{w}", file=sys.stderr)
            for n, s in found[w]:
                print(f"  {s:+.4f}  {n}", file=sys.stderr)
    return 0
