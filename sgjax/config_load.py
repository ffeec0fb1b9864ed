"""Loading a :class:`~sgjax.config.Config`: YAML files, omegaconf merging and ``--set`` overrides.

The internals behind :func:`sgjax.config.load_config` and :func:`sgjax.config.config_from_dict`:
the YAML text of each file is composed once for the line of every key (``FILE:LINE`` in
messages), the files are merged in order into ``OmegaConf.structured(Config)`` (which checks
keys, types and enumerations; each key remembers the file that set it last), overridden
item by item, converted to the frozen dataclasses and normalised (resolved paths, plain
dicts). omegaconf's exceptions become :class:`~sgjax.config.ConfigError` naming the dotted key,
where it was set and, for an unknown key, the close matches among the valid ones. Range and
cross-field checks follow in :mod:`sgjax.config_checks`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sgjax.config import Config, ConfigError


def load_files(
    paths: str | os.PathLike | Sequence[str | os.PathLike] | None, overrides: Sequence[str]
) -> tuple[Config, dict[str, str], str]:
    """:func:`build` from the YAML files at ``paths`` (one path, a sequence merged in order,
    or None: the defaults). The source named for keys no file sets is the files' names
    joined by `` + `` (``<defaults>`` with none)."""
    if paths is None:
        paths = []
    elif isinstance(paths, str | os.PathLike):
        paths = [paths]
    layers = [read_file(os.fspath(p)) for p in paths]
    source = " + ".join(src for _, _, src in layers) or "<defaults>"
    return build_layers(layers, source, overrides)


def load_file(
    path: str | os.PathLike | None, overrides: Sequence[str]
) -> tuple[Config, dict[str, str], str]:
    """:func:`build` from the YAML file at ``path`` (None: the defaults)."""
    return load_files(path, overrides)


def read_file(path: str) -> tuple[Any, dict[str, str], str]:
    """``(data, where, path)`` of the YAML file at ``path``: its mapping of sections and the
    ``FILE:LINE`` of every dotted key it writes (a layer for :func:`build_layers`)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and not isinstance(node, yaml.MappingNode):
            raise ConfigError(
                f"{path}: the top level must be a mapping of sections ({', '.join(_SECTIONS)}), "
                f"got a {node.id}"
                + (f" {node.value!r}" if isinstance(node, yaml.ScalarNode) else "")
            )
        lines = _key_lines(node)
        data = OmegaConf.create(text) if node is not None else OmegaConf.create({})
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{path}: {_first_line(e)}") from None
    assert isinstance(data, DictConfig)
    return data, {k: f"{path}:{line}" for k, line in lines.items()}, path


_SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


def _first_line(e: Exception) -> str:
    msg = getattr(e, "msg", None) or str(e)
    return str(msg).splitlines()[0] if str(msg) else type(e).__name__


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Dotted key -> 1-based line where it is written, from a composed YAML node tree; list
    items are ``key[i]`` (``optimizer.chain[0]``, ``optimizer.chain[0].clip.max_delta``)."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            out[key] = k.start_mark.line + 1
            out.update(_key_lines(v, key + "."))
    elif isinstance(node, yaml.SequenceNode) and prefix:
        for i, v in enumerate(node.value):
            key = f"{prefix[:-1]}[{i}]"
            out[key] = v.start_mark.line + 1
            out.update(_key_lines(v, key + "."))
    return out


def _schema_section(full_key: str) -> tuple[str, list[str]]:
    """(parent dotted key, valid child names) for an unknown ``full_key``."""
    parent = full_key.rpartition(".")[0]
    node: Any = Config
    for part in parent.split(".") if parent else ():
        fields = {f.name: f for f in dataclasses.fields(node)}
        factory = fields[part].default_factory if part in fields else None
        if not (callable(factory) and dataclasses.is_dataclass(factory)):
            return parent, []
        node = factory
    return parent, [f.name for f in dataclasses.fields(node)]


def _explain(e: OmegaConfBaseException, where: str) -> ConfigError:
    key = getattr(e, "full_key", None) or ""
    msg = _first_line(e)
    if type(e).__name__ in ("ConfigKeyError", "ConfigAttributeError") and "not in" in msg:
        parent, valid = _schema_section(key)
        name = key.split(".")[-1]
        text = f"{where}: unknown key '{key}'"
        if valid:
            close = difflib.get_close_matches(name, valid, n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            text += f"{hint}; valid keys in '{parent or '<top level>'}': {', '.join(valid)}"
        return ConfigError(text)
    return ConfigError(f"{where}: {key}: {msg}" if key else f"{where}: {msg}")


def _unlock(node: Any) -> None:
    """Frozen dataclasses make read-only nodes; merging and overrides need them writable."""
    if isinstance(node, DictConfig):
        node._set_flag("readonly", None)
        for k in node.keys():
            _unlock(node._get_node(k))


def _merge_layer(merged: DictConfig, data: Any, where: dict[str, str], source: str) -> Any:
    """``data`` (a mapping of sections) merged into ``merged``, its errors named by ``where``."""
    data = {k: v for k, v in data.items() if not (k in _SECTIONS and v is None)}  # "model:"
    for k, v in data.items():
        if k in _SECTIONS and not isinstance(v, Mapping | DictConfig):
            keys = ", ".join(_schema_section(f"{k}.x")[1])
            raise ConfigError(
                f"{where.get(k, source)}: section '{k}' must be a mapping of keys ({keys}), "
                f"got {type(v).__name__} {v!r}"
            )
    try:
        out = OmegaConf.merge(merged, data)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        raise _explain(e, where.get(key, source)) from None
    _unlock(out)
    return out


def _replaced_keys(data: Any, prefix: str = "") -> list[str]:
    """The dotted keys of a layer whose values replace what was there: its values that are
    not mappings (a mapping merges key by key into the earlier layers')."""
    out = []
    if isinstance(data, Mapping | DictConfig):
        for k, v in data.items():
            if isinstance(v, Mapping | DictConfig):
                out.extend(_replaced_keys(v, f"{prefix}{k}."))
            elif v is not None or prefix:  # a null section ("model:") is no value
                out.append(f"{prefix}{k}")
    return out


def build(
    data: Any, where: dict[str, str], source: str, overrides: Sequence[str]
) -> tuple[Config, dict[str, str], str]:
    """Defaults merged with ``data`` (a mapping of sections), then ``overrides``, normalised:
    ``(config, where, source)`` with ``where`` the dotted key -> where it was set, for the
    checks of :func:`sgjax.config._validate` that follow."""
    return build_layers([(data, where, source)], source, overrides)


def build_layers(
    layers: Sequence[tuple[Any, dict[str, str], str]], source: str, overrides: Sequence[str]
) -> tuple[Config, dict[str, str], str]:
    """:func:`build` of several layers ``(data, where, source)`` merged in order onto the
    defaults, key by key (a later layer's value replaces, its mapping merges), then
    ``overrides``. An error in a layer names the layer's ``where`` or ``source``; ``source``
    names the whole for keys no layer sets."""
    merged = OmegaConf.structured(Config)
    _unlock(merged)
    where: dict[str, str] = {}
    for data, layer_where, layer_source in layers:
        merged = _merge_layer(merged, data, layer_where, layer_source)
        for key in _replaced_keys(data):  # what the earlier layers wrote below a replaced key
            for k in list(where):
                if k.startswith((key + ".", key + "[")):
                    del where[k]
        where.update(layer_where)
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. model.dim=300")
        key = item.split("=", 1)[0].strip()
        if not key:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = OmegaConf.select(OmegaConf.from_dotlist([item]), key)
            # a section (model={dim: 3}) merges into its defaults; any other value, a
            # dict such as optimizer.kwargs={} included, replaces what was there
            target = OmegaConf.select(merged, key, default=None)
            section = isinstance(target, DictConfig) and dataclasses.is_dataclass(
                OmegaConf.get_type(target)
            )
            OmegaConf.update(merged, key, value, merge=section)
        except OmegaConfBaseException as e:
            raise _explain(e, f"--set {item}") from None
        if not section:  # a replaced value drops what was written below it; a merge keeps it
            for k in list(where):
                if k == key or k.startswith((key + ".", key + "[")):
                    del where[k]
        where[key] = f"--set {item}"
        if section:  # the keys it sets, so the model's defaults leave them alone
            where.update(dict.fromkeys(key_paths(value, key + "."), f"--set {item}"))
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:  # e.g. a failing ${interpolation}
        key = getattr(e, "full_key", None) or ""
        raise _explain(e, where.get(key, source)) from None
    assert isinstance(cfg, Config)
    return _normalise(cfg, where, source), where, source


def key_paths(d: Any, prefix: str = "") -> list[str]:
    """The dotted keys written in a nested mapping (sections and leaves; lists are leaves)."""
    out = []
    if isinstance(d, Mapping | DictConfig):
        for k, v in d.items():
            out.append(f"{prefix}{k}")
            out.extend(key_paths(v, f"{prefix}{k}."))
    return out


def origin(where: dict[str, str], source: str, key: str) -> str:
    """Where ``key`` (or the closest enclosing key that was written) was set, else ``source``."""
    while key:
        if key in where:
            return where[key]
        key = key[: key.rindex("[")] if key.endswith("]") else key.rpartition(".")[0]
    return source


def _normalise(cfg: Config, where: dict[str, str], source: str) -> Config:
    def err(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{origin(where, source, key)}: {key}: {msg}")

    corpus = cfg.data.corpus
    if corpus is not None:
        paths = (corpus,) if isinstance(corpus, str) else corpus
        if not isinstance(paths, list | tuple) or not paths:
            raise err("data.corpus", f"expected a path, a list of paths or null, got {corpus!r}")
        for p in paths:
            if not isinstance(p, str) or not p:
                raise err("data.corpus", f"every path must be a non-empty string, got {p!r}")
        corpus = tuple(paths)

    def eval_path(key: str, v: Any) -> str | bool | None:
        if v is None or v is True:
            return None
        if v is False or (isinstance(v, str) and v):
            return v
        raise err(key, f"expected a path, null (shipped data) or false (skip), got {v!r}")

    o = cfg.optimizer
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, corpus=corpus),
        optimizer=dataclasses.replace(
            o,
            kwargs=dict(o.kwargs),
            table_scales=dict(o.table_scales),
            chain=_chain(o.chain, err),
        ),
        eval=dataclasses.replace(
            cfg.eval,
            analogies=eval_path("eval.analogies", cfg.eval.analogies),
            similarity=eval_path("eval.similarity", cfg.eval.similarity),
        ),
    )


def _chain(chain: Any, err: Callable[[str, str], ConfigError]) -> list[dict[str, dict]]:
    """``optimizer.chain`` as a list of one-key mappings ``{name: kwargs}`` (a bare name gets
    no kwargs); names and kwargs are checked against the callables by sgjax.config_optax."""
    syntax = "{NAME: {KWARG: VALUE, ...}} or a bare NAME, e.g. clip_by_global_norm: {max_norm: 1}"
    if chain is None:
        return []
    if not isinstance(chain, list | tuple):
        raise err("optimizer.chain", f"expected a list of transforms, each {syntax}; got {chain!r}")
    out = []
    for i, entry in enumerate(chain):
        key = f"optimizer.chain[{i}]"
        if isinstance(entry, Mapping) and len(entry) == 1:
            ((name, kwargs),) = entry.items()
        else:
            name, kwargs = entry, None
        if not isinstance(name, str) or not name:
            raise err(key, f"expected {syntax}; got {entry!r}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise err(
                key,
                f"the arguments of {name} must be a mapping {{KWARG: VALUE}}, got "
                f"{kwargs!r} (write {name}: {{ARGUMENT_NAME: {kwargs!r}}})",
            )
        if not all(isinstance(k, str) for k in kwargs or {}):
            raise err(key, f"the argument names of {name} must be strings, got {kwargs!r}")
        out.append({name: dict(kwargs or {})})
    return out
