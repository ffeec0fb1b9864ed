"""The paper's explicit gradient rules (e, EI, EH, per-row updates), batched and factored.

Each rule returns ``(E, grads)`` for a batch: E summed over the batch (as
:func:`sgjax.losses.batch_loss`) and ``grads`` a pytree shaped like the params whose leaves
are :class:`sgjax.sparse.RowGrads` (the few rows an update touches; entries that are
padding, masked or skipped carry the out-of-range row index R = table rows, so that a
scatter with ``mode="drop"`` ignores them and a row-sparse optimizer never "touches" a row
that no real example used) or, for the full
softmax's W_out, a dense (V, N) array computed as one matrix product ``EI^T H``. No code path
builds a per-example V x N array.

The rules are written once for both architectures by splitting the network in two halves:

- the *input side* gives the hidden layer h (B, N) and, from EH = dE/dh, the rows of W:
  skip-gram ``h = v_{w_I}`` and ``dE/dv_{w_I} = EH``; CBOW ``h = (1/C) sum_c v_{w_I,c}`` and
  ``dE/dv_{w_I,c} = EH / C`` for every real context word.
- the *output side* gives E, the prediction errors and EH from h:
  full softmax: ``e = y - t`` (B, V), ``EI = sum_c e_c``, ``dE/dW_out = EI^T h``,
  ``EH = EI W_out``; negative sampling and hierarchical softmax are sums of binary logistic
  terms ``-log s(+-v'_j . h)`` over a per-example set of S output rows j (skip-gram: the
  C panels' rows flattened, since every panel shares h; with negatives shared by the panels
  the C positives and the K negatives once each, a negative weighted by the number of panels
  it serves: S = C + K rows instead of C * (1 + K)), with error
  ``e_j = s(v'_j . h) - t_j``, row update ``dE/dv'_j = e_j h`` and ``EH = sum_j e_j v'_j``.

Skip-gram in word2vec.c's orientation (``skipgram_input="context"``) has C hidden vectors
per example, the context words' h_c = v_{w_I,c}, each predicting the centre word: its output
rows are the centre's (its Huffman path; the centre and negatives drawn once per centre)
and shared by the C pairs, so the dot products are batched matrix products
``(C x N) (N x S)`` (:func:`shared_binary_output`); with negatives drawn per pair, or the
full softmax, each pair is an example of its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgjax.losses import Example, check_model, check_skipgram_input
from sgjax.params import Params
from sgjax.sparse import RowGrads, densify_tree, row_totals


def _f(x: jax.Array, like: jax.Array) -> jax.Array:
    return x.astype(like.dtype)


# --------------------------------------------------------------------------------------------
# Input side: h and the rows of W.


def hidden(W: jax.Array, batch: Example, architecture: str, cbow_mean: bool = True):
    """Hidden layer h_BxN and the per-example weight of the output terms.

    Skip-gram: h = v_{w_I}; CBOW: h = mean (or sum) of the real context input vectors.
    Returns ``(h_BxN, valid_B)``, ``valid`` = 0 for a CBOW example without context words.
    """
    if architecture == "skipgram":
        h_BxN = W[batch["center"]]
        return h_BxN, jnp.ones(h_BxN.shape[:1], W.dtype)
    m_BxC = _f(batch["mask"], W)
    s_BxN = jnp.einsum("bc,bcn->bn", m_BxC, W[batch["context"]])
    C_B = m_BxC.sum(1)
    h_BxN = s_BxN / jnp.maximum(C_B, 1.0)[:, None] if cbow_mean else s_BxN
    return h_BxN, _f(C_B > 0, W)


def input_rows(
    EH_BxN: jax.Array,
    batch: Example,
    architecture: str,
    num_rows: int,
    cbow_mean: bool = True,
    cbow_update: str = "paper",
) -> RowGrads:
    """dE/dW as rows: skip-gram ``dE/dv_{w_I} = EH``; CBOW ``dE/dv_{w_I,c} = EH / C``
    (``cbow_update="word2vec"``: EH, see :func:`sgjax.losses.cbow_hidden`).

    Padding entries get the out-of-range index ``num_rows`` (= V) and are dropped.
    """
    if architecture == "skipgram":
        index_B = jnp.where(batch["mask"].any(1), batch["center"], num_rows)
        return RowGrads(index_B.astype(jnp.int32), EH_BxN)
    m_BxC = _f(batch["mask"], EH_BxN)
    divide = cbow_mean and cbow_update == "paper"
    scale_BxC = m_BxC / jnp.maximum(m_BxC.sum(1), 1.0)[:, None] if divide else m_BxC
    rows_BxCxN = scale_BxC[..., None] * EH_BxN[:, None, :]
    index_BxC = jnp.where(batch["mask"], batch["context"], num_rows)
    return RowGrads(
        index_BxC.reshape(-1).astype(jnp.int32), rows_BxCxN.reshape(-1, EH_BxN.shape[1])
    )


# --------------------------------------------------------------------------------------------
# Output side.


def binary_targets(batch: Example, architecture: str, output: str):
    """The per-example binary logistic terms of negative sampling / hierarchical softmax.

    Returns ``(rows_BxS, t_BxS, w_BxS)``: output rows j, targets t_j (1 for w_O and for
    [[.]] = +1 branches, i.e. code 0; 0 for negatives and code-1 branches) and weights (0 on
    padding, on skipped negatives and on masked context slots).
    """
    if output == "negative":
        if architecture == "skipgram" and batch["negatives"].ndim == 2:
            # negatives shared by the C panels of a centre: S = C + K rows, the C positives
            # (weight: the mask) then the K negatives, each weighted by the number of real
            # panels it is not the positive word of (the per-pair loss with the set repeated)
            ctx_BxC, neg_BxK = batch["context"], batch["negatives"]
            m_BxC = batch["mask"].astype(jnp.bool_)
            rows = jnp.concatenate([ctx_BxC, neg_BxK], axis=1)
            B, C, K = *ctx_BxC.shape, neg_BxK.shape[1]
            t = jnp.concatenate([jnp.ones((B, C), jnp.float32), jnp.zeros((B, K), jnp.float32)], 1)
            n_BxK = (m_BxC[:, :, None] & (ctx_BxC[:, :, None] != neg_BxK[:, None, :])).sum(1)
            w = jnp.concatenate([m_BxC.astype(jnp.float32), n_BxK.astype(jnp.float32)], 1)
            return rows.astype(jnp.int32), t, w
        if architecture == "skipgram":
            pos_BxCx1 = batch["context"][..., None]
            rows = jnp.concatenate([pos_BxCx1, batch["negatives"]], axis=-1)  # (B, C, 1+K)
            m = batch["mask"][..., None].astype(jnp.float32)
        else:
            pos_Bx1 = batch["center"][:, None]
            rows = jnp.concatenate([pos_Bx1, batch["negatives"]], axis=-1)  # (B, 1+K)
            m = jnp.ones(rows.shape[:1] + (1,), jnp.float32)
        pos = rows[..., :1]
        t = jnp.zeros(rows.shape, jnp.float32).at[..., 0].set(1.0)
        # a negative equal to its positive word is skipped; the positive itself always counts
        w = m * jnp.where(t > 0, 1.0, (rows != pos).astype(jnp.float32))
    elif output == "hierarchical":
        rows = batch["points"]
        t = 1.0 - batch["codes"].astype(jnp.float32)
        w = batch["path_mask"].astype(jnp.float32)
        if architecture == "skipgram":
            w = w * batch["mask"][..., None].astype(jnp.float32)
    else:
        raise ValueError(f"output {output!r} has no binary targets")
    B = rows.shape[0]
    return rows.reshape(B, -1).astype(jnp.int32), t.reshape(B, -1), w.reshape(B, -1)


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


def binary_output(
    W_out: jax.Array, h_BxN: jax.Array, rows_BxS, t_BxS, w_BxS, curvature: bool = False
):
    """Negative sampling / hierarchical softmax output side.

    u_BxS = v'_j . h;  E = -sum w log s((2t-1) u);  e_BxS = w (s(u) - t);
    dE/dv'_j = e_j h (rows);  EH_BxN = sum_j e_j v'_j.  Returns ``(E, RowGrads, EH_BxN)``;
    with ``curvature`` also ``(k_out (B*S,), k_h (B,))``: the curvature of each output-row
    entry along its row, ``w s'(u) |h|^2``, and of each example along h, sum_j w s'(u_j)
    |v'_j|^2 (:func:`damp_rows`).
    """
    v_BxSxN = W_out[rows_BxS]
    u_BxS = jnp.einsum("bsn,bn->bs", v_BxSxN, h_BxN)
    w = w_BxS.astype(u_BxS.dtype)
    E, e_BxS = logistic_terms(u_BxS, t_BxS, w)
    EH_BxN = jnp.einsum("bs,bsn->bn", e_BxS, v_BxSxN)
    rows_BxSxN = e_BxS[..., None] * h_BxN[:, None, :]
    index_BxS = jnp.where(w > 0, rows_BxS, W_out.shape[0])  # padding -> out of range, dropped
    grad = RowGrads(index_BxS.reshape(-1), rows_BxSxN.reshape(-1, h_BxN.shape[1]))
    if not curvature:
        return E, grad, EH_BxN
    k_BxS = term_curvature(e_BxS, w)
    k_out = (k_BxS * (h_BxN * h_BxN).sum(-1)[:, None]).reshape(-1)
    k_h = (k_BxS * (v_BxSxN * v_BxSxN).sum(-1)).sum(-1)
    return E, grad, EH_BxN, (k_out, k_h)


def softmax_output(W_out: jax.Array, h_BxN: jax.Array, batch: Example, architecture: str, valid_B):
    """Full softmax output side, as batched matrix products.

    u_BxV = h W_out^T,  y = softmax(u).  Skip-gram: EI = sum_c e_c = C y - (counts of the
    context words);  CBOW: EI = e = y - t.  dE/dW_out = EI^T h (V, N);  EH = EI W_out (B, N).
    Returns ``(E, dW_out, EH_BxN)``.
    """
    u_BxV = h_BxN @ W_out.T
    logZ_B = jax.nn.logsumexp(u_BxV, axis=1)
    y_BxV = jnp.exp(u_BxV - logZ_B[:, None])
    B = h_BxN.shape[0]
    if architecture == "skipgram":
        m_BxC = _f(batch["mask"], h_BxN)
        b_BxC = jnp.broadcast_to(jnp.arange(B)[:, None], m_BxC.shape)
        t_BxV = jnp.zeros_like(u_BxV).at[b_BxC, batch["context"]].add(m_BxC)
        C_B = m_BxC.sum(1)
    else:
        t_BxV = jax.nn.one_hot(batch["center"], u_BxV.shape[1], dtype=u_BxV.dtype)
        t_BxV = t_BxV * valid_B[:, None]
        C_B = valid_B
    EI_BxV = C_B[:, None] * y_BxV - t_BxV
    E = (C_B * logZ_B).sum() - (t_BxV * u_BxV).sum()
    return E, EI_BxV.T @ h_BxN, EI_BxV @ W_out


# --------------------------------------------------------------------------------------------
# Skip-gram in word2vec.c's orientation: the C context words' vectors h_c are the inputs.


def shared_binary_output(
    W_out: jax.Array, H_BxCxN: jax.Array, rows_BxS, t_BxS, w_BxCxS, curvature: bool = False
):
    """:func:`binary_output` for C hidden vectors per example that share the S output rows
    (the centre's path, or the centre and negatives drawn once per centre):
    u_BxCxS = h_c . v'_j as batched matrix products, e = w (s(u) - t),
    dE/dv'_j = sum_c e_cj h_c (one row per j), EH_c = sum_j e_cj v'_j.
    Returns ``(E, RowGrads, EH_BxCxN)``; a row no real pair uses gets the out-of-range index.
    With ``curvature`` also ``(k_out (B*S,), k_h (B, C))``: sum_c w s'(u_cj) |h_c|^2 per
    output row entry, sum_j w s'(u_cj) |v'_j|^2 per hidden vector (:func:`damp_rows`).
    """
    v_BxSxN = W_out[rows_BxS]
    u_BxCxS = jnp.einsum("bcn,bsn->bcs", H_BxCxN, v_BxSxN)
    w = w_BxCxS if w_BxCxS.dtype == jnp.bool_ else w_BxCxS.astype(u_BxCxS.dtype)
    E, e_BxCxS = logistic_terms(u_BxCxS, jnp.broadcast_to(t_BxS[:, None, :], w.shape), w)
    EH_BxCxN = jnp.einsum("bcs,bsn->bcn", e_BxCxS, v_BxSxN)
    # e^T as its own array: XLA would fold a plain transpose into the dot, whose transposed
    # operand its CPU backend then runs on a slow generic path (3x the other two products)
    e_BxSxC = jax.lax.optimization_barrier(jnp.swapaxes(e_BxCxS, 1, 2))
    rows_BxSxN = jnp.einsum("bsc,bcn->bsn", e_BxSxC, H_BxCxN)
    index_BxS = jnp.where((w > 0).any(1), rows_BxS, W_out.shape[0])
    grad = RowGrads(
        index_BxS.reshape(-1).astype(jnp.int32), rows_BxSxN.reshape(-1, H_BxCxN.shape[2])
    )
    if not curvature:
        return E, grad, EH_BxCxN
    k_BxCxS = term_curvature(e_BxCxS, w)
    k_out = jnp.einsum("bcs,bc->bs", k_BxCxS, (H_BxCxN * H_BxCxN).sum(-1)).reshape(-1)
    k_h = jnp.einsum("bcs,bs->bc", k_BxCxS, (v_BxSxN * v_BxSxN).sum(-1))
    return E, grad, EH_BxCxN, (k_out, k_h)


def _skipgram_context_rule(params: Params, batch: Example, output: str, curvature: bool = False):
    """``skipgram_input="context"`` (:mod:`sgjax.losses`): every real (centre, context) pair
    is an example whose input is the context word (h_c = v_{w_I,c}, dE/dv_{w_I,c} = EH_c)
    and whose output word is the centre. Rows the C pairs of a centre share (its Huffman
    path; its centre and negatives drawn per centre) go through :func:`shared_binary_output`;
    otherwise the B x C pairs are flattened into examples of one input word each."""
    W, W_out = params["W"], params["W_out"]
    ctx_BxC, m_BxC, center_B = batch["context"], batch["mask"].astype(jnp.bool_), batch["center"]
    B, C = ctx_BxC.shape
    H_BxCxN = W[ctx_BxC]
    N = H_BxCxN.shape[2]
    if output == "hierarchical" or (output == "negative" and batch["negatives"].ndim == 2):
        if output == "hierarchical":
            rows = batch["points"]
            t = 1.0 - batch["codes"].astype(jnp.float32)
            w_BxS = batch["path_mask"].astype(jnp.bool_)
        else:
            neg_BxK = batch["negatives"]
            rows = jnp.concatenate([center_B[:, None], neg_BxK], axis=1)
            t = jnp.zeros(rows.shape, jnp.float32).at[:, 0].set(1.0)
            w_BxS = jnp.concatenate(
                [jnp.ones((B, 1), jnp.bool_), neg_BxK != center_B[:, None]], axis=1
            )  # a negative equal to the centre is skipped
        w = m_BxC[:, :, None] & w_BxS[:, None, :]
        out = shared_binary_output(W_out, H_BxCxN, rows.astype(jnp.int32), t, w, curvature)
    else:  # one example per (centre, context) pair
        h_PxN = H_BxCxN.reshape(B * C, N)
        center_P = jnp.repeat(center_B, C)
        m_P = m_BxC.reshape(-1)
        if output == "negative":
            neg_PxK = batch["negatives"].reshape(B * C, -1)
            rows = jnp.concatenate([center_P[:, None], neg_PxK], axis=1).astype(jnp.int32)
            t = jnp.zeros(rows.shape, jnp.float32).at[:, 0].set(1.0)
            w = m_P[:, None] & jnp.concatenate(
                [jnp.ones((B * C, 1), jnp.bool_), neg_PxK != center_P[:, None]], axis=1
            )
            out = binary_output(W_out, h_PxN, rows, t, w.astype(jnp.float32), curvature)
        else:  # full softmax: each pair is a CBOW example with one context word
            valid = _f(m_P, h_PxN)
            out = softmax_output(W_out, h_PxN, {"center": center_P}, "cbow", valid)
    E, g_out, EH = out[:3]
    index = jnp.where(m_BxC, ctx_BxC, W.shape[0]).reshape(-1).astype(jnp.int32)
    grads = {"W": RowGrads(index, EH.reshape(B * C, N)), "W_out": g_out}
    if not curvature:
        return E, grads
    k_out, k_h = out[3]
    return E, grads, {"W": k_h.reshape(-1), "W_out": k_out}


# --------------------------------------------------------------------------------------------


def value_and_rule(
    params: Params,
    batch: Example,
    architecture: str,
    output: str,
    cbow_mean: bool = True,
    cbow_update: str = "paper",
    skipgram_input: str = "center",
    curvature: bool = False,
) -> tuple:
    """E summed over the batch and the paper's explicit gradient, row-sparse where it is.

    Returns ``(E, {"W": RowGrads, "W_out": RowGrads or (V, N) array})``. With
    ``curvature`` (skip-gram with negative sampling or hierarchical softmax only) also the
    curvature of every row entry along its own row, ``{"W": (M_W,), "W_out": (M_out,)}``
    aligned with the RowGrads' entries: for an entry of gradient ``e_j x`` (x = h for an
    output row, x = v'_j for an input row), ``w s'(u_j) |x|^2`` summed over the entry's
    terms. :func:`damp_rows` turns them into per-row step sizes.
    """
    check_model(architecture, output)
    check_skipgram_input(skipgram_input)
    if curvature and (architecture != "skipgram" or output == "softmax"):
        raise ValueError(
            "row curvature is defined for skip-gram with negative sampling or hierarchical "
            f"softmax, not {architecture} with {output}"
        )
    if architecture == "skipgram" and skipgram_input == "context":
        return _skipgram_context_rule(params, batch, output, curvature)
    W, W_out = params["W"], params["W_out"]
    h_BxN, valid_B = hidden(W, batch, architecture, cbow_mean)
    if output == "softmax":
        out = softmax_output(W_out, h_BxN, batch, architecture, valid_B)
    else:
        rows, t, w = binary_targets(batch, architecture, output)
        out = binary_output(W_out, h_BxN, rows, t, w * valid_B[:, None], curvature)
    E, g_out, EH_BxN = out[:3]
    g_in = input_rows(EH_BxN, batch, architecture, W.shape[0], cbow_mean, cbow_update)
    if not curvature:
        return E, {"W": g_in, "W_out": g_out}
    k_out, k_h = out[3]  # skip-gram: one input row per example (h = v_{w_I})
    return E, {"W": g_in, "W_out": g_out}, {"W": k_h, "W_out": k_out}


def damp_rows(grads: dict, curvature: dict, num_rows: dict, lr: jax.Array) -> dict:
    """Scale each row's summed minibatch update to what sequential SGD would move it.

    A minibatch applies the n updates of a row, computed at the same parameters, at once:
    eta sum_i g_i. word2vec.c applies them one after another, and each shrinks the errors
    of the next. Along the row's own direction the loss has curvature k_i per entry
    (``value_and_rule(..., curvature=True)``), so with x = eta sum_i k_i the sequential
    updates add up to about ``eta sum_i g_i (1 - exp(-x)) / x`` (exact for n equal
    one-dimensional steps in the limit of small eta k_i): rows with x << 1, i.e. all but
    the rows that a batch updates many times over, keep their update; a row with x >> 1
    moves by about ``sum_i g_i / sum_i k_i``, a Newton step, and so never overshoots, which
    is how a large batch diverges. ``num_rows``: rows R of each table; padding entries
    (index >= R) are left as they are (they are dropped by the scatter anyway)."""
    out = {}
    for k, g in grads.items():
        if not isinstance(g, RowGrads):
            out[k] = g
            continue
        x = lr * row_totals(g.index, curvature[k].astype(g.value.dtype), num_rows[k])
        scale = jnp.where(x > 1e-6, -jnp.expm1(-x) / jnp.maximum(x, 1e-6), 1.0 - 0.5 * x)
        out[k] = RowGrads(g.index, g.value * scale[:, None])
    return out


def explicit_grads(
    params: Params,
    batch: Example,
    architecture: str,
    output: str,
    cbow_mean: bool = True,
    cbow_update: str = "paper",
    skipgram_input: str = "center",
) -> Params:
    """The explicit rule as a dense pytree like the params (rows scatter-added into zeros)."""
    _, grads = value_and_rule(
        params, batch, architecture, output, cbow_mean, cbow_update, skipgram_input
    )
    return densify_tree(grads, params)
