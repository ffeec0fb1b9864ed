"""Registries keyed by name (big_vision's lookups): a dict of records, an ``add`` that
checks the record's type, and a lookup that also takes a dotted import path, so a record
defined outside the package needs no edit here (:mod:`sgjax.inputs`, :mod:`sgjax.outputs`).
"""

from __future__ import annotations

import importlib
from typing import Any


def add(registry: dict[str, Any], name: str, record: Any, kind: type) -> Any:
    """``registry[name] = record`` (replacing any earlier one) if it is a ``kind``."""
    if not isinstance(record, kind):
        raise TypeError(f"registering {name!r}: expected a {kind.__name__}, got {type(record)}")
    registry[name] = record
    return record


def find(registry: dict[str, Any], name: str, kind: type, what: str) -> Any:
    """The record registered as ``name``, or the ``kind`` at the dotted path ``name``
    (``package.module.ATTRIBUTE``, imported on first use). ValueError lists the choices."""
    if name in registry:
        return registry[name]
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            record = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"{what} {name!r} cannot be imported: {e}") from None
        if not isinstance(record, kind):
            raise ValueError(f"{name!r} is a {type(record).__name__}, not a {kind.__name__}")
        return record
    raise ValueError(
        f"unknown {what} {name!r}; valid: {', '.join(registry)} "
        "(or a dotted path package.module.NAME)"
    )
