"""The parameter pytree and its reference initialisation.

Parameters are a plain dict of arrays (PAPER.md, notation): ``W`` (V, N), whose row
``W[w]`` is the input vector v_w, and the tables the output layer owns
(:mod:`sgjax.outputs`): ``W_out`` (V, N) for the full softmax and the sampling layers,
row ``W_out[j]`` the output vector v'_j (the paper's W' is N x V; storing its transpose
keeps every update a row), or (V-1, N) for hierarchical softmax, one vector v'_n per inner
node of the Huffman tree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgjax.outputs import lookup

Params = dict[str, jax.Array]


def table_rows(vocab_size: int, output: str) -> dict[str, int]:
    """Rows of every table: ``{"W": V, **the output layer's tables}``."""
    return {"W": vocab_size, **lookup(output).tables(vocab_size)}


def init_params(
    key: jax.Array, vocab_size: int, dim: int, output: str, dtype: jnp.dtype = jnp.float32
) -> Params:
    """Reference initialisation (word2vec.c, gensim): W ~ U[-0.5/N, 0.5/N], output tables 0."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    W = jax.random.uniform(key, (vocab_size, dim), dtype, minval=-0.5 / dim, maxval=0.5 / dim)
    rows = table_rows(vocab_size, output)
    return {"W": W, **{k: jnp.zeros((r, dim), dtype) for k, r in rows.items() if k != "W"}}
