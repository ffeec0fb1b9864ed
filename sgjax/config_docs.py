"""The config keys and their docs as text, from the schema: the epilog of ``sgjax train --help``.

Every field of the dataclasses of :mod:`sgjax.config` carries its doc in
``metadata["doc"]`` (a section's in the :class:`~sgjax.config.Config` field that holds it);
:func:`schema_keys` walks them, :func:`describe_keys` lays them out. Only :mod:`sgjax.config`
is imported (no omegaconf, no JAX), so ``sgjax --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from enum import Enum
from typing import Any

from sgjax.config import Config

#: The layout of :func:`describe_keys`: total width and the widest doc column.
WIDTH = 100
MAX_COLUMN = 40

HEADER = """\
config keys: set them in a --config YAML file (SECTION: {KEY: VALUE}; several --config files
merge in order, later ones winning key by key) or with --set SECTION.KEY=VALUE (after the files).
KEY=VALUE below is the default of the default model, skip-gram with negative sampling; other
models change a few defaults. A model's resolved config, as a run writes it to config.yaml:
  sgjax config --set model.architecture=cbow --set model.output=hierarchical"""


@dataclasses.dataclass(frozen=True)
class Key:
    """One documented key of the schema: a section (``model``) or a leaf (``model.dim``)."""

    name: str
    doc: str
    default: Any = None
    section: bool = False


def schema_keys(schema: type = Config, prefix: str = "") -> list[Key]:
    """Every section and key of ``schema`` in order, with its doc ("" where a field has none)
    and, for a leaf, its default."""
    out = []
    for f in dataclasses.fields(schema):
        name, doc = f"{prefix}{f.name}", str(f.metadata.get("doc", ""))
        if callable(f.default_factory) and dataclasses.is_dataclass(f.default_factory):
            out.append(Key(name, doc, section=True))
            out.extend(schema_keys(f.default_factory, name + "."))
        else:
            has_factory = f.default_factory is not dataclasses.MISSING
            default = f.default_factory() if has_factory else f.default  # type: ignore[misc]
            out.append(Key(name, doc, default))
    return out


def yaml_value(value: Any) -> str:
    """A default as it is written in YAML or after ``--set KEY=``: null, true, [], 0.001."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


#: words with a hyphen stay whole ("per-example"): the help is searched for each key's doc
_WRAP = {"break_on_hyphens": False}


def describe_keys(width: int = WIDTH) -> str:
    """The sections and keys of the config with their defaults and docs, wrapped to
    ``width``: the epilog of ``sgjax train --help`` (for RawDescriptionHelpFormatter)."""
    keys = schema_keys()
    entries = {k.name: f"  {k.name}={yaml_value(k.default)}" for k in keys if not k.section}
    column = min(MAX_COLUMN, max(len(e) for e in entries.values()) + 2)
    lines = [HEADER]
    for k in keys:
        if k.section:
            text = f"{k.name}: {k.doc}"
            lines += ["", textwrap.fill(text, width, subsequent_indent="  ", **_WRAP)]
            continue
        entry = entries[k.name]
        doc = textwrap.wrap(k.doc, width - column, **_WRAP) or [""]
        if len(entry) + 2 <= column:
            lines.append(entry.ljust(column) + doc[0])
            doc = doc[1:]
        else:
            lines.append(entry)
        lines += [" " * column + d for d in doc]
    return "\n".join(lines) + "\n"
