"""The paper's explicit gradient rule of a model: the input side's rows of W composed with
the output layer's e, EH and row gradients.

:func:`value_and_rule` returns ``(E, grads)`` for a batch: E summed over the batch (as
:func:`sgjax.losses.batch_loss`) and ``grads`` a pytree shaped like the params whose
leaves are :class:`sgjax.sparse.RowGrads` (the rows an update touches; padding, masked or
skipped entries carry the out-of-range index R so a ``mode="drop"`` scatter ignores them)
or dense arrays (the full softmax's ``EI^T H``). No code path builds a per-example V x N
array. The output layer scores the rows an example's hidden vectors share as one matrix
product (the shared-rows form); :func:`pairwise_rule` computes the same rule pair by pair,
each (hidden, output word) pair its own example, which ``sgjax gradcheck`` compares it with.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.losses import Example
from sgjax.model import ModelSpec
from sgjax.sparse import RowGrads, densify_tree, row_totals


def value_and_rule(
    params: dict,
    batch: Example,
    model: ModelSpec,
    consts: dict | None = None,
    curvature: bool = False,
    damp_inputs: bool = True,
) -> tuple:
    """E summed over the batch and the explicit gradient, row-sparse where it is.

    Returns ``(E, {"W": RowGrads, <layer's tables>: RowGrads or dense})``. With
    ``curvature`` (output layers that define it: negative sampling, hierarchical softmax,
    NCE; an input side without ``input_curvature``, or ``damp_inputs=False``, gives 0 for
    W's rows) also the
    curvature of every row entry along its own row, aligned with the RowGrads' entries: for
    an entry of gradient ``e_j x``,
    ``w s'(u_j) |x|^2`` summed over the entry's terms (:func:`damp_rows`).
    """
    side, layer = model.side, model.layer
    if curvature and not layer.curvature:
        raise ValueError(f"row curvature is not defined for output layer {model.output}")
    W = params["W"]
    h, hmask = side.hidden(W, batch, model)
    targets, tmask = side.targets(batch)
    w = hmask[:, :, None] & tmask[:, None, :]
    out = layer.rule(params, h, targets, w, batch, consts, model, curvature)
    grads = {"W": side.input_rows(out.EH, batch, model, W.shape[0]), **out.grads}
    if not curvature:
        return out.E, grads
    if side.input_curvature is None or not damp_inputs:  # W undamped (curvature 0: scale 1)
        k_W = jnp.zeros(grads["W"].index.shape, out.E.dtype)
    else:
        k_W = side.input_curvature(out.k_h, batch, model)
    return out.E, grads, {"W": k_W, **out.curvature}


def pairwise_rule(params: dict, batch: Example, model: ModelSpec, consts: dict | None = None):
    """:func:`value_and_rule` computed pair by pair: each of the B x H x T (hidden, output
    word) pairs is an example of one hidden vector and one output word, its fields sliced
    by scope; the pairs' EH are summed back onto their hidden vectors. The same numbers as
    the shared-rows form, at the cost of one softmax, path or candidate set per pair."""
    side, layer = model.side, model.layer
    W = params["W"]
    h, hmask = side.hidden(W, batch, model)
    targets, tmask = side.targets(batch)
    B, H, N = h.shape
    T = targets.shape[1]
    P = B * H * T
    w = (hmask[:, :, None] & tmask[:, None, :]).reshape(P, 1, 1)
    h_P = jnp.broadcast_to(h[:, :, None, :], (B, H, T, N)).reshape(P, 1, N)
    t_P = jnp.broadcast_to(targets[:, None, :], (B, H, T)).reshape(P, 1)
    fields = {}
    for name, scope in layer.scopes(model).items():
        x = batch[name]
        if scope == "example":
            x = jnp.broadcast_to(x[:, None, None], (B, H, T) + x.shape[1:])
        elif scope == "target":
            x = jnp.broadcast_to(x[:, None], (B, H) + x.shape[1:])
        x = x.reshape((P,) + x.shape[3:])
        fields[name] = (
            x if scope == "example" else x[:, None, None] if scope == "pair" else x[:, None]
        )
    out = layer.rule(params, h_P, t_P, w, fields, consts, model, False)
    EH = out.EH.reshape(B, H, T, N).sum(2)
    return out.E, {"W": side.input_rows(EH, batch, model, W.shape[0]), **out.grads}


def explicit_grads(
    params: dict, batch: Example, model: ModelSpec, consts: dict | None = None, pairwise=False
) -> dict:
    """The explicit rule as a dense pytree like the params (rows scatter-added into zeros)."""
    rule = pairwise_rule if pairwise else value_and_rule
    return densify_tree(rule(params, batch, model, consts)[1], params)


def damp_rows(grads: dict, curvature: dict, num_rows: dict, lr: jax.Array) -> dict:
    """Scale each row's summed minibatch update to what sequential SGD would move it.

    A minibatch applies the n updates of a row, computed at the same parameters, at once:
    eta sum_i g_i. word2vec.c applies them one after another, and each shrinks the errors
    of the next. Along the row's own direction the loss has curvature k_i per entry
    (``value_and_rule(..., curvature=True)``), so with x = eta sum_i k_i the sequential
    updates add up to about ``eta sum_i g_i (1 - exp(-x)) / x`` (exact for n equal
    one-dimensional steps in the limit of small eta k_i): rows with x << 1 keep their
    update; a row with x >> 1 moves by about ``sum_i g_i / sum_i k_i``, a Newton step, and
    so never overshoots, which is how a large batch diverges. ``num_rows``: rows R of each
    table; padding entries (index >= R) are left as they are (the scatter drops them)."""
    out = {}
    for k, g in grads.items():
        if not isinstance(g, RowGrads):
            out[k] = g
            continue
        x = lr * row_totals(g.index, curvature[k].astype(g.value.dtype), num_rows[k])
        scale = jnp.where(x > 1e-6, -jnp.expm1(-x) / jnp.maximum(x, 1e-6), 1.0 - 0.5 * x)
        out[k] = RowGrads(g.index, g.value * scale[:, None])
    return out


def scale_rare_rows(grads: dict, start: int, factor: float) -> dict:
    """W's gradient rows from ``start`` on times ``factor``: the rows of words seen fewer
    than ``optimizer.table_scales_min_count`` times (rows are by descending count), so that
    under plain SGD they keep rate 1 while table_scales scales W. Row entries (RowGrads;
    padding entries, index >= V, are dropped by the scatter anyway) or a dense (V, N)."""
    g = grads["W"]
    if isinstance(g, RowGrads):
        f = jnp.where(g.index >= start, factor, 1.0).astype(g.value.dtype)
        return {**grads, "W": RowGrads(g.index, g.value * f[:, None])}
    f = jnp.where(jnp.arange(g.shape[0]) >= start, factor, 1.0).astype(g.dtype)
    return {**grads, "W": g * f[:, None]}


def rare_rows(counts: Any, optimizer: Any) -> dict[str, Any]:
    """The :class:`sgjax.train.StepSpec` fields of ``optimizer.table_scales_min_count`` for
    a vocabulary's ``counts`` (descending): W's rows from the first word seen fewer times
    take 1 / W's table_scales factor on their gradients. {} where it is 0."""
    m = optimizer.table_scales_min_count
    if not m:
        return {}
    start = int((np.asarray(counts) >= m).sum())
    return {"rare_from": start, "rare_scale": 1.0 / optimizer.table_scales["W"]}
