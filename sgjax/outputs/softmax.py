"""The full softmax (the paper's sections 1-2): y_j = exp(u_j) / sum_j' exp(u_j'),
u_j = v'_j . h over all V output vectors.

For one h and its output words (one per pair): E = sum_c (-u_{j*_c} + log Z),
e_{c,j} = y_j - t_{c,j}, EI = sum_c e_c, dE/dW' = EI^T h (every row), EH = EI W'.
The C panels of the paper's skip-gram share h and so y: one softmax per centre, not one per
pair (EI = C y - counts). The rule never builds a per-example V x N array: dW' is one
product EI^T H over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgjax.outputs.base import OutputLayer, OutputRule, register


def loss(params, h, w_O, fields, consts, model):
    """E of one pair: -u_{w_O} + log sum_j exp(u_j),  u = W_out h (V,)."""
    u = params["W_out"] @ h
    return jax.nn.logsumexp(u) - u[w_O]


def rule(params, h_BxHxN, targets_BxT, w_BxHxT, fields, consts, model, curvature=False):
    """u_BxHxV = H W_out^T; per hidden vector EI = C y - counts of its output words."""
    if curvature:
        raise ValueError("the full softmax has no row curvature (row damping)")
    W_out = params["W_out"]
    B, H, N = h_BxHxN.shape
    V = W_out.shape[0]
    u = h_BxHxN.reshape(B * H, N) @ W_out.T
    logZ = jax.nn.logsumexp(u, axis=1)
    y = jnp.exp(u - logZ[:, None])
    w = w_BxHxT.astype(u.dtype)
    T = targets_BxT.shape[1]
    bh = jnp.broadcast_to(jnp.arange(B * H).reshape(B, H, 1), (B, H, T))
    tg = jnp.broadcast_to(targets_BxT[:, None, :], (B, H, T))
    counts = jnp.zeros((B * H, V), u.dtype).at[bh, tg].add(w)
    C = w.sum(2).reshape(-1)
    EI = C[:, None] * y - counts
    E = (C * logZ).sum() - (counts * u).sum()
    EH = (EI @ W_out).reshape(B, H, N)
    return OutputRule(E, EH, {"W_out": EI.T @ h_BxHxN.reshape(B * H, N)})


LAYER = register(
    "softmax",
    OutputLayer(
        tables=lambda V: {"W_out": V},
        prepare=lambda vocab, model: {},
        complete=lambda key, targets, H, consts, model: {},
        scopes=lambda model: {},
        loss=loss,
        rule=rule,
        dense=True,
    ),
)
