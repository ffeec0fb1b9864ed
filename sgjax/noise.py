"""The noise distribution of negative sampling, sampled on the device (pure JAX).

:func:`noise_table` turns the vocabulary's counts into P_n(w) ∝ count(w)^ns_exponent as
an int32 cumulative table; :func:`sample_negatives` draws i.i.d. words from it by
inverse-CDF sampling inside the compiled train step, by a binary search over the table or
through the guide table of a :class:`NoiseSampler` (the same words from the same random
bits, in fewer steps). The output layers that need negatives use it; it is kept apart from
the host-side data modules (:mod:`sgjax.encode`, :mod:`sgjax.batches`) because it runs on
the device.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.vocab import Vocab, noise_distribution

__all__ = ["NOISE_TOTAL", "NoiseSampler", "noise_sampler", "noise_table", "sample_negatives"]

NOISE_TOTAL = 2**31 - 1  # resolution of the noise CDF: probabilities are multiples of 1/T


def noise_table(vocab: Vocab, ns_exponent: float = 0.75) -> jax.Array:
    """The noise distribution P_n(w) ∝ count(w)^ns_exponent as an int32 cumulative table
    (V,) with last entry ``NOISE_TOTAL``: word w owns the integers [cdf[w-1], cdf[w]).
    (Resolution 2^-31 per word, against word2vec.c's 1e-8 of its 1e8-entry unigram table.)"""
    p = noise_distribution(vocab, ns_exponent)
    cdf = np.minimum(np.floor(np.cumsum(p) * NOISE_TOTAL), NOISE_TOTAL).astype(np.int64)
    cdf[-1] = NOISE_TOTAL
    return jnp.asarray(cdf.astype(np.int32))


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=("cdf", "start"), meta_fields=("steps",)
)
@dataclass(frozen=True)
class NoiseSampler:
    """:func:`noise_table`'s CDF with a guide table (Chen and Asau's indexed search): the
    draw ``u`` lies in bucket ``u >> shift`` of 2^g equal buckets of [0, NOISE_TOTAL), and
    ``start[b]`` is the number of CDF entries <= the bucket's first value, so the answer is
    in ``[start[b], start[b] + span]``, ``span`` the most words any bucket reaches into.
    A binary search over that window (``steps = ceil(log2(span + 1))``, static) gives
    exactly ``searchsorted(cdf, u, side="right")``: the same words from the same ``u``, in
    one lookup and a few steps instead of log2(V) (BENCHMARKS.md, "Where a step's time
    goes"). Build with :func:`noise_sampler`; a pytree (``steps`` is static)."""

    cdf: jax.Array  # (V,) int32, as noise_table
    start: jax.Array  # (2^g,) int32
    steps: int  # binary-search steps inside a bucket's window

    @property
    def shift(self) -> int:
        return 31 - (int(self.start.shape[0]).bit_length() - 1)


def noise_sampler(table: jax.Array | np.ndarray, bucket_bits: int | None = None) -> NoiseSampler:
    """A :class:`NoiseSampler` over the CDF ``table`` of :func:`noise_table` (host work:
    O(2^g log V)). ``bucket_bits`` g defaults to ceil(log2 V) + 1, within 8..22."""
    cdf = np.asarray(table).astype(np.int64)
    V = cdf.shape[0]
    g = bucket_bits if bucket_bits is not None else min(22, max(8, (V - 1).bit_length() + 1))
    if not 1 <= g <= 31:
        raise ValueError(f"bucket_bits must be in 1..31, got {g}")
    first = np.arange(2**g, dtype=np.int64) << (31 - g)
    last = np.minimum(first + (1 << (31 - g)) - 1, NOISE_TOTAL - 1)
    start = np.searchsorted(cdf, first, side="right")
    span = int((np.searchsorted(cdf, last, side="right") - start).max())
    return NoiseSampler(
        cdf=jnp.asarray(cdf.astype(np.int32)),
        start=jnp.asarray(start.astype(np.int32)),
        steps=max(span, 1).bit_length(),  # ceil(log2(span + 1))
    )


def _guided_search(s: NoiseSampler, u: jax.Array) -> jax.Array:
    V = s.cdf.shape[0]
    lo = s.start[u >> s.shift]
    hi = jnp.minimum(lo + (1 << s.steps) - 1, V - 1)  # the answer is in [lo, hi]
    for _ in range(s.steps):
        mid = (lo + hi) >> 1
        right = s.cdf[mid] <= u
        lo = jnp.where(right, mid + 1, lo)
        hi = jnp.where(right, hi, mid)
    return lo


def sample_negatives(
    key: jax.Array, table: jax.Array | NoiseSampler, shape: Sequence[int]
) -> jax.Array:
    """i.i.d. draws from the noise distribution of :func:`noise_table` (int32, ``shape``):
    inverse-CDF sampling of ``u ~ U{0..NOISE_TOTAL-1}``, by a binary search over the CDF
    (O(log V)) or, for a :class:`NoiseSampler`, its guide table (same words, faster)."""
    u = jax.random.randint(key, tuple(shape), 0, NOISE_TOTAL, dtype=jnp.int32)
    if isinstance(table, NoiseSampler):
        return _guided_search(table, u).astype(jnp.int32)
    return jnp.searchsorted(table, u, side="right").astype(jnp.int32)
