"""The ``sgjax`` command: a thin dispatcher over :mod:`sgjax.commands`."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from typing import NoReturn

# name -> (module under sgjax.commands, one-line help). Each module keeps its heavy imports
# inside run(), so `sgjax --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train word vectors from a YAML config (no arguments: the quickstart)"),
    "config": ("config", "print the resolved config as YAML (what a run writes as config.yaml)"),
    "gradcheck": ("gradcheck", "check the paper's explicit gradient rules against jax.grad"),
    "eval": ("evaluate", "analogy and word-similarity scores of a vectors file"),
    "neighbors": ("neighbors", "nearest neighbours of words in a vectors file"),
    "export": ("export", "write a run's vectors: word2vec text or binary, npy, or TensorBoard tsv"),
    "report": ("report", "PNG figures of a run, or of several runs overlaid"),
    "phrases": ("phrases", "join frequent word pairs into phrase tokens (word2phrase)"),
}


#: Exceptions that mean bad input or an environment fault (a missing, corrupt or unwritable
#: file, a full disk, a bad config key, a missing optional package): one line on stderr and
#: exit code 2. Anything else is a bug in sgjax: one line and exit code 1. ``--debug`` or
#: SGJAX_DEBUG=1 shows tracebacks.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, EOFError, ImportError)
MAX_MESSAGE = 500


def one_line(e: BaseException) -> str:
    """An exception as one line: an OSError as ``file: reason``, else its message's first
    line, cut to ``MAX_MESSAGE`` characters."""
    if isinstance(e, OSError) and e.strerror:
        names = [str(f) for f in (e.filename, e.filename2) if f is not None]
        text = f"{' -> '.join(names)}: {e.strerror}" if names else e.strerror
    else:
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        text = " ".join(text.split()) or type(e).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (exit code 2) like other errors."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sgjax", description=__doc__)
    parser.add_argument(
        "--debug",
        action="store_true",
        default=os.environ.get("SGJAX_DEBUG", "") not in ("", "0"),
        help="show Python tracebacks instead of one-line errors (also: SGJAX_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(f"sgjax.commands.{module}")
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip())
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM raises KeyboardInterrupt("SIGTERM") as Ctrl-C does, so that partial files
    are removed on the way out (training turns both into a checkpoint, sgjax.train)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    try:
        old = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        old = None
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


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
    with _sigterm_interrupts():
        if args.debug:
            return int(args._run(args) or 0)
        try:
            return _run(args)
        except KeyboardInterrupt as e:  # outside training (which checkpoints): files are atomic
            why = str(e) or "SIGINT"
            print(f"sgjax {args.command}: stopped by {why}", file=sys.stderr)
            return 128 + signal.Signals.__members__.get(why, signal.SIGINT)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args._run(args) or 0)
    except INPUT_ERRORS as e:
        print(f"sgjax {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a bug: one line, the traceback with --debug
        print(
            f"sgjax {args.command}: internal error: {type(e).__name__}: {one_line(e)} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def run() -> NoReturn:
    """The ``sgjax`` command: :func:`main`, then the process ends without Python's teardown
    of its modules, ~0.2 s of every run once JAX is loaded (measured: 0.21 s from main's
    return to the exit, 0.01 s this way). First, as at a normal exit and in its order, the
    threads are shut down as the interpreter does (thread pools told to stop, the other
    threads waited for) and the atexit handlers (JAX's among them) run; then output is
    flushed: a write that fails there (a full disk) is one line and exit status 2, a closed
    pipe (``| head``) is not an error. Every file is closed before main returns.
    ``python -m sgjax.cli`` exits as usual, so that profilers and debuggers that run it as
    a module get control back. (``threading._shutdown`` and ``atexit._run_exitfuncs`` are
    what CPython's own exit calls; without them this exits as usual.)"""
    code = main()
    shutdown = getattr(threading, "_shutdown", None)
    exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if shutdown is None or exitfuncs is None:
        sys.exit(code)
    shutdown()
    exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            pass
        except (OSError, ValueError) as e:
            with contextlib.suppress(OSError, ValueError):
                print(f"sgjax: error: writing the output: {e}", file=sys.stderr, flush=True)
            code = code or 2
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
