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
    """u_BxHxV = H W_out^T; per hidden vector EI = C y - counts of its output words.

    EI is never formed: with p = exp(u - max u), Z = sum p and y = p / Z,
    EH = (C / Z) (p W_out) - sum_c w_c v'_{j*_c} and dW' = ((C / Z) H)^T p - the output
    words' rows of h. So the elementwise work over the (B H) x V scores is one pass of
    exponentials (and their sum), and the three matrix products take the rest of the step
    (BENCHMARKS.md, "The full softmax")."""
    if curvature:
        raise ValueError("the full softmax has no row curvature (row damping)")
    W_out = params["W_out"]
    B, H, N = h_BxHxN.shape
    T = targets_BxT.shape[1]
    h = h_BxHxN.reshape(B * H, N)
    u = h @ W_out.T
    top = jax.lax.stop_gradient(u.max(axis=1, keepdims=True))
    p = jnp.exp(u - top)
    Z = p.sum(axis=1, keepdims=True)
    w = w_BxHxT.astype(u.dtype).reshape(B * H, T)
    C = w.sum(1, keepdims=True)
    tg = jnp.broadcast_to(targets_BxT[:, None, :], (B, H, T)).reshape(B * H, T)
    E = (C * (top + jnp.log(Z))).sum() - (w * jnp.take_along_axis(u, tg, axis=1)).sum()
    scale = C / Z
    EH = scale * (p @ W_out) - jnp.einsum("kt,ktn->kn", w, W_out[tg])
    # dW' as (h^T p)^T, the product kept whole by a barrier: XLA's CPU backend runs the
    # (V x B)(B x N) form 1.7x slower than (N x B)(B x V), more than the transpose costs
    dW = jax.lax.optimization_barrier((scale * h).T @ p).T
    dW = dW.at[tg.reshape(-1)].add(-(w[..., None] * h[:, None, :]).reshape(-1, N))
    return OutputRule(E, EH.reshape(B, H, N), {"W_out": dW})


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
        # the paper's orientation: one softmax per centre serves its C panels (word2vec.c's
        # has C per centre: 11x the time); window buckets would only cut the products into
        # smaller ones (BENCHMARKS.md, "The full softmax")
        defaults={"model.skipgram_input": "center", "train.window_buckets": False},
    ),
)
