"""Join frequent word pairs into phrase tokens ("new york" -> "new_york"), as word2vec.c's
word2phrase and gensim's Phrases do, and write the rewritten corpus.

INPUT is a text file (plain, .gz, .bz2 or .xz) or a directory of them; OUTPUT is one text
file (compressed when named .gz, .bz2 or .xz), written atomically: the input's bytes with the
whitespace inside each joined phrase replaced by the delimiter. Each pass counts unigrams and
pairs, keeps the pairs scoring above --threshold and joins them greedily left to right;
--passes N repeats this on the previous pass's output (trigrams and longer). The defaults are
word2phrase's (-min-count 5 -threshold 100, delimiter "_", lines never split); --gensim takes
gensim 4.4 Phrases' (min_count 5, threshold 10, scoring 'default' = original, with
LineSentence's 10,000-token line pieces); options given explicitly win over either.
Scorings (sgjax.phrases): word2phrase = (c_ab - min_count) / c_a / c_b * tokens; original =
gensim's original_scorer, the same with len(vocab) (distinct unigrams + pairs) for tokens;
npmi = gensim's normalised PMI (threshold in [-1, 1]).
Prints one JSON line: phrases found, tokens in and out and seconds, per pass and in total.
Exit status: 0 on success, 2 if an argument is bad, the input is missing, empty or corrupt,
or the output cannot be written.
"""

from __future__ import annotations

import argparse

SCORINGS = ("word2phrase", "original", "npmi")  # sgjax.phrases.SCORINGS, without numpy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="corpus file or directory")
    p.add_argument("output", metavar="OUTPUT", help="the rewritten corpus (one file)")
    p.add_argument(
        "--gensim",
        action="store_true",
        help="gensim Phrases' defaults (min_count 5, threshold 10, scoring original, lines "
        "cut every 10000 tokens) instead of word2phrase's",
    )
    p.add_argument("--min-count", type=int, metavar="N", help="min_count delta (default 5)")
    p.add_argument(
        "--threshold",
        type=float,
        metavar="X",
        help="a pair is a phrase when its score > X (default 100; --gensim: 10)",
    )
    p.add_argument(
        "--scoring",
        choices=SCORINGS,
        help="score formula (default word2phrase; --gensim: original)",
    )
    p.add_argument("--passes", type=int, default=1, metavar="N", help="passes (default 1)")
    p.add_argument("--delimiter", help='joins the words of a phrase (default "_")')
    p.add_argument(
        "--connector-words",
        metavar="WORDS",
        help="words that may sit inside a phrase but never start or end one (gensim's "
        "connector_words): 'english' (gensim's ENGLISH_CONNECTOR_WORDS) or a comma-separated "
        "list (default none)",
    )
    p.add_argument(
        "--max-line-tokens",
        type=int,
        metavar="N",
        help="cut lines into sentences of N tokens; 0: never (default 0; --gensim: 10000)",
    )
    p.add_argument(
        "--max-vocab-size",
        type=int,
        metavar="N",
        help="prune counts when more than N unigrams + pairs are held (default 40000000, "
        "gensim's; 0: never)",
    )


def settings(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`sgjax.phrases.phrase_corpus` from the command line: the
    preset (word2phrase's or gensim's), then every option given."""
    from sgjax.phrases import ENGLISH_CONNECTOR_WORDS, GENSIM, MAX_VOCAB_SIZE, WORD2PHRASE

    out = dict(GENSIM if args.gensim else WORD2PHRASE)
    out.update(delimiter="_", connector_words=(), max_vocab_size=MAX_VOCAB_SIZE)
    given = {
        "min_count": args.min_count,
        "threshold": args.threshold,
        "scoring": args.scoring,
        "delimiter": args.delimiter,
        "max_line_tokens": args.max_line_tokens,
        "max_vocab_size": args.max_vocab_size,
    }
    out.update({k: v for k, v in given.items() if v is not None})
    if out["scoring"] == "npmi" and args.threshold is None:
        raise ValueError("--scoring npmi needs a --threshold in [-1, 1] (npmi scores lie there)")
    for key in ("max_line_tokens", "max_vocab_size"):
        if out[key] is not None and out[key] < 0:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 0, got {out[key]}")
        out[key] = out[key] or None  # 0: no limit
    words = args.connector_words
    if words is not None:
        listed = [w.strip() for w in words.split(",")]
        english = listed == ["english"]
        out["connector_words"] = tuple(
            sorted(ENGLISH_CONNECTOR_WORDS) if english else filter(None, listed)
        )
    return out


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from sgjax.phrases import phrase_corpus

    t0 = time.perf_counter()
    kwargs = settings(args)  # a bad value or file: one line and exit code 2 (sgjax.cli)
    summary = phrase_corpus(args.input, args.output, args.passes, **kwargs)
    out = {"input": args.input, "output": args.output, "settings": kwargs, **summary}
    out["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(out), flush=True)
    return 0
