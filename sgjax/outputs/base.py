"""The output-layer record and its registry (the paper's hidden -> output half).

An output layer is an immutable record of pure functions (optax's NamedTuple style, no
class hierarchy). It owns its tables (``W_out``: the output vectors v'_j, or the Huffman
tree's inner-node vectors), adds its fields to a batch on the device (negatives, Huffman
paths, sampled classes), gives the per-pair loss E in the paper's symbols and its explicit
rule (errors e, EH, the row gradients of its tables and, optionally, each row entry's
curvature for :func:`sgjax.rules.damp_rows`).

Layout of what the rule sees (:mod:`sgjax.inputs` builds it): every example has H hidden
vectors ``h_BxHxN`` and T output words ``targets_BxT``, and every hidden vector predicts
every output word of its example: the pairs are H x T, weighted by ``w_BxHxT`` (0/1:
padding, masked context slots). Skip-gram in the paper's orientation has H = 1, T = C;
in word2vec.c's orientation H = C, T = 1; CBOW H = T = 1. Fields a layer adds have a
*scope*: ``"example"`` (B, ...), ``"target"`` (B, T, ...) or ``"pair"`` (B, H, T, ...).

``REGISTRY`` maps each name to its layer: the config's ``model.output``, the CLI's choices,
``sgjax gradcheck`` and the test tables all read it. A layer defined elsewhere joins with
:func:`register`, or is named in a config by its dotted path (``mypkg.layers.LAYER``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax

from sgjax import registry

Params = dict[str, jax.Array]


class OutputRule(NamedTuple):
    """What an output layer's explicit rule returns for a batch.

    ``E``: the loss summed over the batch; ``EH``: dE/dh (B, H, N); ``grads``: the gradient
    of each table the layer owns (``sgjax.sparse.RowGrads`` or a dense array);
    ``curvature``: with ``curvature=True``, per table the curvature of every row entry along
    its row (aligned with the RowGrads' entries), and ``k_h`` (B, H) that of every hidden
    vector, ``sum_j w s'(u_j) |v'_j|^2``; else None.
    """

    E: jax.Array
    EH: jax.Array
    grads: dict[str, Any]
    curvature: dict[str, jax.Array] | None = None
    k_h: jax.Array | None = None


class OutputLayer(NamedTuple):
    """An output layer, as pure functions. ``model`` is a :class:`sgjax.model.ModelSpec`.

    - ``tables(V) -> {name: rows}``: the tables it owns (initialised to zero, as word2vec).
    - ``prepare(vocab, model) -> dict``: host-side, once: device constants (noise sampler,
      Huffman tree) passed to ``complete`` and ``loss``/``rule`` as ``consts``.
    - ``complete(key, targets_BxT, H, consts, model) -> fields``: added to a batch on the
      device; ``draws`` says whether it uses ``key`` (negatives are then drawn for a whole
      compiled call at once).
    - ``scopes(model) -> {field: "example" | "target" | "pair"}``.
    - ``loss(params, h_N, w_O, fields, consts, model) -> E`` of ONE (h, output word) pair,
      ``fields`` that pair's slice of each field.
    - ``rule(params, h_BxHxN, targets_BxT, w_BxHxT, fields, consts, model, curvature)
      -> OutputRule``: the explicit rule for a batch, equal to ``jax.grad`` of the loss.
    - ``defaults``: config values this layer needs where the user sets none, as dotted keys
      (``{"optimizer.end_factor": 0.1}``); they win over the input side's
      (:mod:`sgjax.config_defaults`).
    """

    tables: Callable[[int], dict[str, int]]
    prepare: Callable[[Any, Any], dict]
    complete: Callable[..., dict]
    scopes: Callable[[Any], dict[str, str]]
    loss: Callable[..., jax.Array]
    rule: Callable[..., OutputRule]
    draws: bool = False
    curvature: bool = False  # the rule can return row curvatures (row damping)
    dense: bool = False  # E reads every row of its tables (a normaliser): no padding rows
    defaults: Mapping[str, Any] = MappingProxyType({})


REGISTRY: dict[str, OutputLayer] = {}


def const(consts: dict | None, name: str, model) -> Any:
    """``consts[name]``, or a ValueError saying the constants come from ``prepare``."""
    if not consts or name not in consts:
        raise ValueError(
            f"output layer {model.output!r} needs consts[{name!r}]: pass the constants of "
            "model.layer.prepare(vocab, model)"
        )
    return consts[name]


def register(name: str, layer: OutputLayer) -> OutputLayer:
    """Add ``layer`` to the registry under ``name`` (replacing any earlier one)."""
    return registry.add(REGISTRY, name, layer, OutputLayer)


def lookup(name: str) -> OutputLayer:
    """The layer registered as ``name``, or the OutputLayer at the dotted path ``name``
    (``package.module.ATTRIBUTE``, imported on first use). ValueError lists the choices."""
    return registry.find(REGISTRY, name, OutputLayer, "output layer")
