"""Examples made on the device: the host streams int32 tokens, the step windows them.

``data.examples: device`` (config) moves :mod:`sgjax.batches`' work into the compiled call,
for accelerators, where the host's numpy generator (~15-20M corpus tokens/s a core,
BENCHMARKS.md "Data pipeline") would fall behind the step. The host cuts the (shuffled or
file-ordered) token stream into chunks of whole sentences of at most ``M = S x B`` tokens
(S = ``train.steps_per_call``, B = ``train.batch_size``) and sends each as ``tokens`` and
``sentence`` ids of shape (S, B) (padding: sentence -1) and its ``words``. One call of
:func:`chunk_step` then draws, on the device, the same examples the host path draws:

- subsampling: token t is kept with probability ``keep[t]`` (:func:`sgjax.vocab.keep_probs`),
  discarded tokens removed before windowing;
- per kept token an effective window b ~ U{1..window}; its contexts are the kept tokens
  within b positions in its sentence; centres without one are dropped;
- the output layer's fields (negatives, Huffman paths) as for host batches, in the step.

The chunk's examples, compacted in stream order, fill its S batches of B; batches past the
last example are inactive (skipped by the scan's ``cond``), so a chunk runs
``max(1, ceil(n / B))`` optimizer steps for its n examples (a chunk without any: one empty
step, which plain SGD ignores and a momentum optimizer does not). ``words`` per batch follows
:mod:`sgjax.batches` (the tokens from after the previous batch's last centre to its own,
the chunk's tail in its last batch), so the words of an epoch sum to its tokens and the
schedule counts as the host path does. The random draws of chunk c of epoch e come from
``fold_in(fold_in(fold_in(state.key, TAG), e), c)``, a stream apart from the negatives'
``fold_in(state.key, step)``; ``state.batch_in_epoch`` counts chunks, so a resumed run
skips the chunks it applied and continues exactly.

The examples equal the host path's for the same draws (tests/test_device_examples.py feeds
both the same uniforms and windows) and have the same distributions (checked there with
tolerances from the sample size). What differs: the random streams (so the vectors are not
bit-equal to the host path's), no window buckets (every batch has 2 x window slots), and
batches do not span chunks.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.encode import EncodedCorpus
from sgjax.sentences import _shuffled_blocks, _stream_blocks, sentence_order
from sgjax.train import TrainState, train_step

__all__ = ["chunk_batches", "chunk_step", "chunk_step_jit", "epoch_chunks", "windows"]

#: Folded into the state's key for the example draws (the negatives fold the step number).
DATA_TAG = 0x44415441  # "DATA"


def epoch_chunks(
    encoded: EncodedCorpus,
    *,
    batch_size: int,
    steps: int,
    seed: int,
    epoch: int,
    shuffle: bool,
) -> Iterator[dict[str, np.ndarray]]:
    """The host's side of an epoch: chunks of whole sentences of at most ``steps x
    batch_size`` tokens, in the file's order or in :func:`sgjax.batches.sentence_order`.
    Each is ``tokens`` and ``sentence`` (S, B) int32 (ids within the chunk; padding -1) and
    ``words`` () int32, the chunk's tokens. A sentence longer than a chunk is refused."""
    M = steps * batch_size
    if shuffle:
        blocks = _shuffled_blocks(encoded, sentence_order(encoded.n_sentences, seed, epoch), M)
    else:
        blocks = _stream_blocks(encoded, M)
    for _, tok, offs in blocks:
        m = int(offs[-1])
        if m > M:
            raise ValueError(
                f"data.examples=device: a sentence of {m} tokens is longer than a chunk "
                f"(train.steps_per_call x train.batch_size = {M}); lower data.max_line_tokens"
            )
        tokens = np.zeros(M, np.int32)
        tokens[:m] = tok
        sentence = np.full(M, -1, np.int32)
        sentence[:m] = np.repeat(np.arange(offs.size - 1, dtype=np.int32), np.diff(offs))
        yield {
            "tokens": tokens.reshape(steps, batch_size),
            "sentence": sentence.reshape(steps, batch_size),
            "words": np.int32(m),
        }


def windows(
    tok_M: jax.Array,
    sid_M: jax.Array,
    keep_V: jax.Array,
    u_M: jax.Array,
    b_M: jax.Array,
    window: int,
) -> dict[str, jax.Array]:
    """The examples of one chunk for given draws, compacted in stream order.

    ``tok_M``/``sid_M`` (M,): tokens and sentence ids (-1: padding); ``keep_V`` (V,): the
    keep probabilities; ``u_M`` (M,): uniforms, token i is kept iff ``u_M[i] < keep[tok]``;
    ``b_M`` (M,): the effective window of the j-th kept token. Returns ``center`` (M,),
    ``context`` (M, 2w) (masked slots 0), ``mask`` (M, 2w), ``pos`` (M,) the centres'
    positions in the chunk, and ``n`` the number of examples (rows past it are zero).
    """
    M = tok_M.shape[0]
    off_C = jnp.asarray(np.r_[-window:0, 1 : window + 1], jnp.int32)
    kept = (u_M < keep_V[tok_M]) & (sid_M >= 0)
    dest = jnp.where(kept, jnp.cumsum(kept) - 1, M)  # discarded tokens: out of range
    kt = jnp.zeros(M, jnp.int32).at[dest].set(tok_M, mode="drop")
    ks = jnp.full(M, -1, jnp.int32).at[dest].set(sid_M, mode="drop")
    kp = jnp.zeros(M, jnp.int32).at[dest].set(jnp.arange(M, dtype=jnp.int32), mode="drop")
    idx_MxC = jnp.arange(M, dtype=jnp.int32)[:, None] + off_C
    idc_MxC = jnp.clip(idx_MxC, 0, M - 1)
    mask = (idx_MxC == idc_MxC) & (ks[idc_MxC] == ks[:, None]) & (ks[:, None] >= 0)
    mask &= jnp.abs(off_C) <= b_M[:, None]
    good = mask.any(axis=1)
    gd = jnp.where(good, jnp.cumsum(good) - 1, M)

    def compact(x, fill=0):
        return jnp.full(x.shape, fill, x.dtype).at[gd].set(x, mode="drop")

    return {
        "center": compact(kt),
        "context": compact(jnp.where(mask, kt[idc_MxC], 0)),
        "mask": compact(mask),
        "pos": compact(kp),
        "n": good.sum(dtype=jnp.int32),
    }


def chunk_batches(key: jax.Array, chunk: dict, keep_V: jax.Array, window: int) -> dict:
    """A chunk's examples as the S batches of one :func:`sgjax.train.train_step` call:
    ``center`` (S, B), ``context``/``mask`` (S, B, 2w), ``words`` (S,), ``active`` (S,)."""
    S, B = chunk["tokens"].shape
    M = S * B
    k_keep, k_window = jax.random.split(key)
    ex = windows(
        chunk["tokens"].reshape(M),
        chunk["sentence"].reshape(M),
        keep_V,
        jax.random.uniform(k_keep, (M,), jnp.float32),
        jax.random.randint(k_window, (M,), 1, window + 1, jnp.int32),
        window,
    )
    n = ex["n"]
    steps = jnp.maximum(1, (n + B - 1) // B)
    # the last centre's position of each batch (-1 before the first); the tail to the last
    last_S = ex["pos"][jnp.clip(jnp.arange(1, S + 1) * B, 1, jnp.maximum(n, 1)) - 1]
    last_S = jnp.where(n > 0, last_S, -1)
    words_S = jnp.diff(last_S, prepend=-1)
    active = jnp.arange(S) < steps
    words_S = jnp.where(active, words_S, 0)
    words_S = words_S.at[steps - 1].add(chunk["words"] - 1 - last_S[steps - 1])
    rows = jnp.arange(M) < n
    return {
        "center": ex["center"].reshape(S, B),
        "context": ex["context"].reshape(S, B, -1),
        "mask": (ex["mask"] & rows[:, None]).reshape(S, B, -1),
        "words": words_S.astype(jnp.int32),
        "active": active,
    }


def draw_key(key: jax.Array, epoch: jax.Array | int, chunk: jax.Array | int) -> jax.Array:
    """The key of the draws of chunk ``chunk`` of ``epoch`` in a run of state key ``key``."""
    k = jax.random.fold_in(key, DATA_TAG)
    return jax.random.fold_in(jax.random.fold_in(k, epoch), chunk)


def chunk_key(state: TrainState) -> jax.Array:
    """The key of the draws of the chunk ``state.batch_in_epoch`` of ``state.epoch``."""
    return draw_key(state.key, state.epoch, state.batch_in_epoch)


def chunk_step(state: TrainState, chunk: dict, tables: dict, spec: Any) -> tuple[TrainState, dict]:
    """One call on one chunk (every leaf with a leading axis of 1, as :func:`sgjax.loop.fit`
    stacks one chunk a call): its examples (:func:`chunk_batches`, ``tables["keep"]``) run
    through :func:`sgjax.train.train_step`; ``batch_in_epoch`` then counts the chunk."""
    chunk = jax.tree.map(lambda x: x[0], chunk)
    group = chunk_batches(chunk_key(state), chunk, tables["keep"], spec.chunk_window)
    done = state.batch_in_epoch
    state, metrics = train_step(state, group, tables, spec)
    return state.replace(batch_in_epoch=done + 1), metrics


chunk_step_jit = jax.jit(chunk_step, static_argnames=("spec",), donate_argnums=(0,))


@functools.partial(jax.jit, static_argnums=3)
def _chunk_steps(key: jax.Array, chunk: dict, keep_V: jax.Array, window: int) -> jax.Array:
    return chunk_batches(key, chunk, keep_V, window)["active"].sum()


def count_steps(chunks: Iterator[dict], key: jax.Array, keep_V: jax.Array, window: int) -> int:
    """Optimizer steps an epoch's chunks make with the draws of ``key`` (epoch 0): the
    schedule's length, as :func:`sgjax.experiment` counts the host path's batches."""
    counts = [_chunk_steps(draw_key(key, 0, c), ch, keep_V, window) for c, ch in enumerate(chunks)]
    return int(sum(int(n) for n in counts))
