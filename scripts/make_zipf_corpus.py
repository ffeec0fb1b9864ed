"""Write a synthetic corpus whose word frequencies follow a Zipf law (fixed seed).

Word of rank r (0-based) is the bijective base-26 numeral of r + 1 in letters a..z, so the
most frequent words are the shortest, as in natural text; P(rank r) ∝ (r + 1)^-exponent
over ``--vocab`` word types. Lines (sentences) have uniform lengths in
1..2*mean-1 tokens, or the whole corpus is one line (``--single-line``, like text8). The
output is compressed by suffix (.gz, .bz2, .xz). Generation is vectorised and streams in
blocks, so any size fits in little memory. Examples::

    # 1 GB corpus for the memory test of the pipeline
    python scripts/make_zipf_corpus.py --out /tmp/zipf-1g.txt --bytes 1e9
    # text8-sized: 17,005,207 tokens on one line, ~71k words with count >= 5
    python scripts/make_zipf_corpus.py --out /tmp/zipf-text8.txt --preset text8

Generated data belongs under /tmp (or another scratch place), never in the repository.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import lzma
import sys
import time
from pathlib import Path

import numpy as np

PRESETS = {
    # text8: 17,005,207 tokens, 253,854 types, 71,290 with count >= 5, one line
    # (335k types at s = 1.222 give those two figures in expectation)
    "text8": {"tokens": 17_005_207, "vocab": 335_000, "exponent": 1.222, "single_line": True},
}
BLOCK = 1 << 20  # tokens per generated block


def word_list(V: int) -> list[bytes]:
    """Bijective base-26 numerals of 1..V: a, b, ..., z, aa, ab, ..."""
    out = []
    for r in range(1, V + 1):
        s = bytearray()
        while r:
            r, d = divmod(r - 1, 26)
            s.append(97 + d)
        out.append(bytes(s[::-1]))
    return out


def open_out(path: Path):
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix, open)
    return opener(path, "wb")


def generate(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    words = word_list(args.vocab)
    with_space = np.array([w + b" " for w in words], dtype=object)
    with_newline = np.array([w + b"\n" for w in words], dtype=object)
    word_bytes = np.array([len(w) + 1 for w in words], dtype=np.int64)
    cdf = np.cumsum(1.0 / np.arange(1, args.vocab + 1) ** args.exponent)
    cdf /= cdf[-1]
    tokens_left = args.tokens if args.tokens else None
    bytes_left = int(args.bytes) if args.bytes else None
    written = tokens = lines = 0
    line_left = 0  # tokens left in the current line
    t0 = time.perf_counter()
    with open_out(args.out) as f:
        while (tokens_left is None or tokens_left > 0) and (bytes_left is None or bytes_left > 0):
            n = BLOCK if tokens_left is None else min(BLOCK, tokens_left)
            ids = np.searchsorted(cdf, rng.random(n), side="right").clip(max=args.vocab - 1)
            # line ends: positions where the current line's remaining count runs out
            if args.single_line:
                ends = np.zeros(n, bool)
            else:
                lens = [line_left] if line_left else []
                total = line_left
                while total < n:
                    k = rng.integers(1, 2 * args.mean_line_tokens, size=1 + n // 8)
                    lens.extend(k.tolist())
                    total += int(k.sum())
                cum = np.cumsum(lens)
                ends = np.zeros(n, bool)
                ends[cum[cum <= n] - 1] = True
                line_left = int(cum[cum > n][0] - n) if (cum > n).any() else 0
            last = tokens_left is not None and n == tokens_left
            ends[-1] |= last  # the corpus ends with a newline
            if bytes_left is not None:  # stop at the last token that fits, ending a line
                cum = np.cumsum(word_bytes[ids])
                if cum[-1] >= bytes_left:
                    k = max(1, int(np.searchsorted(cum, bytes_left, side="right")))
                    ids, ends = ids[:k], ends[:k]
                    ends[-1] = last = True
            data = b"".join(np.where(ends, with_newline[ids], with_space[ids]))
            f.write(data)
            written += len(data)
            tokens += len(ids)
            lines += int(ends.sum())
            if tokens_left is not None:
                tokens_left -= len(ids)
            if bytes_left is not None:
                bytes_left = 0 if last else bytes_left - len(data)
    return {
        "out": str(args.out),
        "tokens": tokens,
        "lines": lines,
        "bytes_uncompressed": written,
        "vocab": args.vocab,
        "exponent": args.exponent,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output file (.gz/.bz2/.xz compress)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="named size (overrides defaults)")
    p.add_argument("--tokens", type=int, default=0, help="number of tokens (0: use --bytes)")
    p.add_argument("--bytes", type=float, default=0, help="approximate uncompressed size")
    p.add_argument("--vocab", type=int, default=1_000_000, help="word types in the Zipf law")
    p.add_argument("--exponent", type=float, default=1.1, help="Zipf exponent s")
    p.add_argument("--mean-line-tokens", type=int, default=20, help="mean tokens per line")
    p.add_argument("--single-line", action="store_true", help="the whole corpus on one line")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.preset:
        for k, v in PRESETS[args.preset].items():
            setattr(args, k, v)
    if not args.tokens and not args.bytes:
        p.error("give --tokens, --bytes or --preset")
    if args.out.resolve().is_relative_to(Path(__file__).resolve().parents[1]):
        print("warning: writing generated data inside the repository", file=sys.stderr)
    print(json.dumps(generate(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
