"""Check every model's explicit gradient rule against ``jax.grad`` of its loss, in float64.

:func:`random_problem` builds a small adversarial batch for a :class:`sgjax.model.ModelSpec`:
variable window sizes (padded context slots), one fully padded example, a word repeated
inside the batch (so scatter-adds must accumulate) and Zipf word counts (Huffman paths of
different lengths, a skewed noise distribution). The output layer's own ``prepare`` and
``complete`` add its fields, so any registered layer can be checked; where the layer draws
``negatives``, some are planted equal to their pair's output word (they must be skipped),
one of them, with shared negatives, equal to the output words of two pairs.

:func:`check` compares :func:`sgjax.rules.value_and_rule` (the shared-rows form) with
``jax.grad(sgjax.losses.batch_loss)`` and with :func:`sgjax.rules.pairwise_rule` (the same
rule pair by pair). Errors are maximised over the parameter leaves:
``max_abs_err = max |g_rule - g_autodiff|``, ``max_rel_err = max_abs_err / max |g_autodiff|``
(relative to the gradient's scale, meaningful where single entries are zero).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.losses import batch_loss
from sgjax.model import ModelSpec, complete
from sgjax.rules import explicit_grads, value_and_rule
from sgjax.vocab import vocab_from_counts

TOLERANCE = 1e-9

#: The smallest value of each argument of :func:`random_problem`, and why.
MINIMUM: dict[str, tuple[int, str]] = {
    "vocab_size": (2, "hierarchical softmax's Huffman tree needs two words"),
    "dim": (1, "a vector needs a component"),
    "batch_size": (4, "examples 0-2 hold the planted cases, the last one is all padding"),
    "window": (1, "a context slot on each side"),
    "seed": (0, "numpy's generator takes no negative seeds"),
}


def argument_errors(
    args: Mapping[str, Any], models: Sequence[ModelSpec] = (), name: Callable[[str], str] = str
) -> list[str]:
    """A message for each of ``args`` below its :data:`MINIMUM`, the argument called
    ``name(key)``; ``negatives`` must be >= 1 where one of ``models`` draws them, else >= 0
    (the layers that draw none ignore it)."""
    draws = ", ".join(dict.fromkeys(m.output for m in models if m.layer.draws))
    why = f"{draws} draw K noise words" if draws else "no layer checked draws noise words"
    minimum = {**MINIMUM, "negatives": (1 if draws else 0, why)}
    return [
        f"{name(k)} must be >= {lo}, got {args[k]} ({why})"
        for k, (lo, why) in minimum.items()
        if k in args and args[k] < lo
    ]


def toy_vocab(vocab_size: int, seed: int = 0):
    """A vocabulary of ``vocab_size`` words ``w0, w1, ...`` with Zipf counts."""
    rng = np.random.default_rng(seed)
    counts = np.sort(rng.zipf(1.5, vocab_size).astype(np.int64))[::-1]
    return vocab_from_counts({f"w{i}": int(c) for i, c in enumerate(counts)}, min_count=1)


def random_problem(
    model: ModelSpec,
    *,
    vocab_size: int = 50,
    dim: int = 8,
    batch_size: int = 12,
    window: int = 3,
    seed: int = 0,
    dtype: Any = np.float64,
) -> tuple[dict, dict, dict]:
    """``(params, batch, consts)``: parameters N(0, 0.5^2) (not the zero W_out of the
    reference initialisation, which would make half of the gradient trivially zero), a
    completed batch and the layer's device constants."""
    sizes = dict(vocab_size=vocab_size, dim=dim, batch_size=batch_size, window=window, seed=seed)
    if errors := argument_errors(sizes):
        raise ValueError("; ".join(errors))
    rng = np.random.default_rng(seed)
    V, N, B, C = vocab_size, dim, batch_size, 2 * window
    layer = model.layer
    params = {"W": 0.5 * rng.standard_normal((V, N))}
    for name, rows in layer.tables(V).items():
        params[name] = 0.5 * rng.standard_normal((rows, N))
    params = {k: v.astype(dtype) for k, v in params.items()}
    center = rng.integers(0, V, B)
    context = rng.integers(0, V, (B, C))
    n = rng.integers(1, C + 1, B)  # example b keeps its first n_b slots ...
    n[0] = C
    n[-1] = 0  # ... and the last example is pure padding
    mask = np.arange(C)[None, :] < n[:, None]
    center[1] = center[0]  # a word repeated inside the batch, as centre and as context
    context[0, : min(2, C)] = context[1, 0]
    batch = {"center": center, "context": context, "mask": mask}
    consts = layer.prepare(toy_vocab(V, seed), model)
    batch = dict(
        complete(jax.random.PRNGKey(seed), jax.tree.map(jnp.asarray, batch), consts, model)
    )
    if "negatives" in batch:
        batch["negatives"] = _plant(np.array(batch["negatives"]), model, batch)
    batch = jax.tree.map(jnp.asarray, batch)
    return jax.tree.map(jnp.asarray, params), batch, consts


def _plant(neg: np.ndarray, model: ModelSpec, batch: dict) -> np.ndarray:
    """Negatives equal to their pair's output word (skipped), and one equal to an input."""
    targets = np.asarray(model.side.targets(batch)[0])
    T = targets.shape[1]
    if neg.ndim == 2:  # shared by the example's pairs
        neg[0, 0] = targets[0, 0]  # with T > 1: = targets[0, 1], skipped in two pairs
        neg[2, 1 % neg.shape[1]] = targets[2, T - 1]
        neg[1, 2 % neg.shape[1]] = int(batch["context"][1, 0])  # an input word: kept
    else:  # (B, H, T, K): one set per pair
        neg[0, 0, 0, 0] = targets[0, 0]
        neg[2, 0, T - 1, 1 % neg.shape[3]] = targets[2, T - 1]
    return neg


def max_errors(got: dict, want: dict) -> tuple[float, float]:
    """(max_abs_err, max_rel_err) over the leaves, as defined in the module docstring."""
    abs_err, rel_err = 0.0, 0.0
    for k in want:
        a = float(jnp.max(jnp.abs(got[k] - want[k])))
        scale = float(jnp.max(jnp.abs(want[k])))
        abs_err = max(abs_err, a)
        rel_err = max(rel_err, a / scale if scale > 0 else a)
    return abs_err, rel_err


def check(model: ModelSpec, **problem: Any) -> dict:
    """Rule against autodiff and against the pairwise rule, in float64: one record."""
    with jax.enable_x64(True):
        params, batch, consts = random_problem(model, **problem)
        loss = jax.jit(batch_loss, static_argnums=2)
        auto = jax.jit(jax.grad(batch_loss), static_argnums=2)
        rule = jax.jit(explicit_grads, static_argnums=(2, 4))
        value = jax.jit(value_and_rule, static_argnums=2)
        args = (params, batch, model, consts)
        want, got = auto(*args), rule(*args)
        abs_err, rel_err = max_errors(got, want)
        _, pair_err = max_errors(got, rule(*args, True))
        E, E_rule = float(loss(*args)), float(value(*args)[0])
        loss_err = abs(E - E_rule) / max(abs(E), 1e-300)
    ok = max(rel_err, pair_err, loss_err) <= TOLERANCE and bool(np.isfinite(E))
    record = {"model": model.input, "output": model.output}
    if model.shared_negatives and "negatives" in model.layer.scopes(model):
        record["shared_negatives"] = True
    if model.input == "cbow" and model.cbow_update != "paper":
        record["cbow_update"] = model.cbow_update
    if model.input == "cbow" and not model.cbow_mean:
        record["cbow_mean"] = False
    return {
        **record,
        "max_abs_err": abs_err,
        "max_rel_err": rel_err,
        "pairwise_rel_err": pair_err,
        "loss": E,
        "ok": ok,
    }


def variants(inputs=None, outputs=None, all_variants: bool = False) -> list[ModelSpec]:
    """The models ``sgjax gradcheck`` checks: every (input side, output layer) of the
    registries (default: the paper's two architectures), plus with ``all_variants``
    skip-gram in word2vec.c's orientation, shared negatives and CBOW's word2vec update."""
    from sgjax.inputs import INPUTS
    from sgjax.outputs import REGISTRY

    inputs = list(inputs or (INPUTS if all_variants else ("skipgram", "cbow")))
    out = []
    for i in inputs:
        for o in outputs or REGISTRY:
            out.append(ModelSpec(input=i, output=o, negatives=4))
            draws = "negatives" in ModelSpec(output=o).layer.scopes(ModelSpec(output=o))
            if all_variants and draws and i != "cbow":
                out.append(ModelSpec(input=i, output=o, negatives=4, shared_negatives=True))
            if all_variants and i == "cbow":
                out.append(ModelSpec(input=i, output=o, negatives=4, cbow_update="word2vec"))
    return out
