"""Device-side batch completion: a batch's output-layer fields, inside the compiled step.

:func:`complete_batch` (pure JAX) adds the fields of :mod:`sgjax.losses`' record to a batch
of :func:`sgjax.batches.epoch_batches`: negatives drawn i.i.d. from count^ns_exponent
(:mod:`sgjax.noise`) or the output words' Huffman paths (:func:`device_tree`).
:func:`window_bucket_slices` cuts a window-bucketed batch into its groups. The host side
of the data lives in :mod:`sgjax.encode` (corpus -> word ids) and :mod:`sgjax.batches`
(word ids -> batches).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from sgjax.huffman import HuffmanTree, path_fields
from sgjax.noise import sample_negatives
from sgjax.params import ARCHITECTURES, OUTPUTS

__all__ = ["complete_batch", "device_tree", "window_bucket_slices"]


#: fields of a completed batch with a context-slot axis (axis 1) when they have 3 dimensions
#: (per-pair negatives, centre-input skip-gram's per-context Huffman paths); ``context`` and
#: ``mask`` always have one.
_PER_CONTEXT = ("negatives", "points", "codes", "path_mask")


def window_bucket_slices(batch: Mapping[str, jax.Array], window: int) -> list[dict]:
    """The ``window`` groups of a batch made by ``epoch_batches(window_buckets=True)``: group
    b (1..window) is rows ``[(b-1) B/w, b B/w)`` with the context-slot axis cut to slots
    ``w-b .. w+b-1`` (offsets -b..-1, 1..b), the only ones its mask can set. The groups
    together hold every unmasked slot of the batch, so any loss or rule summed over them
    equals its value on the whole batch. Fields without a row axis (``words``) are left out.
    """
    B = batch["center"].shape[0]
    Bb = B // window
    out = []
    for b in range(1, window + 1):
        rows = slice((b - 1) * Bb, b * Bb)
        cols = slice(window - b, window + b)
        part = {}
        for name, x in batch.items():
            if name == "words":
                continue
            if name in ("context", "mask") or (name in _PER_CONTEXT and x.ndim == 3):
                part[name] = x[rows, cols]
            else:
                part[name] = x[rows]
        out.append(part)
    return out


def device_tree(tree: HuffmanTree) -> HuffmanTree:
    """The Huffman tree's arrays as device arrays (for :func:`complete_batch`)."""
    return HuffmanTree(*(jnp.asarray(x) for x in tree))


def complete_batch(
    key: jax.Array,
    batch: Mapping[str, jax.Array],
    *,
    output: str,
    negatives: int = 5,
    table: jax.Array | None = None,
    tree_arrays: HuffmanTree | None = None,
    architecture: str = "skipgram",
    shared_negatives: bool = False,
    skipgram_input: str = "center",
) -> dict[str, jax.Array]:
    """Add the output layer's fields of :mod:`sgjax.losses`' record to a batch.

    - ``negative``: ``negatives`` (B, C, K) for skip-gram (one set per context word, as
      word2vec.c draws per pair), or (B, K) with ``shared_negatives`` (one set per centre,
      shared by its context panels), (B, K) for CBOW, i.i.d. from ``table``. A negative
      equal to the positive word is left in: the losses and rules skip it, as word2vec.c
      does.
    - ``hierarchical``: ``points``, ``codes``, ``path_mask`` of the output word's Huffman
      path: per context word (B, C, L) for skip-gram, per centre (B, L) for CBOW and for
      skip-gram with ``skipgram_input="context"`` (the centre is the output word).
    - ``softmax``: nothing.

    Other fields of ``batch`` (e.g. ``words``) are passed through unchanged.
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output layer {output!r}; valid: {', '.join(OUTPUTS)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}"
        )
    out = dict(batch)
    if output == "negative":
        if table is None:
            raise ValueError("negative sampling needs table=noise_table(vocab, ns_exponent)")
        if negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {negatives}")
        per_pair = architecture == "skipgram" and not shared_negatives
        base = batch["context"].shape if per_pair else batch["center"].shape
        out["negatives"] = sample_negatives(key, table, (*base, negatives))
    elif output == "hierarchical":
        if tree_arrays is None:
            raise ValueError(
                "hierarchical softmax needs tree_arrays=device_tree(build_huffman(...))"
            )
        per_context = architecture == "skipgram" and skipgram_input == "center"
        words = batch["context"] if per_context else batch["center"]
        out.update(path_fields(tree_arrays, jnp.asarray(words)))
    return out
