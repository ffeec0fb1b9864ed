"""The training state and the jitted train step (the host loop around it: :mod:`sgjax.loop`).

``train_step(state, batch, tables, spec) -> (state, metrics)`` is a module-level pure
function. ``batch`` holds ``S = train.steps_per_call`` host batches stacked on a leading
axis; one compiled call runs them with ``jax.lax.scan``, so the host dispatches once per S
steps. The output layer's fields of the examples are added on the device
(:func:`sgjax.model.complete`): random ones (negatives, drawn with ``fold_in(state.key,
step)``, so they do not depend on S) for all S steps in one batched draw before the scan,
the others (Huffman paths) inside each step. The gradient is the paper's
explicit rule (:func:`sgjax.rules.value_and_rule`, row-sparse) or ``jax.grad`` of the loss
(dense), as ``train.gradients`` says, and the optax optimizer (:mod:`sgjax.optim`) applies
it. The state is donated, so the tables are updated in place. For large batches the row
updates can be damped to sequential SGD's displacement (``train.row_damping``,
:func:`sgjax.rules.damp_rows`) or capped (``train.row_update_cap``,
:func:`cap_row_updates`) before the optimizer sees them.

The step's metrics say whether the loss and tables stayed finite; :func:`sgjax.loop.fit`
raises :class:`NonFiniteLossError` then, and :class:`RecompilationError` on an unexpected
recompilation of the step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from sgjax import lowp
from sgjax.losses import batch_loss
from sgjax.model import ModelSpec, complete, window_bucket_slices
from sgjax.optim import apply_updates
from sgjax.params import Params, init_params
from sgjax.rules import damp_rows, scale_rare_rows, value_and_rule
from sgjax.sparse import RowGrads, row_totals


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the checkpoint kept."""


class RecompilationError(RuntimeError):
    """The train step compiled more than once (the batch's shape or dtype changed)."""


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything that evolves during training, as one pytree (checkpointed whole): a frozen
    dataclass registered with JAX (every field a leaf subtree; flax.struct's did the same,
    and importing flax took 0.12 s of every run).

    ``step`` counts optimizer steps (it drives the schedule); ``epoch`` and
    ``batch_in_epoch`` say where in the data the run is, so a resumed run regenerates the
    same batches; ``words`` counts corpus words (before subsampling) of the current epoch;
    ``key`` is the raw PRNG key for on-device sampling (fixed for the run: step t's
    negatives are drawn with ``fold_in(key, t)``).
    """

    params: Params
    opt_state: Any
    step: jax.Array
    epoch: jax.Array
    batch_in_epoch: jax.Array
    words: jax.Array
    key: jax.Array

    def replace(self, **changes: Any) -> TrainState:
        """A copy with ``changes`` (fields by name), as flax's struct dataclasses have."""
        return dataclasses.replace(self, **changes)

    def next_epoch(self) -> TrainState:
        """The state at the start of the next epoch (what :func:`sgjax.loop.fit` does at an epoch's
        end; a custom loop calls it after the last batch of an epoch)."""
        return self.replace(epoch=self.epoch + 1, batch_in_epoch=jnp.int32(0), words=jnp.int32(0))


jax.tree_util.register_dataclass(
    TrainState, data_fields=[f.name for f in dataclasses.fields(TrainState)], meta_fields=[]
)


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """The static (compile-time) description of a step: the model and the training flags.
    Hashable: it is a jit static arg."""

    model: ModelSpec  # input side x output layer and their options
    optimizer: Any  # sgjax.optim.SparseOptimizer (init, update, learning_rate)
    gradients: str = "explicit"  # explicit (the rules) | autodiff (jax.grad of the loss)
    batch_parts: int = 1  # explicit rule computed on this many independent slices of a batch
    row_update_cap: int = 0  # > 0: a row moves by at most this many entries' worth a step
    # scale each row's summed update to sequential SGD's displacement (sgjax.rules.damp_rows)
    row_damping: bool = False
    row_damping_inputs: bool = True  # with row_damping: E's rows too (False: E' only)
    # > 0: batches come grouped by effective window (epoch_batches(window_buckets=True));
    # the explicit rule runs on each group's 2b real slots (window_bucket_slices)
    window_buckets: int = 0
    # W's rows from rare_from on (words seen < optimizer.table_scales_min_count times)
    # have their gradients times rare_scale (sgjax.rules.scale_rare_rows)
    rare_from: int = 0
    rare_scale: float = 1.0
    # >= 0: the step is a fused kernel's (sgjax.kernels, this mode); -1: XLA's
    kernel: int = -1
    fused: str = "cpu"  # which fused kernel (sgjax.kernels.FUSED): cpu | pallas
    # > 0: calls take token chunks, windowed on the device with this maximum window
    # (sgjax.device_examples.chunk_step)
    chunk_window: int = 0


def init_state(
    key: jax.Array, vocab_size: int, dim: int, output: str, optimizer: Any, dtype: Any = jnp.float32
) -> TrainState:
    """A fresh state: reference-initialised params (from ``key``) and optimizer state."""
    k_params, k_train = jax.random.split(key)
    params = init_params(k_params, vocab_size, dim, output, dtype)

    def zero():  # distinct buffers: the state is donated, and a buffer is donated once
        return jnp.zeros((), jnp.int32)

    return TrainState(
        params=params,
        opt_state=optimizer.init(lowp.compute_view(params)),  # float32 (sgjax.lowp)
        step=zero(),
        epoch=zero(),
        batch_in_epoch=zero(),
        words=zero(),
        key=k_train,
    )


def _grads(params: Params, ex: dict, tables: dict, spec: StepSpec, lr: jax.Array | None = None):
    """E and the gradient pytree of a batch; with ``spec.row_damping`` the row updates are
    damped (:func:`sgjax.rules.damp_rows`) for the learning rate ``lr`` of this step; W's
    rare rows scaled by ``spec.rare_scale`` (:func:`sgjax.rules.scale_rare_rows`)."""
    if spec.gradients != "explicit":
        E, grads = jax.value_and_grad(batch_loss)(params, ex, spec.model, tables)
    elif spec.row_damping:
        args = (spec.model, tables, True, spec.row_damping_inputs)
        E, grads, curv = _rule_parts(params, ex, spec, args)
        rows = {k: v.shape[0] for k, v in params.items()}
        grads = damp_rows(grads, curv, rows, lr)
    else:
        E, grads = _rule_parts(params, ex, spec, (spec.model, tables))
    if spec.rare_scale != 1.0:
        grads = scale_rare_rows(grads, spec.rare_from, spec.rare_scale)
    return E, grads


def _rule_parts(params: Params, ex: dict, spec: StepSpec, args: tuple):
    """The explicit rule on the whole batch, or on its parts (window groups, batch_parts)
    with their row entries side by side."""
    if spec.window_buckets:  # each window group on its own slots: no padded slot computed
        pieces = window_bucket_slices(ex, spec.window_buckets, spec.model)
    elif spec.batch_parts > 1:
        # the rule of each part of the batch as its own computation (independent: XLA's
        # CPU runtime runs them concurrently on its threads)
        size = ex["center"].shape[0] // spec.batch_parts
        pieces = [
            jax.tree.map(lambda x, i=i: x[i * size : (i + 1) * size], ex)
            for i in range(spec.batch_parts)
        ]
    else:
        return value_and_rule(params, ex, *args)
    parts = [value_and_rule(params, piece, *args) for piece in pieces]  # rows side by side
    E = sum(p[0] for p in parts)
    grads = {k: _join([p[1][k] for p in parts]) for k in params}
    if len(parts[0]) == 2:
        return E, grads
    return E, grads, {k: jnp.concatenate([p[2][k] for p in parts]) for k in params}


def cap_row_updates(grads: dict, params: Params, cap: int) -> dict:
    """Limit how far one step moves a row: a row that more than ``cap`` of the batch's row
    entries update (the rule's entries: one per example and output row; a row the pairs of
    one centre share counts once) gets their sum scaled by ``cap / n``, n their number, so
    it moves by at most ``cap`` entries' worth; rows with n <= cap, and dense leaves (full
    softmax), are untouched. ``cap = 0`` returns ``grads`` as they are.

    Summing is what a minibatch of the paper's per-example updates does, but where
    word2vec.c applies a frequent word's n updates one after another, each from the
    parameters the previous one left, a batch applies n updates computed at the same point
    at once. n grows with the batch (the most frequent word, above all as a negative, is in
    hundreds of a 4,096-centre batch's entries) and the summed step overshoots; the cap
    touches only those few frequent rows (BENCHMARKS.md, "Large batches")."""
    if cap <= 0:
        return grads
    out = {}
    for k, g in grads.items():
        if not isinstance(g, RowGrads):
            out[k] = g
            continue
        n = row_totals(g.index, jnp.ones(g.index.shape, g.value.dtype), params[k].shape[0])
        out[k] = RowGrads(g.index, g.value * jnp.minimum(1.0, cap / n)[:, None])
    return out


def _join(grads: list) -> Any:
    """The sum of the parts' gradients of one table: rows concatenated, dense ones added."""
    if isinstance(grads[0], RowGrads):
        return RowGrads(
            jnp.concatenate([g.index for g in grads]), jnp.concatenate([g.value for g in grads])
        )
    return sum(grads[1:], grads[0])


_EXAMPLE = ("center", "context", "mask")


def _draw_fields(state: TrainState, batch: dict, tables: dict, spec: StepSpec) -> dict:
    """The random fields (negatives) of all S steps of a call, drawn at once before the
    scan: step number t (``state.step`` counts them) draws with ``fold_in(state.key, t)``, so
    the draws depend on the seed and the step only, not on ``train.steps_per_call``. (One
    batched draw per call: XLA's CPU backend runs threefry as a loop of small kernels, a
    per-step cost that a small batch would feel.) Inactive steps draw unused numbers.
    Threefry in JAX's original (not partitionable) layout: on a CPU, 3.2 ms instead of 9.6
    for a CBOW call's 1.28M draws, 7 % of its step (BENCHMARKS.md); the same draws on any
    mesh (XLA cannot split their generation across devices, so each computes them all)."""
    S = batch["active"].shape[0]
    steps = state.step + jnp.arange(S, dtype=state.step.dtype)
    example = {k: batch[k] for k in _EXAMPLE}
    with jax.threefry_partitionable(False):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(state.key, steps)
        drawn = jax.vmap(lambda k, b: complete(k, b, tables, spec.model))(keys, example)
    return {k: v for k, v in drawn.items() if k not in example}


def _example(state: TrainState, batch: dict, tables: dict, spec: StepSpec) -> dict:
    """A step's examples with the output layer's fields: drawn for the whole call by
    :func:`train_step` (negatives), or completed here (Huffman paths; nothing for the full
    softmax)."""
    ex = {k: batch[k] for k in _EXAMPLE}
    if spec.model.layer.draws:
        return {**ex, **{k: batch[k] for k in spec.model.layer.scopes(spec.model)}}
    return complete(state.key, ex, tables, spec.model)


def _stepped(state: TrainState, batch: dict, params: Params, opt_state: Any, E, terms):
    """The state after a step, and its metrics ``(E, terms)``: ``terms`` counts the
    (hidden, output word) pairs, the output predictions made."""
    new = state.replace(
        params=params,
        opt_state=opt_state,
        step=state.step + 1,
        batch_in_epoch=state.batch_in_epoch + 1,
        words=state.words + batch["words"].astype(jnp.int32),
    )
    return new, (E.astype(jnp.float32), terms.astype(jnp.float32))


def _terms(W: jax.Array, ex: dict, model: ModelSpec) -> jax.Array:
    side = model.side  # (only the masks are used: XLA drops the hidden vectors' gather)
    _, hmask = side.hidden(W, ex, model)
    return (hmask[:, :, None] & side.targets(ex)[1][:, None, :]).sum()


def _one_step(state: TrainState, batch: dict, tables: dict, spec: StepSpec):
    if spec.kernel >= 0:
        from sgjax.kernels.steps import fused_step

        return fused_step(state, batch, tables, spec)
    ex = _example(state, batch, tables, spec)
    lr = spec.optimizer.learning_rate(state.step) if spec.row_damping else None
    low = lowp.is_low(state.params)  # bfloat16 tables: float32 arithmetic (sgjax.lowp)
    p32 = lowp.compute_view(state.params) if low else state.params
    E, grads = _grads(p32, ex, tables, spec, lr)
    grads = cap_row_updates(grads, p32, spec.row_update_cap)
    updates, opt_state = spec.optimizer.update(grads, state.opt_state, p32)
    if low:
        params = lowp.apply_updates(state.params, updates, state.key, state.step)
    else:
        params = apply_updates(state.params, updates)
    terms = _terms(state.params["W"], ex, spec.model)
    return _stepped(state, batch, params, opt_state, E, terms)


def _all_finite(tree: Any) -> jax.Array:
    """True if every element of every leaf is finite (checked once per call, O(V x N))."""
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def train_step(state: TrainState, batch: dict, tables: dict, spec: StepSpec):
    """Run ``S`` steps (leading axis of every ``batch`` leaf) in one ``lax.scan``, or, where
    the step is a fused kernel's with a call-level form, in one custom call
    (:func:`sgjax.kernels.steps.fused_call`: the same steps).

    ``batch["active"]`` (S,) marks real steps; inactive ones (padding of the last call of an
    epoch) leave the state untouched. Returns the new state and metrics: ``loss`` (sum of E),
    ``terms`` (output predictions made: pairs for skip-gram, targets for CBOW), ``loss_mean``
    (their ratio: the loss per prediction, comparable across batch sizes), ``lr`` (the
    learning rate at the last step) and ``finite`` (False if any E or any parameter is
    non-finite after the call, so a bad update is caught before it is checkpointed).
    """

    if spec.model.layer.draws:
        batch = {**batch, **_draw_fields(state, batch, tables, spec)}

    def body(st, b):
        return jax.lax.cond(
            b["active"],
            lambda s: _one_step(s, b, tables, spec),
            lambda s: (s, (jnp.float32(0), jnp.float32(0))),
            st,
        )

    from sgjax.kernels import FUSED_CALL  # (imported when traced: it builds nothing)

    if spec.kernel >= 0 and spec.fused in FUSED_CALL:
        from sgjax.kernels.steps import fused_call

        state, (E_S, terms_S) = fused_call(state, batch, tables, spec)
    else:
        state, (E_S, terms_S) = jax.lax.scan(body, state, batch)
    metrics = {
        "loss": E_S.sum(),
        "terms": terms_S.sum(),
        "loss_mean": E_S.sum() / jnp.maximum(terms_S.sum(), 1.0),  # per output prediction
        "finite": jnp.isfinite(E_S).all() & _all_finite(state.params),
        "lr": jnp.asarray(spec.optimizer.learning_rate(state.step - 1), jnp.float32),
    }
    return state, metrics


train_step_jit = jax.jit(train_step, static_argnames=("spec",), donate_argnums=(0,))
