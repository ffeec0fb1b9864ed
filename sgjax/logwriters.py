"""Metric writers: where a run's records (``{"event": "log" | "epoch" | "end", ...}``) go.

Each writer is a :class:`Writer`, a record of two functions, opened by a function of the
run directory; ``WRITERS`` maps names to those openers (big_vision's lookup by name, as
:mod:`sgjax.registry` does), and :func:`open_writers` opens several as one Writer::

    w = open_writers(["jsonl", "tensorboard"], run_dir)
    w.write({"event": "log", "step": 100, "loss": 2.31, "lr": 0.024, "words_total": 6400})
    w.close()

- ``jsonl``: one JSON object a line appended to ``RUN/metrics.jsonl`` (what
  ``sgjax report`` reads), each record with ``"time"`` (Unix wall-clock seconds) added
  if it has none.
- ``tensorboard``: tensorboardX's event files in ``RUN/tensorboard/`` (``tensorboard
  --logdir RUN/tensorboard``); every numeric field is a scalar tagged ``EVENT/FIELD``
  (nested dicts flattened: ``end/phases_s/train``) at global step ``"step"``, else
  ``"words_total"``. Needs ``pip install 'sgjax[tensorboard]'``.

A writer defined elsewhere is named by its dotted path (``package.module.OPENER``).
"""

from __future__ import annotations

import json
import numbers
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sgjax import registry

PathLike = str | os.PathLike[str]
TENSORBOARD_HINT = "pip install 'sgjax[tensorboard]'"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
#: Fields that are no scalar of the tensorboard writer: the record's kind and its wall time.
NOT_SCALARS = ("event", "time")


class Writer(NamedTuple):
    """An open sink of metric records: ``write(record)`` and ``close()`` (then no more
    writes). A record is a JSON-like dict with an ``"event"`` key."""

    write: Callable[[dict], None]
    close: Callable[[], None]


#: An opener: the run directory -> an open Writer.
Opener = Callable[[Path], Writer]


def stamped(record: Mapping[str, Any], now: float | None = None) -> dict:
    """A copy of ``record`` with ``"time"`` (Unix seconds, default now) if it has none."""
    if "time" in record:
        return dict(record)
    return {**record, "time": time.time() if now is None else now}


def _jsonable(x: Any) -> Any:
    """numpy and JAX scalars as Python numbers, so records from a device need no casting."""
    if hasattr(x, "item") and getattr(x, "ndim", None) == 0:
        return x.item()
    raise TypeError(f"a metric of type {type(x).__name__} is not JSON serialisable")


def append_jsonl(path: PathLike, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line to ``path``; OSError names the file (a full disk)."""
    line = json.dumps(record, default=_jsonable) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None


def jsonl_writer(run_dir: Path) -> Writer:
    """Records appended to ``run_dir/metrics.jsonl``, each with its ``"time"``. The file is
    opened for each record, so every complete line is on disk for a reader of a live run."""
    path = Path(run_dir) / METRICS_FILE
    return Writer(write=lambda record: append_jsonl(path, stamped(record)), close=lambda: None)


def keep_records_to(run_dir: PathLike, step: int) -> None:
    """Drop from ``run_dir/metrics.jsonl`` the records of steps after ``step``: a resume
    from a checkpoint at ``step`` makes them again (the records of a crashed run's steps
    after its last checkpoint; with checkpoints every few minutes, whole epochs). Lines
    without a step are kept; the file is replaced atomically."""
    from sgjax.checkpoint import write_text_atomic

    path = Path(run_dir) / METRICS_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return

    def keep(line: str) -> bool:
        try:
            s = json.loads(line).get("step")
        except (ValueError, AttributeError):
            return True
        return not is_number(s) or s <= step

    kept = [line for line in lines if keep(line)]
    if len(kept) < len(lines):
        write_text_atomic(path, "".join(kept))


def is_number(x: Any) -> bool:
    """A real number that is not a bool (numpy scalars included)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def flat_scalars(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(tag, value)`` of each numeric field, nested dicts joined by ``/``: ``{"phases_s":
    {"train": 3.0}}`` gives ``("phases_s/train", 3.0)``. None, strings, bools and lists
    are skipped."""
    for key, value in record.items():
        if isinstance(value, Mapping):
            yield from flat_scalars(value, f"{prefix}{key}/")
        elif is_number(value):
            yield f"{prefix}{key}", float(value)


def global_step(record: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """The field giving a record's step and its value: ``"step"``, else ``"words_total"``
    (the epoch and end records), else ``(None, None)``."""
    for key in ("step", "words_total"):
        if is_number(record.get(key)):
            return key, int(record[key])
    return None, None


def tensorboard_scalars(record: Mapping[str, Any]) -> tuple[list[tuple[str, float]], int | None]:
    """What the tensorboard writer writes of a record: ``([(EVENT/FIELD, value)], step)``;
    the step's own field and ``"time"`` (the events' wall time) are not scalars."""
    event = str(record.get("event", "metrics"))
    key, step = global_step(record)
    fields = {k: v for k, v in record.items() if k not in NOT_SCALARS and k != key}
    return [(f"{event}/{tag}", v) for tag, v in flat_scalars(fields)], step


def tensorboard_writer(run_dir: Path) -> Writer:
    """Scalars in tensorboardX event files under ``run_dir/tensorboard`` (see the module
    docstring). ImportError names the extra if tensorboardX is missing."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError(
            f"the tensorboard writer needs tensorboardX, which is not installed: {TENSORBOARD_HINT}"
        ) from e
    sw = SummaryWriter(logdir=str(Path(run_dir) / TENSORBOARD_DIR), flush_secs=10)

    def write(record: dict) -> None:
        scalars, step = tensorboard_scalars(record)
        walltime = float(record["time"]) if is_number(record.get("time")) else None
        for tag, value in scalars:
            sw.add_scalar(tag, value, global_step=step, walltime=walltime)

    return Writer(write=write, close=sw.close)


WRITERS: dict[str, Opener] = {"jsonl": jsonl_writer, "tensorboard": tensorboard_writer}


def find_writer(kind: str) -> Opener:
    """The opener registered as ``kind`` or at the dotted path ``kind``; ValueError lists
    the choices."""
    return registry.find(WRITERS, kind, Callable, "metrics writer")


def _close_all(writers: Sequence[Writer]) -> None:
    """Close each writer, all of them even if one fails; then raise the first failure."""
    errors = []
    for w in writers:
        try:
            w.close()
        except Exception as e:  # noqa: BLE001 - re-raised below, after the others closed
            errors.append(e)
    if errors:
        raise errors[0]


def open_writers(kinds: Sequence[str], run_dir: PathLike) -> Writer:
    """One Writer fanning each record out to the writers ``kinds`` (in order, each once) of
    ``run_dir``; every writer sees the same ``"time"``. An unknown kind raises ValueError
    before any writer is opened; if one fails to open (ImportError: a missing dependency),
    those already opened are closed."""
    openers = [find_writer(k) for k in dict.fromkeys(kinds)]
    opened: list[Writer] = []
    try:
        for opener in openers:
            opened.append(opener(Path(run_dir)))
    except BaseException:
        _close_all(opened)
        raise
    writers = tuple(opened)

    def write(record: dict) -> None:
        record = stamped(record)
        for w in writers:
            w.write(record)

    return Writer(write=write, close=lambda: _close_all(writers))
