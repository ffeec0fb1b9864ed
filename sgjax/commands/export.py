"""Write a run's word vectors: word2vec text or binary, numpy .npy, or TensorBoard's TSV.

Reads the run directory's newest checkpoint (so it also works on an unfinished or
interrupted run) and its vocab.txt; the corpus is not read. --which chooses the vectors:
``input`` (default): v_w, the rows of W, what `sgjax train` writes to vectors.bin;
``output``: v'_w, the rows of W_out (full softmax and negative sampling only: under
hierarchical softmax W_out holds the V-1 inner nodes of the Huffman tree, not words);
``both``: v_w + v'_w (the "w + c" vectors of Levy, Goldberg and Dagan 2015; GloVe's W + W~).
--format chooses the files (OUT is --out, default DIR/vectors.WHICH.bin, .txt, .npy or .tsv):
``binary`` (default) / ``text``: the word2vec file OUT (``.gz`` compresses), as gensim and
the C tool read it; ``npy``: OUT, a float32 (V, N) array (``numpy.load``), and the words, one
a line in row order, in OUT without ``.npy`` + ``.words.txt``; ``tsv``: the TensorBoard
projector's pair: OUT, one tab-separated row of N values per word (no header), and the
metadata, one word a line (no header, as the projector expects for one column), in OUT
without ``.tsv`` + ``.metadata.tsv``. Values are written with 9 significant digits, which
restore float32 exactly. Files appear only when complete (both of a pair are written before
either is renamed into place).
Prints the paths written on stdout (the vectors first) and a summary on stderr.
Exit status: 0 on success, 2 if the run directory, its checkpoint or its vocabulary is
missing or unusable, --which cannot apply to the run, or the output cannot be written.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

WHICH = ("input", "output", "both")
FORMATS = ("binary", "text", "npy", "tsv")
SUFFIX = {"binary": ".bin", "text": ".txt", "npy": ".npy", "tsv": ".tsv"}
#: What replaces SUFFIX in the name of the words file that npy and tsv write next to --out.
WORDS_SUFFIX = {"npy": ".words.txt", "tsv": ".metadata.tsv"}
#: ASCII whitespace but the space (no word of a vocabulary holds any): a words file's breaks
_BREAKS_RE = re.compile("[\t\n\r\x0b\x0c]")
LABELS = {"input": "input vectors v_w", "output": "output vectors v'_w", "both": "v_w + v'_w"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="DIR", help="run directory (sgjax train --out)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="binary",
        help="word2vec binary (default) or text; npy: OUT + OUT's .words.txt; "
        "tsv: TensorBoard projector OUT + OUT's .metadata.tsv",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="output file; .gz compresses text and binary "
        "(default: DIR/vectors.WHICH.bin, .txt, .npy or .tsv)",
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


def words_path(out: str, fmt: str) -> str:
    """The words file that ``--format npy`` or ``tsv`` writes next to ``out``: ``out`` without
    its ``.npy`` / ``.tsv`` suffix, plus ``.words.txt`` / ``.metadata.tsv``."""
    base = out[: -len(SUFFIX[fmt])] if out.endswith(SUFFIX[fmt]) else out
    return base + WORDS_SUFFIX[fmt]


def write_vectors(vectors: Any, out: str, fmt: str) -> list[str]:
    """Write a :class:`~sgjax.vectors.WordVectors` in ``fmt`` (see the module docstring) and
    return the paths written, the vectors first. Raises ValueError naming the file for an
    output it cannot write (a .gz npy or tsv, a word that would break the words file) and
    OSError naming the file the system refused."""
    import numpy as np

    from sgjax.vectors import write_word2vec

    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt in ("text", "binary"):
        try:
            write_word2vec(vectors, out, binary=fmt == "binary")
        except OSError as e:
            raise OSError(e.errno, f"cannot write: {e.strerror or e}", out) from None
        return [out]
    if out.endswith(".gz"):
        raise ValueError(f"{out}: --format {fmt} writes uncompressed files; drop the .gz")
    names = words_path(out, fmt)
    words = vectors.words
    if not all(words) or _BREAKS_RE.search("".join(words)):  # one pass; the loop finds which
        i = next(i for i, w in enumerate(words) if not w or _BREAKS_RE.search(w))
        raise ValueError(
            f"{names}: word {i} ({words[i][:40]!r}) is empty or holds a tab or line break, "
            "which would break the one-word-a-line file"
        )
    matrix = np.ascontiguousarray(vectors.matrix, dtype="<f4")

    def write_matrix(f: IO[bytes]) -> None:
        if fmt == "npy":
            np.save(f, matrix, allow_pickle=False)
        else:
            row = "\t".join(["%.9g"] * matrix.shape[1])
            f.write("".join(row % tuple(r) + "\n" for r in matrix.tolist()).encode("ascii"))

    def write_words(f: IO[bytes]) -> None:
        f.write("".join(w + "\n" for w in words).encode("utf-8"))

    _write_together([(out, write_matrix), (names, write_words)])
    return [out, names]


def _write_together(files: Sequence[tuple[str, Callable[[IO[bytes]], None]]]) -> None:
    """Write each file to ``path + ".tmp"`` and rename none into place until all are written,
    so that a failed write leaves no new file (temporary files are removed; the OSError names
    the file)."""
    done: list[str] = []
    try:
        for path, write in files:
            tmp = path + ".tmp"
            done.append(tmp)
            try:
                with open(tmp, "wb") as f:
                    write(f)
            except OSError as e:
                raise OSError(e.errno, f"cannot write: {e.strerror or e}", path) from None
        for path, _ in files:
            os.replace(path + ".tmp", path)
    except BaseException:
        for tmp in done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sgjax.checkpoint import load_run_state

    # a bad run directory or an unwritable --out: one line and exit code 2 (sgjax.cli)
    vocab, params, meta = load_run_state(args.run)
    vectors = select_vectors(vocab.words, params, args.which)
    out = args.out or str(Path(args.run) / f"vectors.{args.which}{SUFFIX[args.format]}")
    paths = write_vectors(vectors, out, args.format)
    print(
        f"sgjax export: {len(vectors)} words x {vectors.dim} ({LABELS[args.which]}, "
        f"{args.format}) from the checkpoint at step {meta.get('step')} "
        f"({meta.get('words_total')} words processed)",
        file=sys.stderr,
    )
    print("\n".join(paths), flush=True)
    return 0
