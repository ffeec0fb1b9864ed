"""Negative sampling (Mikolov et al. 2013; the paper's section 3.2).

For a pair (h, w_O) and K negatives W_neg drawn from P_n(w) ∝ count(w)^0.75:

    E = -log s(v'_{w_O} . h) - sum_{w_j in W_neg} log s(-v'_{w_j} . h)
    e_j = dE/d(v'_j . h) = s(v'_j . h) - t_j,   dE/dv'_j = e_j h,   EH = sum_j e_j v'_j

It is NCE (:mod:`sgjax.outputs.nce`) with k P_n(w) = 1 for every w: the same logistic
terms without NCE's ``-log(k P_n(w))`` shift of the scores. :func:`logistic_layer` builds
both from a score offset; the rule scores each example's candidate rows as one matrix
product (:func:`sgjax.outputs.sampling.candidates`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from sgjax.outputs import sampling
from sgjax.outputs.base import OutputLayer, OutputRule, register
from sgjax.outputs.logistic import log_sigmoid_sum, logistic_rows

#: ``offset(rows, consts) -> shift of u`` for rows of any shape, or None (no shift).
Offset = Callable[[jax.Array, dict], jax.Array] | None


def logistic_layer(offset: Offset = None) -> OutputLayer:
    """An output layer of logistic terms over the output word and K sampled negatives,
    scores ``u_j = v'_j . h + offset(j)``; ``W_out`` (V, N) holds the v'_j."""

    def loss(params, h, w_O, fields, consts, model):
        """E of one pair: -log s(u_{w_O}) - sum_k [w_k != w_O] log s(-u_{w_k})."""
        rows, t, w = sampling.pair_terms(w_O, fields["negatives"])
        u = params["W_out"][rows] @ h
        if offset is not None:
            u = u + offset(rows, consts).astype(u.dtype)
        return log_sigmoid_sum(u, t.astype(u.dtype), w.astype(u.dtype))

    def rule(params, h_BxHxN, targets_BxT, w_BxHxT, fields, consts, model, curvature=False):
        B, H, N = h_BxHxN.shape
        c = sampling.candidates(h_BxHxN, targets_BxT, w_BxHxT, fields["negatives"])
        shift = None if offset is None else offset(c.rows, consts)
        out = logistic_rows(params["W_out"], c.h, c.rows, c.t, c.w, shift, curvature)
        EH = out[2].reshape(B, H, N)
        if not curvature:
            return OutputRule(out[0], EH, {"W_out": out[1]})
        k_out, k_h = out[3]
        return OutputRule(out[0], EH, {"W_out": out[1]}, {"W_out": k_out}, k_h.reshape(B, H))

    return sampling.layer(loss, rule, curvature=True)


LAYER = register("negative", logistic_layer())
