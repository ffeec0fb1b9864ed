"""Row-sparse gradients: the form the paper's explicit rules naturally produce.

For negative sampling and hierarchical softmax an update touches only a few rows of W and
W_out (the paper's "v'_j <- v'_j - eta * ... for w_j in {w_O} u W_neg"). A rule returns those
rows as ``RowGrads(index, value)``: row ``index[m]`` of the table receives ``value[m]``;
indices may repeat (their values add). Padding entries carry the out-of-range index R (the
table's row count) and ``value = 0``: every scatter here uses ``mode="drop"`` so they vanish.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RowGrads(NamedTuple):
    """Rows ``index`` (M,) int32 of a (R, N) table get gradient rows ``value`` (M, N)."""

    index: jax.Array
    value: jax.Array


def is_rows(x: object) -> bool:
    """True for a :class:`RowGrads` leaf (use as ``is_leaf`` in tree maps)."""
    return isinstance(x, RowGrads)


def densify(grad: RowGrads | jax.Array, table: jax.Array) -> jax.Array:
    """Dense gradient shaped like ``table``: scatter-add of the rows (duplicates add)."""
    if isinstance(grad, RowGrads):
        value = grad.value.astype(table.dtype)
        return jnp.zeros_like(table).at[grad.index].add(value, mode="drop")
    return grad


def densify_tree(grads: dict, params: dict) -> dict:
    """:func:`densify` every leaf of a params-shaped gradient pytree."""
    return {k: densify(grads[k], params[k]) for k in params}


def row_totals(index: jax.Array, x: jax.Array, num_rows: int) -> jax.Array:
    """For every entry m, the sum of ``x`` over all entries of its row ``index[m]`` (M,).
    Padding entries (index >= ``num_rows``) share one extra slot, so they never add to a
    real row. O(R + M)."""
    idx = jnp.minimum(index, num_rows)
    return jnp.zeros(num_rows + 1, x.dtype).at[idx].add(x)[idx]


def merge_rows(grad: RowGrads, num_rows: int) -> RowGrads:
    """Sum duplicate indices into unique rows, keeping the fixed size M (jit-friendly).

    Returns ``RowGrads`` whose indices are unique except for padding entries, which carry
    index ``num_rows`` (out of range, dropped by ``.at[].add/set`` with ``mode="drop"``).
    Input padding entries (index ``num_rows``) are merged into that padding slot.
    """
    M = grad.index.shape[0]
    uniq, inv = jnp.unique(grad.index, size=M, fill_value=num_rows, return_inverse=True)
    value = jax.ops.segment_sum(grad.value, inv.reshape(-1), num_segments=M)
    return RowGrads(uniq.astype(jnp.int32), value)
