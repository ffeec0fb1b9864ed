"""Thin command-line front ends. Each module defines ``add_arguments(parser)`` and
``run(args) -> int`` and calls library functions that scripts and notebooks call too. Errors
that are bad input (ValueError, OSError) propagate to :func:`sgjax.cli.main`, which prints
them as one line with exit code 2."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """``--config FILE`` (repeatable, merged in order) and ``--set KEY=VALUE`` (repeatable),
    as ``sgjax train`` and ``sgjax config`` take them (:func:`sgjax.config.load_config`)."""
    p.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help="YAML config file; repeat to merge several in order, later files winning key by "
        "key (default: the built-in defaults, skip-gram negative sampling; --set "
        "model.architecture=... / model.output=... picks another model with its own defaults)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override after the files, e.g. --set optimizer.name=adam (repeatable)",
    )


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
