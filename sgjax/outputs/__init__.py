"""Output layers, one module each, and their registry (:mod:`sgjax.outputs.base`).

Importing this package registers the built-in layers, in the order of the import line
below (the order ``sgjax gradcheck`` and the tables list them). A new objective is one
module that calls :func:`register`, and its name on that line (or a dotted path in the
config, with no edit here).
"""
# ruff: noqa: I001 - the import order is the registry's order

from sgjax.outputs.base import REGISTRY, OutputLayer, OutputRule, lookup, register
from sgjax.outputs import softmax, hierarchical, negative, nce, sampled  # noqa: F401 - registers them

__all__ = ["REGISTRY", "OutputLayer", "OutputRule", "lookup", "register"]
