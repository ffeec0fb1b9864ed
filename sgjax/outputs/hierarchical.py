"""Hierarchical softmax (the paper's section 3.1): V - 1 inner-node vectors v'_n of
word2vec.c's Huffman tree replace the V output vectors.

For a pair (h, w_O) with path n(w_O, 1..L) and branch signs [[.]] = 1 - 2 code:

    E = -sum_j log s([[.]] v'_{n(w_O, j)} . h)
    dE/d(v'_j . h) = s(v'_j . h) - t_j  (t_j = 1 - code_j),  dE/dv'_j = e_j h,
    EH = sum_j e_j v'_j

Paths are per output word (scope ``"target"``), so the H hidden vectors of an example
share them: in word2vec.c's skip-gram the centre's path serves its C context vectors as
one (C x N)(N x L) product; in the paper's skip-gram the one h meets its C words' paths
as one (1 x N)(N x CL) product.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.huffman import build_huffman, path_fields
from sgjax.outputs.base import OutputLayer, OutputRule, const, register
from sgjax.outputs.logistic import log_sigmoid_sum, logistic_rows


def prepare(vocab, model) -> dict:
    """word2vec.c's Huffman tree of the vocabulary's counts, as device arrays."""
    return {"tree": jax.tree.map(jnp.asarray, build_huffman(np.asarray(vocab.counts)))}


def complete(key, targets_BxT, H, consts, model) -> dict:
    """``points``, ``codes``, ``path_mask`` (B, T, L) of every output word's path."""
    return path_fields(const(consts, "tree", model), targets_BxT)


def loss(params, h, w_O, fields, consts, model):
    """E of one pair: -sum_j log s([[.]] v'_{n(w_O, j)} . h) over the real path entries."""
    u = params["W_out"][fields["points"]] @ h
    t = 1.0 - fields["codes"].astype(u.dtype)
    return log_sigmoid_sum(u, t, fields["path_mask"].astype(u.dtype))


def rule(params, h_BxHxN, targets_BxT, w_BxHxT, fields, consts, model, curvature=False):
    """Every hidden vector of an example against all its output words' paths (S = T x L
    rows shared by the H hidden vectors), weighted by the pair's and the entry's masks."""
    B, T, L = fields["points"].shape
    rows = fields["points"].reshape(B, T * L)
    t = 1.0 - fields["codes"].astype(jnp.float32).reshape(B, T * L)
    pm = fields["path_mask"].astype(bool)
    w = (w_BxHxT[..., None] & pm[:, None, :, :]).reshape(B, -1, T * L)
    out = logistic_rows(params["W_out"], h_BxHxN, rows, t, w, None, curvature)
    if not curvature:
        return OutputRule(out[0], out[2], {"W_out": out[1]})
    k_out, k_h = out[3]
    return OutputRule(out[0], out[2], {"W_out": out[1]}, {"W_out": k_out}, k_h)


LAYER = register(
    "hierarchical",
    OutputLayer(
        tables=lambda V: {"W_out": V - 1},
        prepare=prepare,
        complete=complete,
        scopes=lambda model: {"points": "target", "codes": "target", "path_mask": "target"},
        loss=loss,
        rule=rule,
        curvature=True,
        # the inner nodes near the root are on nearly every path: a minibatch sums
        # thousands of updates into them and diverges undamped; damped, eta 0.05 decayed
        # to 0.1 x gives skip-gram +0.011 analogy over 0.025 to 0.2 x (BENCHMARKS.md)
        defaults={
            "train.row_damping": True,
            "optimizer.learning_rate": 0.05,
            "optimizer.end_factor": 0.1,
        },
    ),
)
