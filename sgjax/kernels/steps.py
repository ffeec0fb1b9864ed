"""The train step by a fused kernel (:mod:`sgjax.kernels`): what :func:`sgjax.train.train_step`
runs where ``StepSpec.kernel >= 0``. A plain SGD step is ``c g`` for each table, so the
optimizer runs on a probe gradient (one row of ones at an out-of-range index, which touches
nothing) to advance its state and give the factor ``c``; the kernel makes the update."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgjax import kernels
from sgjax.sparse import RowGrads
from sgjax.train import StepSpec, TrainState, _example, _stepped

__all__ = ["fused_call", "fused_step"]


def _probe(params: dict) -> dict:
    """A gradient of one row of ones per table at an out-of-range index (touches nothing)."""
    return {
        k: RowGrads(jnp.full((1,), p.shape[0], jnp.int32), jnp.ones((1, p.shape[1]), p.dtype))
        for k, p in params.items()
    }


def _factors(updates: dict) -> jax.Array:
    """The probe's update ``c`` of W and of W_out (2,): each table's factor of its gradient."""
    return jnp.stack([updates["W"].value[0, 0], updates["W_out"].value[0, 0]])


def _terms_of(mode: int, mask: jax.Array) -> jax.Array:
    """:func:`sgjax.train._terms`' count from the context mask (..., B, C) alone, for the
    kernel's input sides: skip-gram (mode 0) a pair per real context, CBOW one per example
    with one; without the hidden vectors' float sums."""
    mask = mask.astype(bool)
    return (mask.sum((-2, -1)) if mode == 0 else mask.any(-1).sum(-1)).astype(jnp.float32)


def fused_step(state: TrainState, batch: dict, tables: dict, spec: StepSpec):
    """One step by the fused kernel ``spec.fused`` (:data:`sgjax.kernels.FUSED`), as the
    scan of :func:`sgjax.train.train_step` takes it (the Pallas kernel's form)."""
    params = state.params
    ex = _example(state, batch, tables, spec)
    rows, t, used, offset = kernels.ROWS[spec.model.output](ex, tables)
    probe = _probe(params)
    updates, opt_state = spec.optimizer.update(probe, state.opt_state, params)
    lr = spec.optimizer.learning_rate(state.step)  # row damping's (as _grads takes it)
    factors = _factors(updates)
    scales = jnp.concatenate([factors, lr.astype(factors.dtype)[None]])
    terms = _terms_of(spec.kernel, batch["mask"])
    W, W_out, E = kernels.FUSED[spec.fused](
        params["W"], params["W_out"], ex, rows, t, used, offset, scales, spec.kernel,
        spec.row_damping, rare_from=spec.rare_from, rare_scale=spec.rare_scale,
    )  # fmt: skip
    return _stepped(state, batch, {**params, "W": W, "W_out": W_out}, opt_state, E, terms)


def fused_call(state: TrainState, batch: dict, tables: dict, spec: StepSpec):
    """All S steps of a call (leading axis of every ``batch`` leaf) by one custom call of a
    fused kernel (:data:`sgjax.kernels.FUSED_CALL`): the same steps as the scan of
    :func:`fused_step`, bit for bit, without XLA's per-step ops (the scan's loop, slicing,
    the rows' assembly, a wake-up of the thread pool per step; measured in BENCHMARKS.md).
    The optimizer's probe (:func:`fused_step`) is scanned over the active steps first, for
    each step's factors; the examples' rows are assembled for all steps at once."""
    params, active = state.params, batch["active"]
    ex = jax.vmap(lambda b: _example(state, b, tables, spec))(batch)
    rows, t, used, offset = jax.vmap(lambda e: kernels.ROWS[spec.model.output](e, tables))(ex)
    if spec.model.output in kernels.DERIVED:  # the kernel makes them (XLA drops their ops)
        t = used = None
    probe = _probe(params)

    def advance(opt_state, on):
        updates, new = spec.optimizer.update(probe, opt_state, params)
        new = jax.tree.map(lambda n, o: jnp.where(on, n, o), new, opt_state)
        return new, _factors(updates)

    opt_state, factors = jax.lax.scan(advance, state.opt_state, active)
    # each step's number: the active steps before it (as the scan counts them)
    steps = state.step + (jnp.cumsum(active) - active).astype(state.step.dtype)
    lr = jax.vmap(spec.optimizer.learning_rate)(steps)  # row damping's, as _grads takes it
    scales = jnp.concatenate([factors, lr.astype(factors.dtype)[:, None]], axis=1)
    terms = _terms_of(spec.kernel, batch["mask"])
    W, W_out, E = kernels.FUSED_CALL[spec.fused](
        params["W"], params["W_out"], ex, rows, t, used, offset, scales, active, spec.kernel,
        spec.row_damping, rare_from=spec.rare_from, rare_scale=spec.rare_scale,
    )  # fmt: skip
    n = active.sum().astype(state.step.dtype)
    new = state.replace(
        params={**params, "W": W, "W_out": W_out},
        opt_state=opt_state,
        step=state.step + n,
        batch_in_epoch=state.batch_in_epoch + n.astype(state.batch_in_epoch.dtype),
        words=state.words + jnp.where(active, batch["words"], 0).astype(jnp.int32).sum(),
    )
    return new, (E, jnp.where(active, terms, 0.0))
