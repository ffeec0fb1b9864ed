"""Sampled softmax (Bengio & Senécal 2008; Jean et al. 2015): the softmax of the paper's
section 1-2 over a sampled candidate set instead of all V output vectors.

For a pair (h, w_O) with the K negatives W_neg drawn from Q (:mod:`sgjax.outputs.sampling`),
the candidate set is S = {w_O} ∪ W_neg, and each score is corrected by the log expected
count of its word among the K draws, Q(w) = K P_n(w) (``consts["log_kpn"]``), the output
word's as well as the negatives':

    u~_w = v'_w . h - log Q(w),   E = -u~_{w_O} + log sum_{w in S} exp(u~_w)
    e_w = dE/du_w = softmax_S(u~)_w - t_w (w in S),  dE/dv'_w = e_w h,  EH = sum_w e_w v'_w

A negative equal to w_O is removed (TensorFlow's ``remove_accidental_hits``): w_O is in S
already. The gradient is an importance-sampled estimate of the full softmax's: it tends to
it as |S| -> V (with every word in S once and a constant Q the two are equal).

The rule scores a group's candidate rows once (:func:`sgjax.outputs.sampling.candidates`):
with shared negatives an example's H hidden vectors against its T output words and K
negatives, one (H x N)(N x (T + K)) product; with per-pair negatives each hidden vector
against its T x (1 + K) rows. Each pair's softmax then runs over its own columns, its
output word's and the K negatives' (accidental hits masked).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgjax.outputs import sampling
from sgjax.outputs.base import OutputRule, register
from sgjax.outputs.logistic import shared_grads, shared_scores


def masked_logsumexp(u: jax.Array, mask: jax.Array, axis: int = -1) -> jax.Array:
    """``log sum_{mask} exp(u)`` along ``axis``; 0 (with zero gradient) where every entry is
    masked, so fully padded pairs stay finite. Masked entries never reach an ``exp`` of
    their own value (their gradient is exactly 0, also for huge u)."""
    m = jnp.max(jnp.where(mask, u, -jnp.inf), axis=axis, keepdims=True)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))
    s = jnp.exp(jnp.where(mask, u - m, -jnp.inf)).sum(axis=axis, keepdims=True)
    any_ = mask.any(axis=axis, keepdims=True)
    lse = m + jnp.log(jnp.where(any_, s, 1.0))
    return jnp.squeeze(lse, axis)


def pair_softmax(logits: jax.Array, mask: jax.Array):
    """Softmax terms of pairs whose column 0 is the output word: ``logits`` and ``mask``
    (..., 1 + K), the mask False on accidental hits and on every column of a padded pair.
    Returns ``(E, e)``: E summed over the pairs, e = softmax - t per column (0 where
    masked, so 0 for padded pairs)."""
    lse = masked_logsumexp(logits, mask)
    real = mask[..., 0]
    E = jnp.where(real, lse - logits[..., 0], 0.0).sum()
    p = jnp.exp(jnp.where(mask, logits - lse[..., None], -jnp.inf))
    e = p.at[..., 0].add(-real.astype(p.dtype))
    return E, e


def loss(params, h, w_O, fields, consts, model):
    """E of one pair: -u~_{w_O} + log sum_{w in S} exp(u~_w), S = {w_O} ∪ W_neg minus the
    negatives equal to w_O, u~_w = v'_w . h - log(K P_n(w))."""
    rows, _, keep = sampling.pair_terms(w_O, fields["negatives"])
    u = params["W_out"][rows] @ h - consts["log_kpn"][rows].astype(h.dtype)
    return masked_logsumexp(u, keep) - u[0]


def rule(params, h_BxHxN, targets_BxT, w_BxHxT, fields, consts, model, curvature=False):
    """Scores u~ (G, Hg, S) of each group's candidate rows, one softmax per pair over its
    1 + K columns, errors e (G, Hg, S) summed back per column, EH = e V, dE/dV = e^T H."""
    if curvature:
        raise ValueError("the sampled softmax has no row curvature (row damping)")
    W_out = params["W_out"]
    B, H, N = h_BxHxN.shape
    T = targets_BxT.shape[1]
    negatives = fields["negatives"]
    c = sampling.candidates(h_BxHxN, targets_BxT, w_BxHxT, negatives)
    G = c.h.shape[0]
    u, v_GxSxN = shared_scores(W_out, c.h, c.rows)
    u = u - consts["log_kpn"][c.rows][:, None, :].astype(u.dtype)
    if negatives.ndim == 2:  # shared: pair (b, h, t) takes column t and the K columns T..
        K = negatives.shape[1]
        u_neg = jnp.broadcast_to(u[:, :, None, T:], (B, H, T, K))
        logits = jnp.concatenate([u[:, :, :T, None], u_neg], axis=3)
        keep = targets_BxT[:, :, None] != negatives[:, None, :]  # not an accidental hit
        keep = jnp.concatenate([jnp.ones((B, T, 1), bool), keep], axis=2)  # (B, T, 1 + K)
        mask = w_BxHxT[..., None] & keep[:, None]
        E, e = pair_softmax(logits, mask)
        e_GxHxS = jnp.concatenate([e[..., 0], e[..., 1:].sum(2)], axis=2)
    else:  # per pair: group (b, h) holds pair t's 1 + K columns at t (1 + K) ..
        K = negatives.shape[-1]
        logits = u.reshape(G, 1, T, 1 + K)
        E, e = pair_softmax(logits, c.w.reshape(G, 1, T, 1 + K))
        e_GxHxS = e.reshape(G, 1, T * (1 + K))
    used = (c.w > 0).any(1)
    EH, grad = shared_grads(e_GxHxS, c.h, v_GxSxN, c.rows, used, W_out.shape[0])
    return OutputRule(E, EH.reshape(B, H, N), {"W_out": grad})


LAYER = register("sampled_softmax", sampling.layer(loss, rule))
