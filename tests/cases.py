"""Test-table tiers: a table over the registries runs the paper's output layers in the
default suite and marks the rest (the layers beyond the paper, and any layer registered
later) slow, where the table checks composition machinery that those layers share with a
default one (window groups, batch parts, draws per step, vmap/jit, curvature). Every
registered layer still runs by default in tests/test_rules.py's rule == autodiff, padding,
row-sparsity and skipped-negative tables and in tests/test_outputs.py."""

from __future__ import annotations

import pytest

#: the output layers of the paper (softmax, hierarchical softmax, negative sampling)
PAPER_LAYERS = frozenset({"softmax", "hierarchical", "negative"})


def tiered(cases: list, keep=lambda m: m.output in PAPER_LAYERS, model=lambda c: c) -> list:
    """``cases`` with those whose model ``keep`` rejects wrapped as slow ``pytest.param``s."""
    slow = pytest.mark.slow
    return [
        c if keep(model(c)) else pytest.param(*(c if isinstance(c, tuple) else (c,)), marks=slow)
        for c in cases
    ]
