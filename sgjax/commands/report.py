"""PNG figures of a run: loss and learning rate against words processed, words/s per epoch,
evaluation scores per epoch (from metrics.jsonl), and a 2-D PCA of word pairs (countries
and capitals by default) from the run's vectors (vectors.bin, or the newest checkpoint of an
unfinished run). A figure whose data the run lacks is skipped with a note on stderr.

Prints the path of each PNG written, one a line. Needs matplotlib (pip install
'sgjax[plot]'). Exit status: 0 if at least one figure was written, 2 if none could be (DIR
is not a run directory, matplotlib is missing, a file is malformed, nothing to plot).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="DIR", help="run directory (sgjax train --out)")
    p.add_argument("--out", metavar="FIGDIR", help="where to write the PNGs (default DIR/figures)")
    p.add_argument(
        "--section",
        default="capital-common-countries",
        metavar="NAME",
        help="questions-words section whose word pairs the PCA figure shows "
        "(default capital-common-countries; e.g. family, gram6-nationality-adjective)",
    )
    p.add_argument(
        "--analogies",
        metavar="FILE",
        help="questions-words format file for --section (default: the shipped one)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sgjax.report import write_report

    if not Path(args.run).is_dir():
        print(f"sgjax report: error: {args.run}: no such run directory", file=sys.stderr)
        return 2
    try:
        written, notes = write_report(
            args.run, args.out, section=args.section, analogies=args.analogies
        )
    except ImportError as e:
        print(f"sgjax report: error: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        msg = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename else e
        print(f"sgjax report: error: {msg}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"sgjax report: {note}", file=sys.stderr)
    for path in written:
        print(path, flush=True)
    if not written:
        print(f"sgjax report: error: nothing to plot in {args.run}", file=sys.stderr)
        return 2
    return 0
