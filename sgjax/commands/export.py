"""Write a run's word vectors in the word2vec text or binary format.

Reads the run directory's newest checkpoint (so it also works on an unfinished or
interrupted run) and its vocab.txt; the corpus is not read. --which chooses the vectors:
``input`` (default): v_w, the rows of W, what `sgjax train` writes to vectors.bin;
``output``: v'_w, the rows of W_out (full softmax and negative sampling only: under
hierarchical softmax W_out holds the V-1 inner nodes of the Huffman tree, not words);
``both``: v_w + v'_w (the "w + c" vectors of Levy, Goldberg and Dagan 2015; GloVe's W + W~).
Prints the path written on stdout and a summary on stderr.
Exit status: 0 on success, 2 if the run directory, its checkpoint or its vocabulary is
missing or unusable, --which cannot apply to the run, or the output cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

WHICH = ("input", "output", "both")
LABELS = {"input": "input vectors v_w", "output": "output vectors v'_w", "both": "v_w + v'_w"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="DIR", help="run directory (sgjax train --out)")
    p.add_argument(
        "--format",
        choices=("text", "binary"),
        default="binary",
        help="word2vec text or binary format (default binary)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="output file; .gz compresses (default: DIR/vectors.WHICH.bin or .txt)",
    )
    p.add_argument(
        "--which",
        choices=WHICH,
        default="input",
        help="input vectors v_w (W, default), output vectors v'_w (W_out), or both: v_w + v'_w",
    )


def select_vectors(words: Sequence[str], params: Mapping[str, Any], which: str) -> Any:
    """The :class:`~sgjax.vectors.WordVectors` of ``which`` (see the module docstring) from a
    run's words and parameters ``{"W": (V, N), "W_out": ...}``. Raises ValueError when
    ``which`` needs per-word output vectors and W_out has none (hierarchical softmax)."""
    import numpy as np

    from sgjax.vectors import WordVectors

    if which not in WHICH:
        raise ValueError(f"--which must be one of {', '.join(WHICH)}, got {which!r}")
    W = np.asarray(params["W"], dtype=np.float32)
    if which == "input":
        return WordVectors.from_params(words, W)
    W_out = np.asarray(params["W_out"], dtype=np.float32)
    if W_out.shape != W.shape:
        raise ValueError(
            f"--which {which}: W_out has {W_out.shape[0]} rows for {W.shape[0]} words; under "
            "hierarchical softmax W_out holds the V-1 inner nodes of the Huffman tree, so "
            "there are no output vectors of words (use --which input)"
        )
    return WordVectors.from_params(words, W_out if which == "output" else W + W_out)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sgjax.checkpoint import load_run_state
    from sgjax.vectors import write_word2vec

    # a bad run directory or an unwritable --out: one line and exit code 2 (sgjax.cli)
    vocab, params, meta = load_run_state(args.run)
    vectors = select_vectors(vocab.words, params, args.which)
    binary = args.format == "binary"
    out = args.out or str(Path(args.run) / f"vectors.{args.which}.{'bin' if binary else 'txt'}")
    try:
        write_word2vec(vectors, out, binary=binary)
    except OSError as e:
        raise OSError(e.errno, f"cannot write: {e.strerror or e}", out) from None
    print(
        f"sgjax export: {len(vectors)} words x {vectors.dim} ({LABELS[args.which]}, "
        f"{args.format}) from the checkpoint at step {meta.get('step')} "
        f"({meta.get('words_total')} words processed)",
        file=sys.stderr,
    )
    print(out, flush=True)
    return 0
