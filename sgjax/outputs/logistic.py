"""Binary logistic terms over shared output rows: the kernel of negative sampling,
hierarchical softmax and NCE.

Each of these losses is a sum of terms ``-w log s((2t - 1) u)`` with u = v'_j . h (+ a
fixed offset for NCE), one per (hidden vector, output row) the layer links. When the
hidden vectors of a group share the same S output rows (a centre's Huffman path shared by
its C context vectors, a centre's negatives shared by its C pairs, one hidden vector's
C x (1 + K) rows) the scores are one matrix product (H x N)(N x S) per group
(:func:`logistic_rows`), which is the fast form on every backend. :func:`shared_scores`
and :func:`shared_grads` are its two products, for any layer over shared rows (the sampled
softmax uses them too).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgjax.sparse import RowGrads


def logistic_terms(u: jax.Array, t: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``E = -sum w log s((2t - 1) u)`` and the errors ``e = w (s(u) - t)`` (t in {0, 1}),
    from one exponential per term: with x = (2t - 1) u and a = exp(-|x|),
    ``-log s(x) = max(-x, 0) + log(1 + a)`` and ``s(u) - t = (1 - 2t) s(-x)``,
    ``s(-x) = a / (1 + a)`` for x >= 0 and ``1 / (1 + a)`` otherwise. (XLA's CPU backend
    spends more on the transcendental functions of ``log_sigmoid`` and ``sigmoid``
    separately than on the dot products of a small batch.) With 0/1 weights (``w`` bool)
    the logarithms of a row of at most 64 terms are taken once, of their product
    (``prod (1 + a) <= 2^64``): E is the same sum, at a few ulp per row."""
    binary = w.dtype == jnp.bool_ and u.ndim >= 2 and u.shape[-1] <= 64
    mask = w
    t = t.astype(u.dtype)
    w = w.astype(u.dtype)
    x = (2.0 * t - 1.0) * u
    a = jnp.exp(-jnp.abs(x))
    one_a = 1.0 + a
    if binary:
        log_rows = jnp.log(jnp.where(mask, one_a, 1.0).prod(axis=-1))
        E = (w * jnp.maximum(-x, 0.0)).sum() + log_rows.sum()
    else:
        E = (w * (jnp.maximum(-x, 0.0) + jnp.log(one_a))).sum()
    e = w * (1.0 - 2.0 * t) * (jnp.where(x >= 0, a, 1.0) / one_a)
    return E, e


def term_curvature(e: jax.Array, w: jax.Array) -> jax.Array:
    """``w s'(u) = w s(u) (1 - s(u))`` of each logistic term, from its error
    ``e = w (s(u) - t)``: with a = |e| / w (= 1 - s for t = 1, s for t = 0), w a (1 - a);
    0 where w = 0. The second derivative of the term along its input, per unit |x|^2."""
    w = w.astype(e.dtype)
    a = jnp.abs(e) / jnp.where(w > 0, w, 1.0)
    return w * a * (1.0 - a)


def shared_scores(W_out: jax.Array, h_GxHxN: jax.Array, rows_GxS: jax.Array):
    """``(u_GxHxS, v_GxSxN)``: the rows v'_j of each group and their scores u = h . v'_j,
    one (H x N)(N x S) product per group (a matrix-vector product when H = 1)."""
    v_GxSxN = W_out[rows_GxS]
    if h_GxHxN.shape[1] == 1:
        u = jnp.einsum("gsn,gn->gs", v_GxSxN, h_GxHxN[:, 0])[:, None, :]
    else:
        u = jnp.einsum("ghn,gsn->ghs", h_GxHxN, v_GxSxN)
    return u, v_GxSxN


def shared_grads(e_GxHxS, h_GxHxN, v_GxSxN, rows_GxS, used_GxS, num_rows: int):
    """From the errors e = dE/du of each (hidden, row) term: ``EH_GxHxN = e V`` and the
    row gradients dE/dv'_j = sum_h e_hj h as RowGrads, one entry per group row (rows not
    ``used`` get the out-of-range index ``num_rows``)."""
    G, H, N = h_GxHxN.shape
    EH = jnp.einsum("ghs,gsn->ghn", e_GxHxS, v_GxSxN)
    if H == 1:
        rows_GxSxN = e_GxHxS[:, 0, :, None] * h_GxHxN[:, 0][:, None, :]
    else:
        # e^T as its own array: XLA would fold a plain transpose into the dot, whose
        # transposed operand its CPU backend then runs on a slow generic path
        e_GxSxH = jax.lax.optimization_barrier(jnp.swapaxes(e_GxHxS, 1, 2))
        rows_GxSxN = jnp.einsum("gsh,ghn->gsn", e_GxSxH, h_GxHxN)
    index = jnp.where(used_GxS, rows_GxS, num_rows).astype(jnp.int32)
    return EH, RowGrads(index.reshape(-1), rows_GxSxN.reshape(-1, N))


def logistic_rows(
    W_out: jax.Array,
    h_GxHxN: jax.Array,
    rows_GxS: jax.Array,
    t_GxS: jax.Array,
    w_GxHxS: jax.Array,
    offset_GxS: jax.Array | None = None,
    curvature: bool = False,
):
    """Logistic terms of G groups, each H hidden vectors sharing S output rows v'_j.

    u_GxHxS = h . v'_j (+ offset), e = w (s(u) - t), dE/dv'_j = sum_h e_hj h (one entry
    per group row), EH_h = sum_j e_hj v'_j. Returns ``(E, RowGrads, EH_GxHxN)``; a row no
    real term uses gets the out-of-range index R. With ``curvature`` also
    ``(k_out (G*S,), k_h (G, H))``: sum_h w s'(u_hj) |h|^2 per row entry and
    sum_j w s'(u_hj) |v'_j|^2 per hidden vector (:func:`sgjax.rules.damp_rows`).
    """
    u, v_GxSxN = shared_scores(W_out, h_GxHxN, rows_GxS)
    if offset_GxS is not None:
        u = u + offset_GxS[:, None, :].astype(u.dtype)
    w = w_GxHxS if w_GxHxS.dtype == jnp.bool_ else w_GxHxS.astype(u.dtype)
    E, e_GxHxS = logistic_terms(u, jnp.broadcast_to(t_GxS[:, None, :], w.shape), w)
    EH, grad = shared_grads(e_GxHxS, h_GxHxN, v_GxSxN, rows_GxS, (w > 0).any(1), W_out.shape[0])
    if not curvature:
        return E, grad, EH
    k_GxHxS = term_curvature(e_GxHxS, w)
    k_out = jnp.einsum("ghs,gh->gs", k_GxHxS, (h_GxHxN * h_GxHxN).sum(-1)).reshape(-1)
    k_h = jnp.einsum("ghs,gs->gh", k_GxHxS, (v_GxSxN * v_GxSxN).sum(-1))
    return E, grad, EH, (k_out, k_h)


def log_sigmoid_sum(u: jax.Array, t: jax.Array, w: jax.Array) -> jax.Array:
    """``-sum w log s((2t - 1) u)``: the reference form of the terms, for the losses."""
    return -(w * jax.nn.log_sigmoid((2.0 * t - 1.0) * u)).sum()
