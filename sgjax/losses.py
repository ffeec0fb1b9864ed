"""The paper's loss E for every (architecture x output layer), per example, pure.

A loss is ``loss(params, example) -> scalar`` written for ONE example in the paper's symbols
(PAPER.md) and batched with ``jax.vmap``; :func:`batch_loss` is the **sum** over the batch
(not the mean), so that one SGD step with learning rate eta on the batch applies, for every
example, exactly the paper's update ``v <- v - eta * dE/dv``: word2vec's per-example
semantics summed over the batch.

Examples are fixed-shape records (dicts of arrays), so that every batch has one shape and one
compiled program serves all of them. With ``C = 2 * window`` context slots, ``K`` negatives
and ``L`` the longest Huffman path:

========== ============================== ==============================================
field      skip-gram                      CBOW
========== ============================== ==============================================
center     ()   int: the input word w_I   ()   int: the target word w_O
context    (C,) int: output words w_O,c   (C,) int: input (context) words w_I,c
mask       (C,) 0/1: real context slots   (C,) 0/1: real context slots
negatives  (C, K) int, one set per pair,  (K,) int
           or (K,) shared by the C panels
points     (C, L) int: inner nodes        (L,) int: inner nodes n(w_O, j)
codes      (C, L) 0/1: branch codes       (L,) 0/1
path_mask  (C, L) 0/1: real path entries  (L,) 0/1
========== ============================== ==============================================

Skip-gram negatives come in two shapes, told apart by their rank: ``(C, K)`` draws one set
per (centre, context) pair, as word2vec.c and gensim do; ``(K,)`` (``model.shared_negatives``)
draws one set per centre word, shared by its C output panels. Since the paper's skip-gram
has the same h = v_{w_I} in every panel, the shared form is the per-pair loss with the set
repeated in each panel, and its rule needs K dot products per centre instead of C * K
(a negative equal to a panel's positive word is skipped in that panel only).

Only the fields of the chosen output layer need be present. Padding never contributes:
masked context slots, masked path entries and whole padded examples (``mask`` all zero) add
exactly 0 to E and to its gradient. A negative equal to its positive word is skipped, as in
word2vec.c and gensim.

Skip-gram follows the paper's formulation by default: h = v_{w_I} of the centre word
predicts each context word (C output panels sharing W'). word2vec.c and gensim train the
mirror image (each context word's input vector predicts the centre); both are equal in
expectation. ``skipgram_input="context"`` (``model.skipgram_input``) trains that mirror
image: the record is the same except that the Huffman fields are the centre's path (L,),
as for CBOW, and a negative is skipped where it equals the centre word. With negatives
shared per centre it is the fast skip-gram of this kit: each pair keeps its own input
vector, so sharing the K negatives costs no accuracy (measured in BENCHMARKS.md), unlike
sharing them in the paper's form, where the one input vector h sees only K distinct
negatives instead of C * K.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from sgjax.params import ARCHITECTURES, OUTPUTS, Params

Example = dict[str, jax.Array]
#: CBOW input updates (:func:`cbow_hidden`): the paper's EH / C, or word2vec.c's EH.
CBOW_UPDATES = ("paper", "word2vec")
#: Skip-gram's input word: the paper's centre word (h = v_{w_I} predicts each context word)
#: or, as word2vec.c and gensim train, each context word (its vector predicts the centre).
SKIPGRAM_INPUTS = ("center", "context")
LossFn = Callable[[Params, Example], jax.Array]


def _f(x: jax.Array, like: jax.Array) -> jax.Array:
    return x.astype(like.dtype)


def cbow_hidden(
    W: jax.Array, context: jax.Array, mask: jax.Array, mean: bool = True, update: str = "paper"
):
    """CBOW hidden layer h = (1/C) sum_c v_{w_I,c} over the C real context words.

    W: (V, N); context, mask: (C,). Returns (h (N,), C as float). ``mean=False`` uses the sum
    (word2vec.c's ``-cbow 1 -cbow_mean 0``). An example with C = 0 gets h = 0.

    ``update`` (``model.cbow_update``, mean only) fixes dE/dv_{w_I,c}: ``"paper"`` the true
    gradient EH / C; ``"word2vec"`` the whole EH for every context word, as word2vec.c and
    gensim (cbow_mean=1) update. The latter is the gradient of this same E with a
    straight-through h: its value is the mean, its derivative w.r.t. each v_{w_I,c} is 1.
    """
    CBOW_UPDATES.index(update)
    m = _f(mask, W)
    s = jnp.einsum("c,cn->n", m, W[context])
    C = m.sum()
    if not mean:
        return s, C
    h = s / jnp.maximum(C, 1.0)
    if update == "word2vec":
        h = h + (s - jax.lax.stop_gradient(s)) * (1.0 - 1.0 / jnp.maximum(C, 1.0))
    return h, C


# --------------------------------------------------------------------------------------------
# Skip-gram: h = v_{w_I}, one output panel per context word.


def skipgram_softmax(params: Params, ex: Example) -> jax.Array:
    """E = -sum_c u_{j*_c} + C * log sum_{j'} exp(u_{j'}),  u = W_out @ h  (eqs. for SG softmax).

    h: (N,) = v_{w_I};  u: (V,).
    """
    h = params["W"][ex["center"]]
    u = params["W_out"] @ h
    m = _f(ex["mask"], h)
    return -(m * u[ex["context"]]).sum() + m.sum() * jax.nn.logsumexp(u)


def skipgram_negative(params: Params, ex: Example) -> jax.Array:
    """E = sum_c [ -log s(v'_{w_O,c} . h) - sum_k log s(-v'_{w_k} . h) ],  h = v_{w_I}.

    u_pos: (C,), u_neg: (C, K). Negatives (C, K): a set per panel; (K,): one set shared by
    all C panels (the same sum with the set repeated in every panel).
    """
    h = params["W"][ex["center"]]
    m = _f(ex["mask"], h)
    neg = ex["negatives"]
    if neg.ndim == 1:  # shared by the panels
        neg = jnp.broadcast_to(neg, ex["context"].shape + neg.shape)
    u_pos = params["W_out"][ex["context"]] @ h
    u_neg = params["W_out"][neg] @ h
    nm = m[:, None] * _f(neg != ex["context"][:, None], h)
    return -(m * jax.nn.log_sigmoid(u_pos)).sum() - (nm * jax.nn.log_sigmoid(-u_neg)).sum()


def skipgram_hierarchical(params: Params, ex: Example) -> jax.Array:
    """E = -sum_c sum_j log s([[.]] v'_{n(w_O,c, j)} . h),  [[.]] = 1 - 2 * code.

    u: (C, L) over the inner nodes on each context word's path.
    """
    h = params["W"][ex["center"]]
    u = params["W_out"][ex["points"]] @ h
    sign = 1.0 - 2.0 * _f(ex["codes"], h)
    pm = _f(ex["path_mask"], h) * _f(ex["mask"], h)[:, None]
    return -(pm * jax.nn.log_sigmoid(sign * u)).sum()


# --------------------------------------------------------------------------------------------
# Skip-gram, word2vec.c's orientation (``skipgram_input="context"``): every real context word
# w_{I,c} is an input, h_c = v_{w_I,c}, and predicts the centre word w_O = ``center``. The
# same (centre, context) pairs as above, each trained the other way round; equal to the
# paper's form in expectation. HS paths are the centre's (``points`` (L,), like CBOW's).


def skipgram_context_softmax(params: Params, ex: Example) -> jax.Array:
    """E = sum_c [ -u_{c,j*} + log sum_{j'} exp(u_{c,j'}) ],  u_c = W_out @ h_c (C, V)."""
    H = params["W"][ex["context"]]
    u = H @ params["W_out"].T
    m = _f(ex["mask"], H)
    return (m * (jax.nn.logsumexp(u, axis=1) - u[:, ex["center"]])).sum()


def skipgram_context_negative(params: Params, ex: Example) -> jax.Array:
    """E = sum_c [ -log s(v'_{w_O} . h_c) - sum_k log s(-v'_{w_k} . h_c) ],  h_c = v_{w_I,c}.

    Negatives (C, K): a set per pair; (K,): one set shared by the C pairs of the centre
    (word2vec.c's loop with the set drawn once per centre). A negative equal to w_O is
    skipped.
    """
    H = params["W"][ex["context"]]
    m = _f(ex["mask"], H)
    neg = ex["negatives"]
    if neg.ndim == 1:  # shared by the pairs
        neg = jnp.broadcast_to(neg, ex["context"].shape + neg.shape)
    u_pos = H @ params["W_out"][ex["center"]]
    u_neg = jnp.einsum("cn,ckn->ck", H, params["W_out"][neg])
    nm = m[:, None] * _f(neg != ex["center"], H)
    return -(m * jax.nn.log_sigmoid(u_pos)).sum() - (nm * jax.nn.log_sigmoid(-u_neg)).sum()


def skipgram_context_hierarchical(params: Params, ex: Example) -> jax.Array:
    """E = -sum_c sum_j log s([[.]] v'_{n(w_O, j)} . h_c): u (C, L) on the centre's path."""
    H = params["W"][ex["context"]]
    u = H @ params["W_out"][ex["points"]].T
    sign = 1.0 - 2.0 * _f(ex["codes"], H)
    pm = _f(ex["mask"], H)[:, None] * _f(ex["path_mask"], H)[None, :]
    return -(pm * jax.nn.log_sigmoid(sign * u)).sum()


# --------------------------------------------------------------------------------------------
# CBOW: h = mean of the context input vectors predicts the target w_O.


def _cbow(output: str, cbow_mean: bool, cbow_update: str = "paper") -> LossFn:
    def cbow_softmax(params: Params, ex: Example) -> jax.Array:
        """E = -u_{j*} + log sum_{j'} exp(u_{j'}),  u = W_out @ h,  h = mean_c v_{w_I,c}."""
        h, C = cbow_hidden(params["W"], ex["context"], ex["mask"], cbow_mean, cbow_update)
        u = params["W_out"] @ h
        return (C > 0) * (-u[ex["center"]] + jax.nn.logsumexp(u))

    def cbow_negative(params: Params, ex: Example) -> jax.Array:
        """E = -log s(v'_{w_O} . h) - sum_k log s(-v'_{w_k} . h)."""
        h, C = cbow_hidden(params["W"], ex["context"], ex["mask"], cbow_mean, cbow_update)
        u_pos = params["W_out"][ex["center"]] @ h
        u_neg = params["W_out"][ex["negatives"]] @ h
        nm = _f(ex["negatives"] != ex["center"], h)
        return (C > 0) * (-jax.nn.log_sigmoid(u_pos) - (nm * jax.nn.log_sigmoid(-u_neg)).sum())

    def cbow_hierarchical(params: Params, ex: Example) -> jax.Array:
        """E = -sum_j log s([[.]] v'_{n(w_O, j)} . h)."""
        h, C = cbow_hidden(params["W"], ex["context"], ex["mask"], cbow_mean, cbow_update)
        u = params["W_out"][ex["points"]] @ h
        sign = 1.0 - 2.0 * _f(ex["codes"], h)
        return (C > 0) * -(_f(ex["path_mask"], h) * jax.nn.log_sigmoid(sign * u)).sum()

    return {
        "softmax": cbow_softmax,
        "negative": cbow_negative,
        "hierarchical": cbow_hierarchical,
    }[output]


_SKIPGRAM = {
    "softmax": skipgram_softmax,
    "negative": skipgram_negative,
    "hierarchical": skipgram_hierarchical,
}
_SKIPGRAM_CONTEXT = {
    "softmax": skipgram_context_softmax,
    "negative": skipgram_context_negative,
    "hierarchical": skipgram_context_hierarchical,
}


def check_model(architecture: str, output: str) -> None:
    """Raise a ValueError naming the valid choices for an unknown architecture or output."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}"
        )
    if output not in OUTPUTS:
        raise ValueError(f"unknown output layer {output!r}; valid: {', '.join(OUTPUTS)}")


def check_skipgram_input(skipgram_input: str) -> None:
    if skipgram_input not in SKIPGRAM_INPUTS:
        raise ValueError(
            f"unknown skipgram_input {skipgram_input!r}; valid: {', '.join(SKIPGRAM_INPUTS)}"
        )


def example_loss(
    architecture: str,
    output: str,
    cbow_mean: bool = True,
    cbow_update: str = "paper",
    skipgram_input: str = "center",
) -> LossFn:
    """The per-example loss E for one (architecture, output layer) combination;
    ``skipgram_input`` picks skip-gram's orientation (:data:`SKIPGRAM_INPUTS`)."""
    check_model(architecture, output)
    check_skipgram_input(skipgram_input)
    if architecture == "skipgram":
        return (_SKIPGRAM if skipgram_input == "center" else _SKIPGRAM_CONTEXT)[output]
    return _cbow(output, cbow_mean, cbow_update)


def batch_loss(
    params: Params,
    batch: Example,
    architecture: str,
    output: str,
    cbow_mean: bool = True,
    cbow_update: str = "paper",
    skipgram_input: str = "center",
) -> jax.Array:
    """Sum over the batch of E (vmap of :func:`example_loss` over the leading axis)."""
    loss = example_loss(architecture, output, cbow_mean, cbow_update, skipgram_input)
    per_example = jax.vmap(loss, in_axes=(None, 0))
    return per_example(params, batch).sum()


def output_fields(architecture: str, output: str) -> tuple[str, ...]:
    """Fields an example of this combination carries (see the module docstring)."""
    check_model(architecture, output)
    extra: dict[str, Any] = {
        "softmax": (),
        "negative": ("negatives",),
        "hierarchical": ("points", "codes", "path_mask"),
    }
    return ("center", "context", "mask", *extra[output])
