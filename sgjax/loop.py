"""The host's loop around the train step (:func:`sgjax.train.train_step`): host batches
grouped into calls (:func:`group_batches`), and :func:`fit`, which runs the calls epoch by
epoch with checkpoints, logging and progress as :class:`Hooks`.

:func:`fit` fails loudly on a non-finite loss (:class:`sgjax.train.NonFiniteLossError`, the
last good checkpoint is kept) and on an unexpected recompilation of the step
(:class:`sgjax.train.RecompilationError`: a new batch shape or dtype would silently cost a
compile per call). SIGINT (Ctrl-C) finishes the running call, writes a checkpoint and
raises :class:`sgjax.signals.Interrupted`; :func:`fit` with a restored state continues
exactly where the run stopped, giving the same final vectors as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import jax
import numpy as np

from sgjax.signals import Interrupted, StopFlag
from sgjax.train import NonFiniteLossError, RecompilationError, StepSpec, TrainState, train_step_jit

__all__ = ["Hooks", "fit", "group_batches"]


def group_batches(batches: Iterable[dict], steps_per_call: int) -> Iterator[dict]:
    """Stack consecutive host batches into groups of ``steps_per_call`` with an ``active``
    flag; the last group is padded with inactive copies (never dropped)."""
    group: list[dict] = []
    for b in batches:
        group.append(b)
        if len(group) == steps_per_call:
            yield _stack(group, steps_per_call)
            group = []
    if group:
        yield _stack(group, steps_per_call)


def _aligned(shape: tuple, dtype: Any, align: int = 64) -> np.ndarray:
    """An uninitialised array whose data starts at a multiple of ``align`` bytes: on the CPU
    backend JAX then uses its memory as the device buffer (zero-copy) instead of copying it
    (a CBOW call's 13.5 MB batch: 4.4 ms -> 0.04 ms, BENCHMARKS.md)."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _stack(group: list[dict], S: int) -> dict:
    n = len(group)
    keys = list(group[0])  # a host batch's fields, or a token chunk's (sgjax.device_examples)
    out = {}
    for k in keys:
        parts = [np.asarray(g[k]) for g in group] + [np.asarray(group[-1][k])] * (S - n)
        out[k] = np.stack(parts, out=_aligned((S, *parts[0].shape), parts[0].dtype))
    out["active"] = np.arange(S) < n
    return out


#: the clock of checkpoint_every_seconds (a module attribute: tests move it by hand)
_now = time.monotonic


@dataclasses.dataclass
class Hooks:
    """Callbacks of :func:`fit`; each gets the state (on the device) and a metrics dict."""

    on_log: Callable[[TrainState, dict], None] = lambda state, m: None
    on_epoch_end: Callable[[TrainState, dict], None] = lambda state, m: None
    checkpoint: Callable[[TrainState, str], Any] = lambda state, why: None  # returns a path
    progress: Callable[[int, dict], None] = lambda words, m: None  # words since last call


def fit(
    state: TrainState,
    epoch_batches: Callable[[int], Iterable[dict]],
    tables: dict,
    spec: StepSpec,
    *,
    epochs: int,
    steps_per_call: int,
    checkpoint_every_steps: int = 0,
    checkpoint_every_seconds: float = 0.0,
    log_every_steps: int = 0,
    hooks: Hooks | None = None,
    step_fn: Callable | None = None,
) -> TrainState:
    """Train from ``state`` to the end of epoch ``epochs``.

    ``epoch_batches(epoch)`` yields the host batches of an epoch (deterministic in the
    epoch); a state restored mid-epoch skips the batches it already applied. ``step_fn``
    (default :data:`train_step_jit`) runs one call, e.g. :meth:`sgjax.sharding.Plan.step`.

    Checkpoints (``hooks.checkpoint``): ``checkpoint_every_steps`` steps after the previous
    one; at the first call boundary or epoch end ``checkpoint_every_seconds`` after it (or
    the start); at the last epoch's end always; with ``checkpoint_every_seconds`` 0, at every
    epoch's end. Never at an epoch's last batch (a resume from there would redo the epoch's
    end): its end decides, and a signal in that call checkpoints the end. (A checkpoint of a
    20 MB state costs ~0.1 s of CPU taken from the steps it runs beside; each epoch's cost 5 %
    of a realtext-v1 CBOW run: BENCHMARKS.md.)
    """
    hooks = hooks or Hooks()
    step_fn = train_step_jit if step_fn is None else step_fn
    compiled_sizes: set[int] = set()
    every_s = checkpoint_every_seconds
    last_ckpt_step, last_ckpt_time = int(state.step), _now()  # steps and time since one

    def due(step: int) -> str | None:
        """Why a checkpoint is due at ``step``: "steps", "time", or None."""
        if checkpoint_every_steps and step - last_ckpt_step >= checkpoint_every_steps:
            return "steps"
        return "time" if every_s and _now() - last_ckpt_time >= every_s else None

    with StopFlag() as sigint:
        while int(state.epoch) < epochs:
            epoch = int(state.epoch)
            skip = int(state.batch_in_epoch)
            t0, words0 = time.perf_counter(), int(state.words)
            loss_sum = terms_sum = 0.0
            log_loss = log_terms = 0.0
            last_log_step = int(state.step)
            batches = iter(epoch_batches(epoch))
            for _ in range(skip):
                next(batches)
            lr = float("nan")
            first_call: tuple[float, int] | None = None  # (seconds, words) of the first call
            groups = group_batches(batches, steps_per_call)
            group = next(groups, None)
            while group is not None:
                words_before = int(state.words)
                state, m = step_fn(state, group, tables, spec)
                # the host builds the next call's batches while the device runs this one
                current, group = group, next(groups, None)
                size = step_fn._cache_size()
                if compiled_sizes and size > max(compiled_sizes):
                    raise RecompilationError(
                        f"train_step compiled again at step {int(state.step)} (now {size} "
                        "programs): a batch changed shape or dtype; "
                        + ", ".join(f"{k}{v.shape}:{v.dtype}" for k, v in current.items())
                    )
                compiled_sizes.add(size)
                m = jax.device_get(m)
                if first_call is None:  # the run's first call includes the compilation
                    first_call = (time.perf_counter() - t0, int(state.words) - words0)
                step = int(state.step)
                if not m["finite"]:
                    kept = hooks.checkpoint(None, "nonfinite")
                    kept = f"the last good checkpoint is kept ({kept})" if kept else ""
                    raise NonFiniteLossError(
                        f"non-finite loss or parameters in epoch {epoch + 1} at or before "
                        f"step {step}; training stopped, {kept or 'no checkpoint was written yet'}"
                        ". Try a lower optimizer.learning_rate."
                    )
                loss_sum += float(m["loss"])
                terms_sum += float(m["terms"])
                log_loss += float(m["loss"])
                log_terms += float(m["terms"])
                lr = float(m["lr"])
                hooks.progress(
                    int(state.words) - words_before,
                    {"loss": float(m["loss"]) / max(float(m["terms"]), 1.0), "lr": lr},
                )
                if log_every_steps and step - last_log_step >= log_every_steps:
                    hooks.on_log(
                        state,
                        {
                            "epoch": epoch + 1,
                            "step": step,
                            "lr": lr,
                            "loss": log_loss / max(log_terms, 1.0),
                        },
                    )
                    log_loss = log_terms = 0.0
                    last_log_step = step
                if group is None:  # the epoch's last call: its end checkpoints (below)
                    break
                why = due(step)
                if why:
                    hooks.checkpoint(state, why)
                    last_ckpt_step, last_ckpt_time = step, _now()
                if sigint.raised:
                    path = hooks.checkpoint(state, "interrupt")
                    _interrupted(sigint.raised, step, path)
            dt = time.perf_counter() - t0
            words = int(state.words) - words0
            state = state.next_epoch()
            metrics = {
                "epoch": epoch + 1,
                "step": int(state.step),
                "loss": loss_sum / max(terms_sum, 1.0),
                "lr": lr,
                "words": words,
                "epoch_time_s": dt,
                "words_per_s": words / dt if dt > 0 else math.nan,
                # the epoch's first call, from the epoch's start (its first batches built,
                # in the run's first epoch the step compiled) until its metrics arrived
                "first_call_s": first_call[0] if first_call else 0.0,
                "first_call_words": first_call[1] if first_call else 0,
            }
            # an epoch's end: a checkpoint if one is due (by steps, by time, the run's last
            # epoch, or every epoch's end with checkpoint_every_seconds 0) or if a signal
            # came in its last call; never one at its last batch, which a resume would
            # take as an epoch with nothing left to do
            stop = sigint.raised
            step = int(state.step)
            if stop or not every_s or int(state.epoch) >= epochs or due(step):
                # first: a failing hook loses nothing
                path = hooks.checkpoint(state, "interrupt" if stop else "epoch")
                last_ckpt_step, last_ckpt_time = step, _now()
            hooks.on_epoch_end(state, metrics)
            if stop:
                _interrupted(stop, step, path)
    return state


def _interrupted(signum: int, step: int, path: Any) -> NoReturn:
    why = signal.Signals(signum).name
    raise Interrupted(f"{why} at step {step}; checkpoint: {path}", signum)
