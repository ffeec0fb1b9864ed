"""The parameter pytree and its reference initialisation.

Parameters are a plain dict of arrays (PAPER.md, notation):

- ``W``     (V, N): input->hidden weights; row ``W[w]`` is the input vector v_w.
- ``W_out`` (V, N) for full softmax and negative sampling: row ``W_out[j]`` is the output
  vector v'_j (the paper's W' is N x V; storing its transpose keeps every update a row).
  (V-1, N) for hierarchical softmax: one vector v'_n per inner node of the Huffman tree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

OUTPUTS = ("softmax", "hierarchical", "negative")
ARCHITECTURES = ("skipgram", "cbow")

Params = dict[str, jax.Array]


def output_rows(vocab_size: int, output: str) -> int:
    """Rows of ``W_out``: V-1 inner nodes for hierarchical softmax, else V output vectors."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output layer {output!r}; valid: {', '.join(OUTPUTS)}")
    return vocab_size - 1 if output == "hierarchical" else vocab_size


def init_params(
    key: jax.Array, vocab_size: int, dim: int, output: str, dtype: jnp.dtype = jnp.float32
) -> Params:
    """Reference initialisation (word2vec.c, gensim): W ~ U[-0.5/N, 0.5/N], W_out = 0.

    Returns ``{"W": (V, N), "W_out": (V, N) or (V-1, N)}``.
    """
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    W = jax.random.uniform(key, (vocab_size, dim), dtype, minval=-0.5 / dim, maxval=0.5 / dim)
    W_out = jnp.zeros((output_rows(vocab_size, output), dim), dtype)
    return {"W": W, "W_out": W_out}
