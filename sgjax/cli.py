"""The ``sgjax`` command: a thin dispatcher over :mod:`sgjax.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module under sgjax.commands, one-line help). Each module keeps its heavy imports
# inside run(), so `sgjax --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train word vectors from a YAML config (no arguments: the quickstart)"),
    "gradcheck": ("gradcheck", "check the paper's explicit gradient rules against jax.grad"),
    "eval": ("evaluate", "analogy and word-similarity scores of a vectors file"),
    "neighbors": ("neighbors", "nearest neighbours of words in a vectors file"),
    "export": ("export", "write a run's vectors in word2vec text or binary format"),
    "report": ("report", "PNG figures of a finished run"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(f"sgjax.commands.{module}")
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip())
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not args_list:
        parser.print_help()
        return 0
    args = parser.parse_args(args_list)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
