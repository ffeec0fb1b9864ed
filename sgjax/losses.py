"""The loss E of a model (input side x output layer), from the output layer's per-pair E.

:func:`batch_loss` is the reference form that ``jax.grad`` differentiates: the input side
gives each example's hidden vectors and output words, the output layer's ``loss`` gives E of
ONE (h, output word) pair in the paper's symbols, and ``jax.vmap`` maps it over the pairs
and the batch. The batch loss is the **sum** (not the mean), so one SGD step with learning
rate eta applies, for every example, exactly the paper's update v <- v - eta dE/dv.

Batch record (``C = 2 window`` context slots): ``center`` (B,), ``context`` (B, C), ``mask``
(B, C) bool, plus the output layer's fields (:func:`sgjax.model.complete`). Padding never
contributes: masked slots and fully padded examples add exactly 0 to E and its gradient.
"""

from __future__ import annotations

import jax

from sgjax.model import ModelSpec

Example = dict[str, jax.Array]

#: the vmap axis of a field of each scope: (over the batch, over H, over T)
_AXES = {"example": (0, None, None), "target": (0, None, 0), "pair": (0, 0, 0)}


def pair_losses(params: dict, batch: Example, model: ModelSpec, consts: dict | None = None):
    """E of every (hidden, output word) pair, ``(E_BxHxT, w_BxHxT)`` (w: 0/1 weights)."""
    side, layer = model.side, model.layer
    h, hmask = side.hidden(params["W"], batch, model)
    targets, tmask = side.targets(batch)
    scopes = layer.scopes(model)
    fields = {k: batch[k] for k in scopes}
    axes = [{k: _AXES[s][i] for k, s in scopes.items()} for i in range(3)]

    def one(h_N, w_O, f):
        return layer.loss(params, h_N, w_O, f, consts, model)

    over_t = jax.vmap(one, in_axes=(None, 0, axes[2]))
    over_h = jax.vmap(over_t, in_axes=(0, None, axes[1]))
    E = jax.vmap(over_h, in_axes=(0, 0, axes[0]))(h, targets, fields)
    return E, hmask[:, :, None] & tmask[:, None, :]


def batch_loss(params: dict, batch: Example, model: ModelSpec, consts: dict | None = None):
    """Sum over the batch of E: every pair's E weighted by its 0/1 weight."""
    E, w = pair_losses(params, batch, model, consts)
    return (E * w.astype(E.dtype)).sum()
