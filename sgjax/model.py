"""The model: an input side (:mod:`sgjax.inputs`) composed with an output layer
(:mod:`sgjax.outputs`), named by a :class:`ModelSpec`.

The spec holds names and plain options only, so it is hashable and compares equal across
builds (a static argument of the compiled step); :attr:`ModelSpec.side` and
:attr:`ModelSpec.layer` look the records up in the registries. :func:`complete` adds the
output layer's fields to a batch on the device; :func:`window_bucket_slices` cuts a batch
grouped by effective window into its groups, using the fields' scopes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax

from sgjax.inputs import InputSide, lookup_input, side_name
from sgjax.outputs import OutputLayer, lookup


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which input side and output layer, and their options (see :mod:`sgjax.config`)."""

    input: str = "skipgram"  # a registered input side (sgjax.inputs.INPUTS)
    output: str = "negative"  # a registered output layer, or its dotted path
    negatives: int = 5  # K noise words per pair (or per example when shared)
    shared_negatives: bool = False  # one set of K per example, shared by its pairs
    ns_exponent: float = 0.75  # noise P_n(w) ∝ count(w)^ns_exponent
    cbow_mean: bool = True  # CBOW h = mean of the context vectors (False: the sum)
    cbow_update: str = "paper"  # CBOW input rows: paper (EH / C) | word2vec (EH)

    @property
    def side(self) -> InputSide:
        return lookup_input(self.input)

    @property
    def layer(self) -> OutputLayer:
        return lookup(self.output)

    @classmethod
    def from_config(cls, model: Any, data: Any = None) -> ModelSpec:
        """From the config's ``model`` section (and ``data.ns_exponent``)."""
        return cls(
            input=side_name(str(model.architecture), str(model.skipgram_input)),
            output=str(model.output),
            negatives=int(model.negatives),
            shared_negatives=bool(model.shared_negatives),
            ns_exponent=float(data.ns_exponent) if data is not None else 0.75,
            cbow_mean=bool(model.cbow_mean),
            cbow_update=str(model.cbow_update),
        )


def spec(architecture: str = "skipgram", output: str = "negative", **options: Any) -> ModelSpec:
    """A :class:`ModelSpec` from the config's words: ``spec("skipgram", "hierarchical",
    skipgram_input="context")``."""
    name = side_name(architecture, options.pop("skipgram_input", "center"))
    return ModelSpec(input=name, output=output, **options)


def complete(key: jax.Array, batch: Mapping[str, jax.Array], consts: dict, model: ModelSpec):
    """The batch with the output layer's fields added (negatives, Huffman paths, ...)."""
    side = model.side
    targets, _ = side.targets(batch)
    H, _ = side.layout(batch["context"].shape[1])
    return {**batch, **model.layer.complete(key, targets, H, consts, model)}


def window_bucket_slices(batch: Mapping[str, jax.Array], window: int, model: ModelSpec):
    """The ``window`` groups of a batch made by ``epoch_batches(window_buckets=True)``: group
    b (1..window) is rows ``[(b-1) B/w, b B/w)`` with every context-slot axis cut to slots
    ``w-b .. w+b-1`` (offsets -b..-1, 1..b), the only ones its mask can set: ``context``,
    ``mask``, and the layer's fields whose scope runs over the side's context axis. The
    groups together hold every unmasked slot, so a loss or rule summed over them equals
    its value on the whole batch. ``words`` (no row axis) is left out."""
    axis = model.side.context_axis
    scopes = model.layer.scopes(model)
    cut_at = {"context": 1, "mask": 1}
    for name, scope in scopes.items():
        if scope == "target" and axis == "target":
            cut_at[name] = 1
        elif scope == "pair" and axis in ("hidden", "target"):
            cut_at[name] = 1 if axis == "hidden" else 2
    B = batch["center"].shape[0]
    Bb = B // window
    out = []
    for b in range(1, window + 1):
        rows, cols = slice((b - 1) * Bb, b * Bb), slice(window - b, window + b)
        part = {}
        for name, x in batch.items():
            if name == "words":
                continue
            at = cut_at.get(name)
            part[name] = x[rows] if at is None else x[(rows,) + (slice(None),) * (at - 1) + (cols,)]
        out.append(part)
    return out
