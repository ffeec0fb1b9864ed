"""Thin command-line front ends. Each module defines ``add_arguments(parser)`` and
``run(args) -> int`` and calls library functions that scripts and notebooks call too. Errors
that are bad input (ValueError, OSError) propagate to :func:`sgjax.cli.main`, which prints
them as one line with exit code 2."""

from __future__ import annotations

import sys
from typing import Any


def read_vectors(command: str, path: str, binary: bool | None, allow_nonfinite: bool) -> Any:
    """``(vectors, binary)`` of a word2vec file, for ``sgjax eval`` and ``sgjax neighbors``:
    a nan or inf value is an error unless ``allow_nonfinite``, and then a warning."""
    from sgjax.vectors import detect_binary, read_word2vec
    from sgjax.vectors_io import clip, find_nonfinite

    binary = detect_binary(path) if binary is None else binary
    kv = read_word2vec(path, binary, allow_nonfinite=allow_nonfinite)
    bad = find_nonfinite(kv.matrix) if allow_nonfinite else None
    if bad is not None:
        print(
            f"sgjax {command}: warning: {path}: the vector of {clip(kv.words[bad[0]])} (and "
            "maybe others) holds nan or inf; results involving them are meaningless",
            file=sys.stderr,
        )
    return kv, binary
