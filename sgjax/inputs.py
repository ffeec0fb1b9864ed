"""Input sides: the paper's input -> hidden half, as records of pure functions.

An input side turns a batch's ``center`` (B,), ``context`` (B, C) and ``mask`` (B, C)
into H hidden vectors per example, ``h_BxHxN``, and T output words, ``targets_BxT``; every
hidden vector of an example predicts every output word of it (H x T pairs, see
:mod:`sgjax.outputs.base`). From the output layer's EH = dE/dh it gives the rows of W.

- ``skipgram``: the paper's skip-gram, h = v_{w_I} of the centre predicts each of its C
  context words (H = 1, T = C); dE/dv_{w_I} = EH.
- ``skipgram_context``: word2vec.c's and gensim's orientation, each context word's
  h_c = v_{w_I,c} predicts the centre (H = C, T = 1); dE/dv_{w_I,c} = EH_c. The same
  pairs trained the other way round: equal in expectation.
- ``cbow``: h = (1/C) sum_c v_{w_I,c} (``model.cbow_mean``; else the sum) predicts the
  centre (H = T = 1). ``model.cbow_update``: ``paper`` gives each context word the true
  gradient EH / C; ``word2vec`` the whole EH, as word2vec.c and gensim do: the gradient of
  the same E with a straight-through h (value: the mean; derivative w.r.t. each v_c: 1).

``INPUTS`` maps names to sides; :func:`register_input` adds one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from sgjax import registry
from sgjax.sparse import RowGrads

#: CBOW input updates: the paper's EH / C, or word2vec.c's EH.
CBOW_UPDATES = ("paper", "word2vec")
#: Skip-gram's input word: the paper's centre (``skipgram``) or each context word
#: (``skipgram_context``).
SKIPGRAM_INPUTS = ("center", "context")


class InputSide(NamedTuple):
    """An input side, as pure functions. ``model`` is a :class:`sgjax.model.ModelSpec`.

    - ``layout(C) -> (H, T)``: hidden vectors and output words per example (static).
    - ``hidden(W, batch, model) -> (h_BxHxN, hmask_BxH bool)``.
    - ``targets(batch) -> (targets_BxT, tmask_BxT bool)``.
    - ``input_rows(EH_BxHxN, batch, model, V) -> RowGrads``: dE/dW; padding entries
      carry the out-of-range index V.
    - ``input_curvature(k_h_BxH, batch, model) -> (M,)``: the curvature of each
      ``input_rows`` entry along its row (row damping; ``k_h`` that of each hidden vector
      along itself), or None where not defined (the rows are left undamped).
    - ``context_axis``: which of ``"hidden"``, ``"target"`` runs over the context slots
      (None: neither), so a batch can be cut by window (``train.window_buckets``).
    - ``defaults``: config values this side needs where the user sets none, as dotted keys
      (``{"optimizer.learning_rate": 0.05}``; see :mod:`sgjax.config_defaults`).
    """

    layout: Callable[[int], tuple[int, int]]
    hidden: Callable[..., tuple[jax.Array, jax.Array]]
    targets: Callable[[dict], tuple[jax.Array, jax.Array]]
    input_rows: Callable[..., RowGrads]
    input_curvature: Callable[..., jax.Array] | None
    context_axis: str | None
    defaults: Mapping[str, Any] = MappingProxyType({})


def _rows(index: jax.Array, value: jax.Array) -> RowGrads:
    return RowGrads(index.reshape(-1).astype(jnp.int32), value.reshape(-1, value.shape[-1]))


# --------------------------------------------------------------------------------------------
# skip-gram, the paper's orientation


def _sg_hidden(W, batch, model):
    """h = v_{w_I}: (B, 1, N); an example without context words is padding."""
    return W[batch["center"]][:, None, :], batch["mask"].any(1)[:, None]


def _sg_rows(EH_BxHxN, batch, model, V):
    """dE/dv_{w_I} = EH, one entry per example."""
    index = jnp.where(batch["mask"].any(1), batch["center"], V)
    return _rows(index, EH_BxHxN[:, 0])


SKIPGRAM = InputSide(
    layout=lambda C: (1, C),
    hidden=_sg_hidden,
    targets=lambda batch: (batch["context"], batch["mask"].astype(bool)),
    input_rows=_sg_rows,
    input_curvature=lambda k_h, batch, model: k_h[:, 0],
    context_axis="target",
    # the C negatives of a centre's pairs shared lose accuracy in this orientation
    defaults={"model.shared_negatives": False},
)

# --------------------------------------------------------------------------------------------
# skip-gram, word2vec.c's orientation


def _centre_target(batch):
    center = batch["center"]
    return center[:, None], jnp.ones(center.shape + (1,), bool)


SKIPGRAM_CONTEXT = InputSide(
    layout=lambda C: (C, 1),
    hidden=lambda W, batch, model: (W[batch["context"]], batch["mask"].astype(bool)),
    targets=_centre_target,
    input_rows=lambda EH, batch, model, V: _rows(jnp.where(batch["mask"], batch["context"], V), EH),
    input_curvature=lambda k_h, batch, model: k_h.reshape(-1),
    context_axis="hidden",
)

# --------------------------------------------------------------------------------------------
# CBOW


def cbow_hidden(W, context_BxC, mask_BxC, mean: bool = True, update: str = "paper"):
    """h = (1/C) sum_c v_{w_I,c} over the real context words (B, N), and C (B,). With
    ``mean=False`` the sum; with ``update="word2vec"`` the straight-through h (above)."""
    m = mask_BxC.astype(W.dtype)
    s = jnp.einsum("bc,bcn->bn", m, W[context_BxC])
    C = m.sum(1)
    if not mean:
        return s, C
    inv = 1.0 / jnp.maximum(C, 1.0)[:, None]
    h = s * inv
    if update == "word2vec":
        h = h + (s - jax.lax.stop_gradient(s)) * (1.0 - inv)
    return h, C


def _cbow_hidden(W, batch, model):
    h, C = cbow_hidden(W, batch["context"], batch["mask"], model.cbow_mean, model.cbow_update)
    return h[:, None, :], (C > 0)[:, None]


def _cbow_rows(EH_BxHxN, batch, model, V):
    """dE/dv_{w_I,c} = EH / C (``paper``, mean) or EH, per real context slot."""
    m = batch["mask"].astype(EH_BxHxN.dtype)
    if model.cbow_mean and model.cbow_update == "paper":
        m = m / jnp.maximum(m.sum(1), 1.0)[:, None]
    rows = m[..., None] * EH_BxHxN[:, :1, :]
    return _rows(jnp.where(batch["mask"], batch["context"], V), rows)


def _cbow_curvature(k_h_BxH, batch, model):
    """Each context slot's curvature along its row: the trace of the row's Hessian of the
    loss whose gradient the update is, shared by the word's m slots of the example. With h
    = (1/C) sum_c v_c: m k_h / C^2 a slot for the paper's EH / C; m k_h for word2vec.c's
    EH to every slot (its straight-through h moves with each row as with all the example's
    rows, which move together) and for the sum. (By the row's own curvature, m k_h / C,
    CBOW NS at 16,384 centres a step stays 0.02 under gensim and diverges above lr 0.05:
    BENCHMARKS.md, "Large batches on a larger corpus".)"""
    mask = batch["mask"].astype(bool)
    ctx = batch["context"]
    same = (ctx[:, :, None] == ctx[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    m_BxC = same.sum(2).astype(k_h_BxH.dtype)
    scale = 1.0
    if model.cbow_mean and model.cbow_update == "paper":
        C = jnp.maximum(mask.sum(1), 1).astype(k_h_BxH.dtype)[:, None]
        scale = 1.0 / (C * C)
    return (m_BxC * scale * k_h_BxH[:, :1]).reshape(-1)


CBOW = InputSide(
    layout=lambda C: (1, 1),
    hidden=_cbow_hidden,
    targets=_centre_target,
    input_rows=_cbow_rows,
    input_curvature=_cbow_curvature,
    context_axis=None,
    # word2vec.c's alpha for CBOW; batches in corpus order, not grouped by window: grouping
    # gives CBOW 0.003 less analogy accuracy on realtext-v1; 640 centres a step, as a CBOW
    # centre is one example where skip-gram's is up to 2c pairs: +0.005 analogy for CBOW HS
    # on gcide-v1 (BENCHMARKS.md, "Hierarchical softmax")
    defaults={
        "optimizer.learning_rate": 0.05,
        "train.window_buckets": False,
        "train.batch_size": 640,
    },
)

INPUTS: dict[str, InputSide] = {
    "skipgram": SKIPGRAM,
    "skipgram_context": SKIPGRAM_CONTEXT,
    "cbow": CBOW,
}


def register_input(name: str, side: InputSide) -> InputSide:
    """Add ``side`` to :data:`INPUTS` under ``name``."""
    return registry.add(INPUTS, name, side, InputSide)


def lookup_input(name: str) -> InputSide:
    """The side registered as ``name`` or at the dotted path ``name``."""
    return registry.find(INPUTS, name, InputSide, "input side")


def side_name(architecture: str, skipgram_input: str = "center") -> str:
    """The input side of the config's ``model.architecture`` and ``model.skipgram_input``."""
    if skipgram_input not in SKIPGRAM_INPUTS:
        raise ValueError(
            f"unknown skipgram_input {skipgram_input!r}; valid: {', '.join(SKIPGRAM_INPUTS)}"
        )
    if architecture == "skipgram" and skipgram_input == "context":
        return "skipgram_context"
    return architecture
