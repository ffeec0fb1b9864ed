"""Check the paper's explicit gradient rules against ``jax.grad`` of the loss, in float64.

:func:`random_problem` builds a small adversarial batch for one (architecture, output)
combination: variable window sizes (padded context slots), one fully padded example, a word
repeated inside the batch (so scatter-adds must accumulate), negatives equal to their
positive word (which must be skipped) and Huffman paths of different lengths from Zipf
counts; ``shared_negatives=True`` gives skip-gram one set of negatives per centre (K,)
shared by its context panels (:mod:`sgjax.losses`), with a negative equal to the positive
word of one panel and one equal to the positive words of two panels;
``skipgram_input="context"`` gives word2vec.c's orientation (the centre is the output
word). :func:`check` compares :func:`sgjax.rules.explicit_grads` with
``jax.grad(sgjax.losses.batch_loss)`` on it.

Errors are reported per leaf and maximised over leaves:
``max_abs_err = max |g_rule - g_autodiff|`` and
``max_rel_err = max_abs_err / max |g_autodiff|`` (relative to the gradient's scale, which
stays meaningful where individual entries are zero).
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.huffman import build_huffman, path_fields
from sgjax.losses import batch_loss, output_fields
from sgjax.params import ARCHITECTURES, OUTPUTS
from sgjax.rules import explicit_grads, value_and_rule

COMBINATIONS = tuple(itertools.product(ARCHITECTURES, OUTPUTS))
#: Combinations with a variant of the example record: ``(architecture, output, options)``.
VARIANTS = tuple((a, o, {}) for a, o in COMBINATIONS) + (
    ("skipgram", "negative", {"shared_negatives": True}),
    *(("skipgram", o, {"skipgram_input": "context"}) for o in OUTPUTS),
    ("skipgram", "negative", {"skipgram_input": "context", "shared_negatives": True}),
)
TOLERANCE = 1e-9


def random_problem(
    architecture: str,
    output: str,
    *,
    vocab_size: int = 50,
    dim: int = 8,
    batch_size: int = 12,
    window: int = 3,
    negatives: int = 4,
    seed: int = 0,
    dtype: Any = np.float64,
    shared_negatives: bool = False,
    skipgram_input: str = "center",
) -> tuple[dict, dict]:
    """A small random ``(params, batch)`` in the example format of :mod:`sgjax.losses`.

    Parameters are drawn N(0, 0.5^2) (not the zero W_out of the reference initialisation,
    which would make half of the gradient trivially zero). ``shared_negatives``: skip-gram
    negatives (B, K), one set per centre, instead of (B, C, K). ``skipgram_input="context"``
    (word2vec.c's orientation): the centre is the output word, so negatives equal to it are
    planted and the Huffman path is the centre's.
    """
    if batch_size < 3 or vocab_size < 4 or window < 1:
        raise ValueError("need batch_size >= 3, vocab_size >= 4, window >= 1")
    rng = np.random.default_rng(seed)
    V, N, B, C, K = vocab_size, dim, batch_size, 2 * window, negatives
    rows_out = V - 1 if output == "hierarchical" else V
    params = {
        "W": (0.5 * rng.standard_normal((V, N))).astype(dtype),
        "W_out": (0.5 * rng.standard_normal((rows_out, N))).astype(dtype),
    }
    center = rng.integers(0, V, B)
    context = rng.integers(0, V, (B, C))
    # variable window sizes: example b keeps its first n_b slots, n_b in 1..C ...
    n = rng.integers(1, C + 1, B)
    n[0] = C
    n[-1] = 0  # ... and the last example is pure padding
    mask = np.arange(C)[None, :] < n[:, None]
    # a word repeated inside the batch, as centre and as context
    center[1] = center[0]
    context[0, : min(2, C)] = context[1, 0]
    batch = {"center": center, "context": context, "mask": mask}
    if output == "negative":
        shared = shared_negatives and architecture == "skipgram"
        shape = (B, C, K) if architecture == "skipgram" and not shared else (B, K)
        neg = rng.integers(0, V, shape)
        # some negatives equal to their positive word: they must be skipped
        if architecture == "skipgram" and skipgram_input == "context":  # positive: the centre
            neg[(0, 0, 0) if not shared else (0, 0)] = center[0]
            neg[(2, 1, 1) if not shared else (2, 1)] = center[2]
            neg[(1, 0, 0) if not shared else (1, 2)] = context[1, 0]  # a context word: kept
        elif shared:  # ... in the panels where they are the positive word only
            neg[0, 0] = context[0, 0]  # = context[0, 1]: skipped in two panels
            neg[2, 1] = context[2, 0]
            neg[3, 0] = context[3, C - 1]  # a masked slot's id unless example 3 is full
        elif architecture == "skipgram":
            neg[0, 0, 0] = context[0, 0]
            neg[2, 0, 1] = context[2, 0]
        else:
            neg[0, 0] = center[0]
            neg[2, 1] = center[2]
        batch["negatives"] = neg
    elif output == "hierarchical":
        counts = np.sort(rng.zipf(1.5, V).astype(np.int64))[::-1]
        tree = build_huffman(counts)
        per_context = architecture == "skipgram" and skipgram_input == "center"
        batch.update(path_fields(tree, context if per_context else center))
    batch = {k: np.asarray(v) for k, v in batch.items()}
    assert set(batch) == set(output_fields(architecture, output))
    return params, batch


def max_errors(got: dict, want: dict) -> tuple[float, float]:
    """(max_abs_err, max_rel_err) over the leaves, as defined in the module docstring."""
    abs_err, rel_err = 0.0, 0.0
    for k in want:
        a = float(jnp.max(jnp.abs(got[k] - want[k])))
        scale = float(jnp.max(jnp.abs(want[k])))
        abs_err = max(abs_err, a)
        rel_err = max(rel_err, a / scale if scale > 0 else a)
    return abs_err, rel_err


def check(
    architecture: str,
    output: str,
    cbow_mean: bool = True,
    cbow_update: str = "paper",
    skipgram_input: str = "center",
    **problem: Any,
) -> dict:
    """Compare the explicit rule with autodiff in float64; one result record (with
    ``"shared_negatives": true`` and ``"skipgram_input": "context"`` when those variants
    of the record were checked)."""
    with jax.enable_x64(True):
        params, batch = random_problem(
            architecture, output, skipgram_input=skipgram_input, **problem
        )
        params = jax.tree.map(jnp.asarray, params)
        batch = jax.tree.map(jnp.asarray, batch)
        static = (2, 3, 4, 5, 6)
        loss = jax.jit(batch_loss, static_argnums=static)
        auto = jax.jit(jax.grad(batch_loss), static_argnums=static)
        rule = jax.jit(explicit_grads, static_argnums=static)
        value = jax.jit(value_and_rule, static_argnums=static)
        args = (params, batch, architecture, output, cbow_mean, cbow_update, skipgram_input)
        want, got = auto(*args), rule(*args)
        abs_err, rel_err = max_errors(got, want)
        E, E_rule = float(loss(*args)), float(value(*args)[0])
        loss_err = abs(E - E_rule) / max(abs(E), 1e-300)
    ok = rel_err <= TOLERANCE and loss_err <= TOLERANCE and bool(np.isfinite(E))
    record = {"model": architecture, "output": output}
    if architecture == "cbow" and cbow_update != "paper":
        record["cbow_update"] = cbow_update
    if architecture == "skipgram" and skipgram_input != "center":
        record["skipgram_input"] = skipgram_input
    if problem.get("shared_negatives") and architecture == "skipgram" and output == "negative":
        record["shared_negatives"] = True
    return {**record, "max_abs_err": abs_err, "max_rel_err": rel_err, "loss": E, "ok": ok}
