"""Starting and continuing runs: more epochs for a run, pretrained input vectors.

**More epochs** (``sgjax train --resume --out RUN --set train.epochs=N``). The learning
rate must not jump: a run whose schedule decayed to ``optimizer.end_lr`` and then restarted
at ``optimizer.learning_rate`` would undo the fine adjustments of its last epochs. The rule
is to *stretch what is left of the schedule over the longer run*: from step ``t0`` (the
checkpoint's) the schedule that had ``T`` steps in all is read at
``t0 + (t - t0) (T - t0) / (T' - t0)`` for the new total ``T'``. The rate is continuous at
``t0`` and ends where it would have ended (``end_lr`` at ``T'``). An interrupted run that
gets more epochs thus decays more slowly over them. A finished run (``t0 = T``) keeps its
final rate, which for the decaying schedules is ``end_lr``: a few more epochs at that rate
polish but hardly move the vectors. To train further at a high rate, start a new run from
the vectors (``model.init_from``), with a schedule of its own. Each continuation is recorded in
``train.extended`` as ``[t0, epochs before]``, so the run's config.yaml reproduces its
schedule exactly.

**Pretrained vectors** (``model.init_from: vectors.bin``): the rows of W (the input vectors
v_w) of the words the file holds start from the file's vectors; every other row, and W_out,
start as in a fresh run (the C tool's initialisation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np
import optax


def stretch(schedule: optax.Schedule, at: int, total: int, new_total: int) -> optax.Schedule:
    """``schedule`` (of ``total`` steps) continued from step ``at`` over ``new_total``."""
    if not at <= total < new_total:
        raise ValueError(
            f"a continuation needs at <= total < new_total, got {at}, {total}, {new_total}"
        )
    scale = (total - at) / (new_total - at)

    def stretched(step):
        step = jnp.asarray(step, jnp.float32)
        return schedule(jnp.where(step < at, step, at + (step - at) * scale))

    return stretched


def continued_schedule(
    build: Callable[[int], optax.Schedule],
    steps_per_epoch: int,
    epochs: int,
    extended: Sequence[Sequence[int]],
) -> optax.Schedule:
    """The schedule of a run of ``epochs`` epochs continued as ``extended`` says
    (``[[t0, epochs before], ...]`` in order); ``build(total_steps)`` makes the base one."""
    totals = [int(e) * steps_per_epoch for _, e in extended] + [epochs * steps_per_epoch]
    schedule = build(max(1, totals[0]))
    for (at, _), total, new_total in zip(extended, totals, totals[1:], strict=False):
        # a run may take a few more steps than the count of seed 0's first epoch (subsampling
        # varies with the seed and epoch); its schedule held the end value over them
        schedule = stretch(schedule, min(int(at), total), total, new_total)
    return schedule


def init_rows(W: np.ndarray, words: Sequence[str], vectors) -> tuple[np.ndarray, int]:
    """``W`` with the rows of the words that ``vectors`` (a WordVectors) holds replaced by
    their vectors; returns the new table and how many rows were replaced."""
    if vectors.dim != W.shape[1]:
        raise ValueError(
            f"model.init_from: the vectors have dimension {vectors.dim}, model.dim is {W.shape[1]}"
        )
    rows = [(i, vectors.index[w]) for i, w in enumerate(words) if w in vectors.index]
    out = np.array(W, copy=True)
    if rows:
        ours, theirs = (np.asarray(x) for x in zip(*rows, strict=True))
        out[ours] = vectors.matrix[theirs]
    return out, len(rows)
