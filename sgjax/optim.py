"""The optimizer: any optax optimizer by name, a schedule by name, and row-sparse updates.

:func:`build_optimizer` looks both up: ``optimizer(learning_rate=schedule, **cfg.kwargs)``
with ``optimizer`` = ``optax.<cfg.name>`` (or the callable a dotted ``cfg.name`` imports,
:mod:`sgjax.config_optax`) and ``schedule = SCHEDULES[cfg.schedule](cfg, total_steps)``; with
``optimizer.chain`` entries (transforms applied to the gradients first) the transformation is
``optax.chain(*chain, optimizer)`` (then ``optimizer.table_scales``' per-table factors,
:func:`scale_tables`). It returns a :class:`SparseOptimizer`, an optax-style
transformation: ``update(grads, opt_state, params) -> (updates, opt_state)`` takes the rules'
gradient pytree ``{"W": g, "W_out": g}``, each ``g`` a dense array shaped like its table or a
:class:`sgjax.sparse.RowGrads` (rows may repeat; their values add), and :func:`apply_updates`
``(params, updates)`` makes the step. An update leaf is a dense array (added like
``optax.apply_updates``) or, in lazy mode, a ``RowGrads`` of row updates (scatter-added).
``opt_state`` is optax's own ``tx.init(params)`` over the whole params in both modes.

Modes (``optimizer.sparse``):

``dense``: exact optax semantics. Row gradients are densified and ``tx.update`` runs on the
whole tables: every row's state moves every step (Adam's momentum moves rows that got no
gradient). Cost O(V x N) per step.

``lazy`` (default): O(rows touched) per step, the semantics of TF's LazyAdam and PyTorch's
SparseAdam. Per table, duplicate rows are summed (:func:`distinct_rows`); a row is *touched*
in a step iff its summed gradient row is not all zero, so padding entries, skipped negatives
and masked slots, which carry zero rows, touch nothing (TF and PyTorch count any listed
index as touched; with fixed-shape padded batches that would make the padding row drift).
The touched rows of the table and of every state leaf shaped like it are gathered,
``tx.update`` runs on that (K, N) slice (K = min(M, R) slots for M gradient rows of an
R-row table) with the state's shared leaves, the new state rows are scattered back, and the
update is the touched rows' (:class:`UniqueRows`; untouched slots add -0.0). Hence:

a touched row gets the update dense mode would give it from its own state, an untouched
row keeps its parameters and state, and shared leaves (step counts) advance every step.

Lazy equals dense exactly when an all-zero gradient row leaves its row and state unchanged
in dense mode too (plain SGD, Adagrad); for Adam, RMSprop, momentum it is the usual sparse
algorithm.

Which path the lazy mode takes is decided at build time by probing the optimizer on a small
table (no list of names):

- *scatter*: the state has no leaf shaped like a table and the update is ``c * g`` with a
  scalar ``c`` independent of the gradient and the parameters (plain SGD with any
  schedule). Then duplicates need no merging: the update is ``table.at[index].add(c *
  value)``, which adds duplicates exactly like dense SGD.
- *rows*: the update is element-wise (a row's new parameters and state depend only on that
  row's parameters, gradient and state, plus shared leaves that do not depend on the
  gradient): checked by comparing ``tx.update`` of a row slice with the same rows of the full
  update, at gradient scales 1, 1e3 and 1e6 (so that a threshold such as a clipping norm is
  crossed). Adam, AdamW, Adagrad, RMSprop, momentum SGD, Lion, ... pass; so do the chain
  transforms ``add_decayed_weights``, ``clip`` (element-wise), ``scale_by_adam``, ...
- anything else (LAMB, LARS, Adafactor, NovoGrad, SM3, Fromage: per-table norms or
  statistics; noisy SGD) has no row-sparse form and is refused with :class:`ConfigError`
  pointing at ``optimizer.sparse=dense``. A probe, not an allowlist: it follows optax and
  ``optimizer.kwargs`` without upkeep. With a chain, each entry is probed alone and then
  the whole chain; the message names the entry that breaks it.

A gradient leaf that is a dense array (the full softmax's ``W_out``, or any ``jax.grad``
gradient) is always updated whole, as in dense mode, also in lazy mode.

Cost: the rows path does O(K N) work per table and step (plus an O(R) index map when R <= 4
M). When M >= R (``W_out`` under negative sampling) that is dense mode's rows plus the
merging: lazy buys its semantics there, not speed; the gain grows with V/M.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sgjax.config import ConfigError, OptimizerConfig, Sparse
from sgjax.config_optax import chain_entries, display, resolve
from sgjax.sparse import RowGrads, densify_tree, merge_rows

Params = dict[str, jax.Array]
Grads = dict[str, Any]  # each leaf a dense array like the table or a RowGrads
OptState = Any

# --------------------------------------------------------------------------------------------
# Schedules: name -> builder(cfg, total_steps) of an optax schedule (step -> learning rate).


def _warmup_steps(cfg: OptimizerConfig, total_steps: int) -> int:
    return int(round(cfg.warmup * total_steps))


def _warmup_linear(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
    w = _warmup_steps(cfg, total_steps)
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, cfg.learning_rate, w),
            optax.linear_schedule(cfg.learning_rate, cfg.end_lr, max(total_steps - w, 1)),
        ],
        [w],
    )


SCHEDULES: dict[str, Callable[[OptimizerConfig, int], optax.Schedule]] = {
    # eta fixed
    "constant": lambda c, T: optax.constant_schedule(c.learning_rate),
    # word2vec: eta decays linearly to end_lr over the run, then stays there
    "linear": lambda c, T: optax.linear_schedule(c.learning_rate, c.end_lr, T),
    # half cosine from eta to end_lr
    "cosine": lambda c, T: optax.cosine_decay_schedule(
        c.learning_rate, T, alpha=c.end_lr / c.learning_rate
    ),
    # eta * (end_lr / eta) ** (step / T), floored at end_lr
    "exponential": lambda c, T: optax.exponential_decay(
        c.learning_rate, T, c.end_lr / c.learning_rate, end_value=c.end_lr
    ),
    # linear warmup 0 -> eta over warmup_fraction * T steps, then cosine to end_lr at T
    "warmup_cosine": lambda c, T: optax.warmup_cosine_decay_schedule(
        0.0, c.learning_rate, _warmup_steps(c, T), T, c.end_lr
    ),
    # linear warmup 0 -> eta, then linear decay to end_lr at T
    "warmup_linear": _warmup_linear,
}


def build_schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """The learning-rate schedule ``step -> eta`` named by ``cfg.schedule``."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    return SCHEDULES[cfg.schedule](cfg, int(total_steps))


# --------------------------------------------------------------------------------------------
# The optimizer.


class UniqueRows(RowGrads):
    """Row updates whose indices are sorted and distinct (the lazy rows path); indices >= R
    are unused slots. :func:`apply_updates` tells the scatter so (no duplicates to add)."""

    __slots__ = ()


Updates = dict[str, Any]  # each leaf a dense array like the table or a RowGrads of row updates


class SparseOptimizer(NamedTuple):
    """Functional optimizer over params with row-sparse gradients (all members pure).

    Like an ``optax.GradientTransformation``: ``update(grads, opt_state, params)`` returns
    ``(updates, opt_state)``; :func:`apply_updates` ``(params, updates)`` makes the step.
    """

    init: Callable[[Params], OptState]
    update: Callable[[Grads, OptState, Params], tuple[Updates, OptState]]
    learning_rate: optax.Schedule  # step -> eta (step = number of updates done)
    tx: optax.GradientTransformation  # the underlying optax transformation
    path: str  # "dense", "scatter" (lazy, linear update) or "rows" (lazy, element-wise)


def build_optimizer(
    cfg: OptimizerConfig, total_steps: int, schedule: optax.Schedule | None = None
) -> SparseOptimizer:
    """The optimizer of ``cfg`` with its schedule spanning ``total_steps`` update steps (or
    ``schedule``: a continued run's, :mod:`sgjax.continuation`).

    The transformation is ``optax.chain(*chain, optimizer)`` for the ``optimizer.chain``
    entries (just the optimizer without them, so its state is optax's own). Raises
    :class:`ConfigError` naming the key if a name does not resolve, if a constructor rejects
    its arguments, if a part does not run as ``update(grads, state, params)``, or (lazy mode)
    if a part is not element-wise.
    """
    schedule = build_schedule(cfg, total_steps) if schedule is None else schedule
    chain = _make_chain(cfg)
    # a constant rate goes in as a number: some optax optimizers (sm3) take no schedule
    opt = _make_tx(cfg, cfg.learning_rate if cfg.schedule == "constant" else schedule)
    tx = optax.chain(*(p.tx for p in chain), opt) if chain else opt
    # probes need a nonzero, fixed rate
    parts = [
        *chain,
        _Part(f"optimizer.name={cfg.name!r}", cfg.name, _make_tx(cfg, cfg.learning_rate)),
    ]
    if Sparse(cfg.sparse) == Sparse.dense:
        _probe_runs(parts)  # fails early, with a ConfigError, if it cannot run
        path = "dense"
    else:
        path = _classify(parts)

    def update(grads: Grads, opt_state: OptState, params: Params) -> tuple[Updates, OptState]:
        if set(grads) != set(params):
            raise ValueError(f"gradient keys {sorted(grads)} != parameter keys {sorted(params)}")
        if path == "dense":
            return tx.update(densify_tree(grads, params), opt_state, params)
        return _lazy_update(tx, path == "scatter", grads, opt_state, params)

    return SparseOptimizer(tx.init, update, schedule, tx, path)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params`` moved by ``updates`` (from :meth:`SparseOptimizer.update`): a dense leaf is
    added as by ``optax.apply_updates``; a :class:`~sgjax.sparse.RowGrads` leaf's rows are
    scatter-added into its table (repeated rows add; out-of-range rows are dropped)."""

    def add(u: Any, p: jax.Array) -> jax.Array:
        if u is None:
            return p
        if not isinstance(u, RowGrads):
            return optax.apply_updates(p, u)
        unique = isinstance(u, UniqueRows)
        return p.at[u.index].add(
            u.value.astype(p.dtype),
            mode="drop",
            indices_are_sorted=unique,
            unique_indices=unique,
        )

    return jax.tree_util.tree_map(
        add, updates, params, is_leaf=lambda x: x is None or isinstance(x, RowGrads)
    )


class _Part(NamedTuple):
    """One part of the transformation: a chain entry or the optimizer, for the probes."""

    label: str  # the key and value that made it, for messages: optimizer.chain[0]='clip'
    name: str  # optimizer.name or the entry's name
    tx: optax.GradientTransformation


def scale_tables(factors: dict[str, float]) -> optax.GradientTransformation:
    """Each named table's updates times its factor (``optimizer.table_scales``): per-table
    rates, after the optimizer; a table not named is left as it is."""

    def update(updates: Updates, state: Any, params: Any = None) -> tuple[Updates, Any]:
        return {k: u * factors[k] if k in factors else u for k, u in updates.items()}, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _make_tx(cfg: OptimizerConfig, learning_rate: Any) -> optax.GradientTransformation:
    ctor = resolve(cfg.name, "optimizer.name")
    try:
        tx = ctor(learning_rate=learning_rate, **cfg.kwargs)
    except (TypeError, ValueError) as e:
        hint = " (if it takes no schedule: optimizer.schedule=constant)"
        hint = hint if callable(learning_rate) else ""
        raise ConfigError(
            f"optimizer: {display(cfg.name)}(learning_rate=..., **{cfg.kwargs!r}) failed: {e}{hint}"
        ) from None
    if any(f != 1.0 for f in cfg.table_scales.values()):  # (the optimizer's state stays first)
        tx = optax.chain(tx, scale_tables(cfg.table_scales))
    return _checked(tx, f"optimizer.name={cfg.name!r}")


def _make_chain(cfg: OptimizerConfig) -> list[_Part]:
    parts = []
    for key, name, kwargs in chain_entries(cfg):
        ctor = resolve(name, key)
        label = f"{key}={name!r}"
        try:
            tx = ctor(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{label}: {display(name)}(**{kwargs!r}) failed: {e}") from None
        parts.append(_Part(label, name, _checked(tx, label)))
    return parts


def _checked(tx: Any, label: str) -> optax.GradientTransformation:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise ConfigError(
            f"{label} returned a {type(tx).__name__}, not an optax GradientTransformation "
            "(init, update)"
        )
    return tx


# --------------------------------------------------------------------------------------------
# The lazy update: gather touched rows of params and state, tx.update the slice, scatter back.


def _row_leaf_owner(path: tuple, leaf: Any, params: Params) -> str | None:
    """The table a state leaf mirrors row for row (its path ends in the table's key and it
    has the table's shape), else None (a shared leaf such as a step count)."""
    last = path[-1] if path else None
    if isinstance(last, jax.tree_util.DictKey) and last.key in params:
        if getattr(leaf, "shape", None) == params[last.key].shape:
            return last.key
    return None


#: :func:`distinct_rows` finds the distinct rows with an R-sized index map (no sort) when
#: R <= this * M, where it is cheaper on CPU than sorting (and still O(M) work); else it sorts.
MAP_MERGE_MAX_RATIO = 4


def distinct_rows(grad: RowGrads, num_rows: int) -> tuple[jax.Array, jax.Array]:
    """Sum duplicate rows of ``grad``: ``(index (K,), value (K, N))`` with K = min(M, R).

    ``index`` is sorted and unique: the distinct rows first, then unused slots numbered
    R, R+1, ... (out of range: dropped by ``mode="drop"`` scatters) with value 0. Same sums
    as :func:`sgjax.sparse.merge_rows`, in K <= R slots.
    """
    R, M = num_rows, grad.index.shape[0]
    K = min(M, R)
    if R <= MAP_MERGE_MAX_RATIO * M:  # mark rows in an (R,) map, no sort: O(R + M N)
        mark = jnp.zeros(R, jnp.bool_).at[grad.index].set(True, mode="drop")
        (idx,) = jnp.nonzero(mark, size=K, fill_value=R)
        idx = idx.astype(jnp.int32)
        slot = (
            jnp.zeros(R, jnp.int32)
            .at[idx]
            .set(jnp.arange(K, dtype=jnp.int32), mode="drop", indices_are_sorted=True)
        )
        value = jax.ops.segment_sum(grad.value, slot[grad.index], num_segments=K)
    else:  # sort (jnp.unique): O(M log M + M N)
        merged = merge_rows(grad, R)
        idx, value = merged.index[:K].astype(jnp.int32), merged.value[:K]
    idx = jnp.where(idx < R, idx, R + jnp.arange(K, dtype=jnp.int32))
    return idx, value


def _gather(x: jax.Array, rows: jax.Array, rows_sorted: bool) -> jax.Array:
    # out-of-range fill rows (>= R) read a real row (clip); their results are dropped
    return x.at[rows].get(mode="clip", indices_are_sorted=rows_sorted)


def _lazy_update(
    tx: optax.GradientTransformation,
    scatter: bool,
    grads: Grads,
    opt_state: OptState,
    params: Params,
) -> tuple[Updates, OptState]:
    rows: dict[str, jax.Array | None] = {}  # None: the leaf is updated whole
    touched: dict[str, jax.Array] = {}
    p_sl, g_sl = {}, {}
    for k, p in params.items():
        g = grads[k]
        if not isinstance(g, RowGrads):
            rows[k], p_sl[k], g_sl[k] = None, p, jnp.asarray(g, p.dtype)
            continue
        value = g.value.astype(p.dtype)
        R = p.shape[0]
        if scatter:  # the update is c * g: raw (repeated) rows, scatter-ADDED below
            idx = g.index.astype(jnp.int32)
        else:  # the distinct rows, sorted, summed; unused slots get distinct indices >= R
            idx, value = distinct_rows(RowGrads(g.index, value), R)
            touched[k] = jnp.any(value != 0, axis=1, keepdims=True)
        rows[k], p_sl[k], g_sl[k] = idx, _gather(p, idx, not scatter), value

    leaves, treedef = jax.tree_util.tree_flatten_with_path(opt_state)
    owners = [_row_leaf_owner(path, leaf, params) for path, leaf in leaves]
    s_sl = [
        leaf if o is None or rows[o] is None else _gather(leaf, rows[o], True)
        for (_, leaf), o in zip(leaves, owners, strict=True)
    ]
    updates, new_s = tx.update(g_sl, treedef.unflatten(s_sl), p_sl)

    def put(table: jax.Array, k: str, old_rows: jax.Array, new_rows: jax.Array) -> jax.Array:
        # rows path: a row whose summed gradient is all zero keeps its old values
        new_rows = jnp.where(touched[k], new_rows, old_rows)
        return table.at[rows[k]].set(
            new_rows, mode="drop", indices_are_sorted=True, unique_indices=True
        )

    out: Updates = {}
    for k, p in params.items():
        if rows[k] is None:
            out[k] = updates[k]
        elif scatter:  # duplicates add, exactly like the dense scatter-add of the gradient
            out[k] = RowGrads(rows[k], updates[k].astype(p.dtype))
        else:  # optax's own row updates (new row - old row); an untouched row adds -0.0,
            # which leaves every value as it is (also -0.0)
            u = jnp.where(touched[k], updates[k].astype(p.dtype), jnp.array(-0.0, p.dtype))
            out[k] = UniqueRows(rows[k], u)
    new_leaves = [
        new if o is None or rows[o] is None else put(old, o, old_sl, new)
        for (_, old), old_sl, new, o in zip(
            leaves, s_sl, jax.tree_util.tree_leaves(new_s), owners, strict=True
        )
    ]
    return out, treedef.unflatten(new_leaves)


# --------------------------------------------------------------------------------------------
# Build-time probes on a small random table (eager, a few milliseconds).

_PROBE_ROWS, _PROBE_DIM = 7, 3
_PROBE_SLICE = np.array([1, 4, 5])


def _probe_setup(tx: optax.GradientTransformation, part: _Part):
    """A (7, 3) table and optimizer state after two dense steps (so the state is not zero)."""
    rng = np.random.default_rng(0)
    params = {"W": jnp.asarray(rng.normal(size=(_PROBE_ROWS, _PROBE_DIM)), jnp.float32)}
    try:
        state = tx.init(params)
        for _ in range(2):
            g = {"W": jnp.asarray(rng.normal(size=(_PROBE_ROWS, _PROBE_DIM)), jnp.float32)}
            updates, state = tx.update(g, state, params)
            params = optax.apply_updates(params, updates)
    except Exception as e:  # noqa: BLE001 - any failure means: cannot drive this optimizer
        raise ConfigError(
            f"{part.label}: {display(part.name)} does not run as update(grads, state, params) "
            f"({type(e).__name__}: {e}): check its arguments; if it needs more than gradients "
            "(e.g. a loss value), it is not supported"
        ) from None
    return rng, params, state


def _whole(parts: list[_Part]) -> optax.GradientTransformation:
    return parts[0].tx if len(parts) == 1 else optax.chain(*(p.tx for p in parts))


def _probe_runs(parts: list[_Part]) -> None:
    """ConfigError naming the part that does not run (each alone, then all together)."""
    for p in parts:
        _probe_setup(p.tx, p)
    if len(parts) > 1:
        _probe_setup(
            _whole(parts), parts[-1]._replace(label=f"optimizer.chain + {parts[-1].label}")
        )


def _close(a: Any, b: Any) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))


#: Gradient scales of the element-wise probe: thresholds (clip_by_global_norm's max_norm,
#: ...) that a unit-scale (7, 3) gradient stays under are crossed at a larger scale.
_PROBE_SCALES = (1.0, 1e3, 1e6)


def _elementwise(tx: optax.GradientTransformation, part: _Part) -> bool:
    """Whether ``tx.update`` of a row slice (with the sliced row state and the shared leaves)
    gives the same rows, and row state, as the full update, at every probe scale."""
    rng, params, state = _probe_setup(tx, part)
    W = params["W"]
    g = jnp.asarray(rng.normal(size=W.shape), jnp.float32)
    rows = jnp.asarray(_PROBE_SLICE)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    owners = [_row_leaf_owner(path, leaf, params) for path, leaf in leaves]
    try:
        sl_state = treedef.unflatten(
            [leaf if o is None else leaf[rows] for (_, leaf), o in zip(leaves, owners, strict=True)]
        )
        for scale in _PROBE_SCALES:
            full_u, full_s = tx.update({"W": scale * g}, state, params)
            sl_u, sl_s = tx.update({"W": scale * g[rows]}, sl_state, {"W": W[rows]})
            new_full = jax.tree_util.tree_leaves(full_s)
            new_sl = jax.tree_util.tree_leaves(sl_s)
            if not (_close(sl_u["W"], full_u["W"][rows]) and len(new_full) == len(new_sl)):
                return False
            for o, f, s in zip(owners, new_full, new_sl, strict=False):
                if not _close(s, f[rows] if o is not None else f):
                    return False
    except Exception:  # noqa: BLE001 - a slice it cannot even process: not element-wise
        return False
    return True


def _not_elementwise(part: _Part) -> ConfigError:
    return ConfigError(
        f"{part.label} is not element-wise (a row's update depends on other rows, e.g. "
        "through global or per-table norms, factored statistics or per-table noise), so it "
        "has no row-sparse form: set optimizer.sparse=dense"
    )


def _classify(parts: list[_Part]) -> str:
    """'scatter' or 'rows' (see the module docstring) for the chain of ``parts``; a
    ConfigError naming the part that is not element-wise if neither applies: a chain entry
    that is not element-wise alone, else the first whose prefix of the chain is not."""
    for p in parts[:-1]:
        if not _elementwise(p.tx, p):
            raise _not_elementwise(p)
    tx = _whole(parts)
    if not _elementwise(tx, parts[-1]):
        for j in range(1, len(parts)):
            if not _elementwise(_whole(parts[:j]), parts[j - 1]):
                raise _not_elementwise(parts[j - 1])
        raise _not_elementwise(parts[-1])
    rng, params, state = _probe_setup(tx, parts[-1])
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    if any(_row_leaf_owner(path, leaf, params) is not None for path, leaf in leaves):
        return "rows"
    # No per-row state: is the update c * g with c independent of g and of the parameters?
    W = params["W"]
    g = jnp.asarray(rng.normal(size=W.shape), jnp.float32)
    g2 = jnp.asarray(rng.normal(size=W.shape), jnp.float32)
    other = {"W": 2.0 * W + 1.0}
    cs = []
    for gg, pp in ((g, params), (g2, params), (g + g2, other)):
        u = np.asarray(tx.update({"W": gg}, state, pp)[0]["W"], np.float64)
        ga = np.asarray(gg, np.float64)
        c = float((u * ga).sum() / (ga * ga).sum())
        if not _close(u, c * ga):
            return "rows"
        cs.append(c)
    return "scatter" if _close(cs, [cs[0]] * len(cs)) else "rows"
