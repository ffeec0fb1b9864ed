"""PNG figures of a run: loss and learning rate against words processed, words/s per epoch,
evaluation scores per epoch (from metrics.jsonl), and a 2-D PCA of word pairs (countries
and capitals by default) from the run's vectors (vectors.bin, or the newest checkpoint of an
unfinished run). A figure whose data the run lacks is skipped with a note on stderr.

Several runs (e.g. one per optimizer) are compared instead: their curves overlaid, one line
per run labelled by its directory name, in loss.png (loss and learning rate against words
processed), speed.png (words/s per epoch), scores.png (scores per epoch) and loss-time.png
(loss against wall-clock seconds, for runs whose metrics carry "time"), written into --out,
which several runs need (the comparison belongs to none of them).

Prints the path of each PNG written, one a line. Needs matplotlib (pip install
'sgjax[plot]'). Exit status: 0 if at least one figure was written, 2 if none could be (DIR
is not a run directory, matplotlib is missing, a file is malformed, nothing to plot).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run",
        metavar="DIR",
        nargs="+",
        help="run directory (sgjax train --out); several: their curves overlaid",
    )
    p.add_argument(
        "--out",
        metavar="FIGDIR",
        help="where to write the PNGs (default DIR/figures; required with several runs)",
    )
    p.add_argument(
        "--section",
        default="capital-common-countries",
        metavar="NAME",
        help="questions-words section whose word pairs the PCA figure shows "
        "(default capital-common-countries; e.g. family, gram6-nationality-adjective; "
        "one run only)",
    )
    p.add_argument(
        "--analogies",
        metavar="FILE",
        help="questions-words format file for --section (default: the shipped one)",
    )


def _error(msg: object) -> int:
    print(f"sgjax report: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sgjax.report import write_overlay, write_report

    runs = args.run
    for r in runs:
        if not Path(r).is_dir():
            return _error(f"{r}: no such run directory")
    if len(runs) > 1 and args.out is None:
        return _error(f"comparing {len(runs)} runs needs --out FIGDIR")
    try:
        if len(runs) == 1:
            written, notes = write_report(
                runs[0], args.out, section=args.section, analogies=args.analogies
            )
        else:
            written, notes = write_overlay(runs, args.out)
    except ImportError as e:
        return _error(e)
    except (OSError, ValueError) as e:
        return _error(f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename else e)
    for note in notes:
        print(f"sgjax report: {note}", file=sys.stderr)
    for path in written:
        print(path, flush=True)
    if not written:
        return _error(f"nothing to plot in {' '.join(runs)}")
    return 0
