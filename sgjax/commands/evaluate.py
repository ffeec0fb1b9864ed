"""Score a word2vec vectors file on word analogies and word-pair similarity.

Prints one JSON object on stdout. When stderr is a terminal (or with --table) a readable
table is also written to stderr, so `sgjax eval ... > scores.json` still shows it. The
defaults are the data sets shipped with sgjax (questions-words.txt, WordSim-353) and
gensim's protocol (first 300,000 words, case-insensitive, out-of-vocabulary questions
skipped), so the numbers compare with gensim's evaluate_word_analogies/evaluate_word_pairs.
A vectors file holding nan or inf values is refused unless --allow-nonfinite is given.
Exit status: 0 on success, 2 if an argument is bad or a file cannot be read or is malformed.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--analogies",
        metavar="FILE",
        help="questions-words format file (default: the shipped questions-words.txt)",
    )
    p.add_argument("--no-analogies", action="store_true", help="skip the analogy test")
    p.add_argument(
        "--similarity",
        metavar="FILE",
        nargs="+",
        action="extend",
        help="word-pair files, tab-separated 'w1 w2 score' (default: WordSim-353)",
    )
    p.add_argument("--no-similarity", action="store_true", help="skip the word-pair tests")
    p.add_argument(
        "--restrict-vocab",
        type=int,
        default=300_000,
        metavar="N",
        help="use only the first N words of the file (default 300000; 0: all)",
    )
    p.add_argument(
        "--method",
        choices=("add", "mul"),
        default="add",
        help="analogy objective: 3CosAdd (default, as gensim) or 3CosMul",
    )
    p.add_argument(
        "--case-sensitive",
        action="store_true",
        help="match words exactly instead of upper-casing everything",
    )
    p.add_argument(
        "--table",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write a readable table to stderr (default: when stderr is a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from sgjax.commands import read_vectors
    from sgjax.evaluate import evaluate

    if args.restrict_vocab < 0:
        print("sgjax eval: error: --restrict-vocab must be >= 0", file=sys.stderr)
        return 2
    t0 = time.perf_counter()  # a bad file: one line and exit code 2 (sgjax.cli)
    kv, binary = read_vectors("eval", args.vectors, args.binary, args.allow_nonfinite)
    t1 = time.perf_counter()
    out = {"vectors": {"path": args.vectors, "format": "binary" if binary else "text"}}
    out.update(
        evaluate(
            kv,
            analogies=False if args.no_analogies else args.analogies,
            similarity=False if args.no_similarity else args.similarity,
            restrict_vocab=args.restrict_vocab or None,
            method=args.method,
            case_insensitive=not args.case_sensitive,
        )
    )
    out["vectors"].update(vocab_size=out.pop("vocab_size"), dim=out.pop("dim"))
    out["seconds"] = {
        "read": round(t1 - t0, 3),
        "evaluate": round(time.perf_counter() - t1, 3),
    }
    print(json.dumps(out), flush=True)
    if args.table or (args.table is None and sys.stderr.isatty()):
        print(format_table(out), file=sys.stderr)
    for s in out.get("similarity", []):
        if "error" in s:
            print(f"sgjax eval: warning: {s['error']}", file=sys.stderr)
    return 0


def format_table(out: dict) -> str:
    """The JSON result as aligned text."""
    v = out["vectors"]
    lines = [f"{v['path']}: {v['vocab_size']} words x {v['dim']} ({v['format']})"]
    a = out.get("analogies")
    if a:
        lines.append(
            f"\nanalogies ({a['method']}, first {a['restrict_vocab'] or 'all'} words): "
            f"{a['questions']} questions, {a['oov']} skipped as out of vocabulary "
            f"({a['oov_ratio']:.1f}%)"
        )
        width = max([len(s["section"]) for s in a["sections"]] + [14])
        for s in a["sections"]:
            lines.append(
                f"  {s['section']:<{width}}  {100 * s['accuracy']:5.1f}%  "
                f"{s['correct']:>6} / {s['evaluated']}"
            )
        lines.append(
            f"  {'Total accuracy':<{width}}  {100 * a['accuracy']:5.1f}%  "
            f"{a['correct']:>6} / {a['evaluated']}"
        )
    for s in out.get("similarity", []):
        if s.get("spearman") is None and "error" in s:
            lines.append(f"\n{s['path']}: no usable pairs")
            continue
        sp = "nan" if s["spearman"] is None else f"{s['spearman']:.4f}"
        pe = "nan" if s["pearson"] is None else f"{s['pearson']:.4f}"
        lines.append(
            f"\n{s['path']}: Spearman {sp}  Pearson {pe}  "
            f"({s['pairs']} pairs, {s['oov_ratio']:.1f}% out of vocabulary)"
        )
    return "\n".join(lines)
