"""Sampled output rows: the K noise words that negative sampling, NCE and the sampled
softmax draw, and the candidate rows they score.

Negatives are drawn i.i.d. from P_n(w) ∝ count(w)^ns_exponent (:mod:`sgjax.noise`) on the
device, one set of K per (hidden, output word) pair as word2vec.c draws them
(``negatives`` (B, H, T, K), scope ``"pair"``) or, with ``model.shared_negatives``, one set
per example shared by its pairs ((B, K), scope ``"example"``). A negative equal to the
pair's output word is skipped, as in word2vec.c and gensim.

:func:`candidates` lays a batch's rows out for :func:`sgjax.outputs.logistic.logistic_rows`:
shared negatives give one group per example whose H hidden vectors score the T output words
and the K negatives once each (S = T + K rows); per-pair negatives give one group per hidden
vector with its T x (1 + K) rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.noise import noise_sampler, noise_table, sample_negatives
from sgjax.outputs.base import OutputLayer, const


def prepare(vocab: Any, model: Any) -> dict:
    """The noise sampler of P_n and ``log_kpn`` (V,): log(K P_n(w)), the log expected count
    of w among K draws (NCE's and the sampled softmax's correction)."""
    if model.negatives < 1:
        raise ValueError(
            f"output layer {model.output!r} needs negatives >= 1, got {model.negatives}"
        )
    cdf = noise_table(vocab, model.ns_exponent)
    p = np.diff(np.asarray(cdf, np.float64), prepend=0.0) / float(np.asarray(cdf)[-1])
    log_kpn = np.log(model.negatives * np.maximum(p, 1e-30))
    return {"noise": noise_sampler(cdf), "log_kpn": jnp.asarray(log_kpn, jnp.float32)}


def scopes(model: Any) -> dict[str, str]:
    return {"negatives": "example" if model.shared_negatives else "pair"}


def complete(key: jax.Array, targets_BxT: jax.Array, H: int, consts: dict, model: Any) -> dict:
    """``negatives``: (B, K) shared, else (B, H, T, K), i.i.d. from the noise sampler."""
    B, T = targets_BxT.shape
    shape = (B, model.negatives) if model.shared_negatives else (B, H, T, model.negatives)
    return {"negatives": sample_negatives(key, const(consts, "noise", model), shape)}


def pair_terms(w_O: jax.Array, negatives_K: jax.Array):
    """One pair's rows ``[w_O, neg_1..neg_K]``, targets t (1, 0, ..., 0) and 0/1 weights
    (a negative equal to w_O is skipped)."""
    rows = jnp.concatenate([w_O[None], negatives_K])
    t = jnp.zeros(rows.shape, jnp.float32).at[0].set(1.0)
    w = jnp.concatenate([jnp.ones((1,), bool), negatives_K != w_O])
    return rows, t, w


def layer(loss, rule, **flags) -> OutputLayer:
    """An output layer over ``W_out`` (V, N) whose fields are the negatives drawn here."""
    return OutputLayer(
        tables=lambda V: {"W_out": V},
        prepare=prepare,
        complete=complete,
        scopes=scopes,
        loss=loss,
        rule=rule,
        draws=True,
        **flags,
    )


class Candidates(NamedTuple):
    """A batch's candidate rows in groups: hidden vectors ``h`` (G, Hg, N) share ``rows``
    (G, S); ``t`` (G, S) is 1 on output words, 0 on negatives; ``w`` (G, Hg, S) weighs each
    (hidden, row) term: the number of the hidden vector's pairs it serves (0/1 for output
    words; a shared negative counts once per pair whose output word it is not)."""

    h: jax.Array
    rows: jax.Array
    t: jax.Array
    w: jax.Array


def candidates(h_BxHxN, targets_BxT, w_BxHxT, negatives) -> Candidates:
    B, H, N = h_BxHxN.shape
    T = targets_BxT.shape[1]
    if negatives.ndim == 2:  # shared by the example's pairs: S = T + K
        K = negatives.shape[1]
        rows = jnp.concatenate([targets_BxT, negatives], axis=1)
        t = jnp.concatenate([jnp.ones((B, T), jnp.float32), jnp.zeros((B, K), jnp.float32)], 1)
        hit_BxTxK = targets_BxT[:, :, None] != negatives[:, None, :]
        if T == 1:  # 0/1 weights
            w_neg = w_BxHxT[:, :, :1] & hit_BxTxK[:, None, 0, :]
            w = jnp.concatenate([w_BxHxT, w_neg], axis=2)
        else:  # a negative serves every pair whose output word it is not
            w_neg = jnp.einsum("bht,btk->bhk", w_BxHxT.astype(jnp.float32), hit_BxTxK)
            w = jnp.concatenate([w_BxHxT.astype(jnp.float32), w_neg], axis=2)
        return Candidates(h_BxHxN, rows.astype(jnp.int32), t, w)
    # one set per pair: a group per hidden vector, its T x (1 + K) rows
    K = negatives.shape[-1]
    G = B * H
    tg = jnp.broadcast_to(targets_BxT[:, None, :, None], (B, H, T, 1))
    rows = jnp.concatenate([tg, negatives], axis=3).reshape(G, T * (1 + K))
    t = jnp.zeros((G, T, 1 + K), jnp.float32).at[:, :, 0].set(1.0).reshape(G, -1)
    keep = jnp.concatenate([jnp.ones((B, H, T, 1), bool), negatives != tg], axis=3)
    w = (w_BxHxT[..., None] & keep).reshape(G, 1, T * (1 + K))
    return Candidates(h_BxHxN.reshape(G, 1, N), rows.astype(jnp.int32), t, w)
