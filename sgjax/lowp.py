"""bfloat16 tables with float32 arithmetic (``train.dtype: bfloat16``).

The tables E (W) and E' (W_out) are stored in bfloat16, halving their memory and the bytes
a step's gathers and scatters move (what bounds the step on an accelerator). Everything
else is float32: the step reads the rows it needs as float32 (:func:`compute_view`, a
convert XLA fuses into the gathers), the rules, the optimizer and its state run in float32,
and each row's updates are summed in float32 before the row is rounded once
(:func:`apply_updates`). The rounding is stochastic: bfloat16 keeps 8 significant bits, so
word2vec's late updates (eta ~ 1e-3 x a gradient of order 1, against rows of order 0.1-1)
would round away to nothing at nearest; rounded up or down with the probabilities that
make the expected value exact, they add up as in float32. The random bits are a hash of
(row, column, step, table, the run's key), so a run is deterministic.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from sgjax.optim import apply_updates as apply_f32
from sgjax.sparse import RowGrads

LOW = jnp.dtype(jnp.bfloat16)


def is_low(params: Any) -> bool:
    """Whether any table is stored in bfloat16."""
    return any(jnp.dtype(p.dtype) == LOW for p in jax.tree.leaves(params))


def compute_view(params: Any) -> Any:
    """The tables as float32, for the rules and the optimizer (bfloat16 leaves converted)."""
    return jax.tree.map(lambda p: p.astype(jnp.float32) if p.dtype == LOW else p, params)


def _mix(x: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser: well-spread bits from a counter (uint32)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def stochastic_round(x_f32: jax.Array, rows: jax.Array, seed: jax.Array) -> jax.Array:
    """``x_f32`` (M, N) rounded to bfloat16, up with probability (the fraction of the way
    to the next bfloat16): add 16 random low bits to the float32 pattern and truncate. The
    bits are a hash of (``rows`` (M,), column, ``seed``) (uint32, :func:`round_seed`)."""
    col = jnp.arange(x_f32.shape[1], dtype=jnp.uint32)
    r = _mix(_mix(rows.astype(jnp.uint32) ^ seed)[:, None] + col * jnp.uint32(0x9E3779B9))
    bits = jax.lax.bitcast_convert_type(x_f32, jnp.uint32)
    finite = jnp.isfinite(x_f32)
    bits = jnp.where(finite, (bits + (r >> 16)) & jnp.uint32(0xFFFF0000), bits)
    return jax.lax.bitcast_convert_type(bits, jnp.float32).astype(LOW)


def round_seed(key: jax.Array, step: jax.Array, table: int) -> jax.Array:
    """The rounding's seed of one table at one step of a run (its raw PRNG key): runs of
    other seeds, the tables and the steps round independently."""
    k = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    k = k.reshape(-1).astype(jnp.uint32)
    x = _mix(step.astype(jnp.uint32) * jnp.uint32(0x9E3779B9) + jnp.uint32(table))
    return _mix(x ^ _mix(k[0] ^ _mix(k[-1] + jnp.uint32(0x5BD1E995))))


def apply_updates(params: Any, updates: Any, key: jax.Array, step: jax.Array) -> Any:
    """``params`` moved by float32 ``updates`` (as :func:`sgjax.optim.apply_updates`),
    bfloat16 tables rounded once per row and step: a RowGrads leaf's M entries are summed
    per distinct row in float32 (an (M, N) buffer: the work and memory follow the rows the
    step touches, not the table), added to the row read as float32, and written back."""
    out = {}
    for t, (k, p) in enumerate(sorted(params.items())):
        u = updates.get(k)
        if p.dtype != LOW or u is None:
            out[k] = apply_f32({k: p}, {k: u})[k]
            continue
        seed = round_seed(key, step, t)
        if not isinstance(u, RowGrads):  # dense (the full softmax's E')
            rows = jnp.arange(p.shape[0], dtype=jnp.int32)
            out[k] = stochastic_round(p.astype(jnp.float32) + u, rows, seed)
            continue
        V, M = p.shape[0], u.index.shape[0]
        index = jnp.where((u.index >= 0) & (u.index < V), u.index, V)  # padding: V
        rows, inv = jnp.unique(index, size=M, fill_value=V, return_inverse=True)
        total = jnp.zeros((M, p.shape[1]), jnp.float32).at[inv.reshape(-1)].add(u.value)
        idx = jnp.minimum(rows, V - 1)
        new = stochastic_round(p[idx].astype(jnp.float32) + total, idx, seed)
        out[k] = p.at[rows].set(new, mode="drop")  # V (padding, unused slots) is dropped
    return out
