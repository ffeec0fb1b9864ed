"""What a run reports while it trains: callbacks, the in-memory history and the writers.

Every record a run makes (``{"event": "log" | "epoch" | "end", ...}``, the lines of
``metrics.jsonl``) goes through one :class:`Recorder`, which stamps it with the wall-clock
``time``, appends it to the history (``Result.history``, kept whether or not anything is
written), hands it to the metric writers (:mod:`sgjax.logwriters`: JSONL, TensorBoard) and
calls the script's callbacks::

    losses = []
    cb = Callback(on_log=lambda state, rec: losses.append((rec["step"], rec["loss"])))
    train(cfg, callbacks=[cb])

A callback is a :class:`Callback` (or any object with some of its three attribute names);
each hook gets the :class:`~sgjax.train.TrainState` (on the device) and the record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sgjax.logwriters import stamped

Hook = Callable[[Any, dict], None]


class Callback(NamedTuple):
    """Hooks of :func:`sgjax.experiment.train`, each ``(state, record) -> None``: every
    ``train.log_every_steps`` steps, at each epoch's end (with the evaluation scores of the
    last epoch, or of each with ``eval.every_epoch``), and once at the end of training (the
    scores and the timing phases)."""

    on_log: Hook | None = None
    on_epoch_end: Hook | None = None
    on_train_end: Hook | None = None


#: The record's event -> the hook it calls.
HOOKS = {"log": "on_log", "epoch": "on_epoch_end", "end": "on_train_end"}


class Recorder:
    """Stamps, keeps, writes and announces each record (module docstring)."""

    def __init__(self, writer: Any = None, callbacks: Sequence[Any] = ()) -> None:
        self.history: list[dict] = []
        self.writer = writer  # .write(record) and .close(), or None
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not any(callable(getattr(cb, h, None)) for h in HOOKS.values()):
                raise TypeError(f"callback {cb!r} has none of {', '.join(HOOKS.values())}")

    def __call__(self, event: str, state: Any, record: dict) -> dict:
        rec = stamped({"event": event, **record})
        self.history.append(rec)
        if self.writer is not None:
            self.writer.write(rec)
        for cb in self.callbacks:
            hook = getattr(cb, HOOKS[event], None)
            if hook is not None:
                hook(state, rec)
        return rec

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
