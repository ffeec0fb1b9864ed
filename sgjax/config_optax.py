"""What ``optimizer.name`` and ``optimizer.chain`` name: optax callables or dotted import paths.

A name without a dot is looked up in optax: ``optimizer.name`` among the optimizers
(:func:`optax_optimizer_names`), a chain entry among the transforms
(:func:`optax_transform_names`). A dotted name ``package.module.callable`` is imported with
importlib (the longest importable module prefix, then attributes), so ``optax.adam``,
``optax.contrib.muon`` or a project's own ``mypkg.optim.my_transform`` all work; it must
return an ``optax.GradientTransformation`` (the optimizer is called with
``learning_rate=schedule, **optimizer.kwargs``, a chain entry with its own kwargs).

:func:`check_optimizer` runs at load time (from :func:`sgjax.config._validate`): every name
resolves and every keyword argument is a parameter of its callable (a chain entry's required
ones present) whose value is of the parameter's kind (a number, true/false, a string, one of a
Literal's choices: :func:`expected_kind`), with the key (``optimizer.chain[0]``) and where it
was set in each message; :mod:`sgjax.optim` builds and probes the result.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import types
import typing
from collections import abc
from collections.abc import Callable, Mapping
from typing import Any

from sgjax.config import ConfigError, OptimizerConfig
from sgjax.config_load import origin


def _optax_callables(keep: Callable[[inspect.Signature], bool]) -> tuple[str, ...]:
    """Sorted names of optax's public functions whose signature ``keep`` accepts."""
    import optax

    names = []
    for name in dir(optax):
        obj = getattr(optax, name)
        if name.startswith("_") or inspect.isclass(obj) or not callable(obj):
            continue
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        if keep(sig):
            names.append(name)
    return tuple(sorted(names))


@functools.cache
def optax_optimizer_names() -> tuple[str, ...]:
    """Names of the optax callables that take a ``learning_rate`` (valid ``optimizer.name``)."""
    return _optax_callables(lambda sig: "learning_rate" in sig.parameters)


@functools.cache
def optax_transform_names() -> tuple[str, ...]:
    """Names of the optax callables that return a ``GradientTransformation`` (valid
    ``optimizer.chain`` entries without a dotted path)."""

    def returns_transform(sig: inspect.Signature) -> bool:
        r = sig.return_annotation
        return "GradientTransformation" in str(getattr(r, "__name__", r))

    return _optax_callables(returns_transform)


def display(name: str) -> str:
    """How messages write the callable: ``optax.adam`` for an optax name, else the path."""
    return name if "." in name else f"optax.{name}"


def resolve(name: str, key: str, here: str = "") -> Callable[..., Any]:
    """The callable that ``name`` (the value of ``key``) names: ``optax.<name>`` for a plain
    name, else the dotted import path. :class:`ConfigError` naming ``key`` if it does not
    resolve to a callable (``here``: where the key was set, for the message)."""
    import optax

    at = f"{here}: " if here else ""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{at}{key}: expected an optax name or a dotted path, got {name!r}")
    if "." not in name:
        obj = getattr(optax, name, None)
        if obj is None or not callable(obj):
            raise ConfigError(f"{at}{key}={name!r} is not in optax (optax {optax.__version__})")
        return obj
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{at}{key}={name!r} is not a dotted path package.module.callable")
    obj, rest = None, parts
    for i in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:i])
        try:
            obj, rest = importlib.import_module(module), parts[i:]
            break
        except ModuleNotFoundError as e:
            if e.name is None or not (module + ".").startswith(e.name + "."):  # inside it
                raise ConfigError(f"{at}{key}={name!r}: importing {module} failed: {e}") from None
        except Exception as e:  # noqa: BLE001 - the module itself raised while importing
            raise ConfigError(
                f"{at}{key}={name!r}: importing {module} failed: {type(e).__name__}: {e}"
            ) from None
    if obj is None:
        raise ConfigError(f"{at}{key}={name!r}: no module {parts[0]!r} can be imported")
    for i, attr in enumerate(rest):
        if not hasattr(obj, attr):
            owner = ".".join(parts[: len(parts) - len(rest) + i])
            close = difflib.get_close_matches(attr, [a for a in dir(obj) if a[:1] != "_"], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{at}{key}={name!r}: {owner} has no attribute {attr!r}{hint}")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise ConfigError(f"{at}{key}={name!r} is a {type(obj).__name__}, not a callable")
    return obj


def chain_entries(o: OptimizerConfig) -> list[tuple[str, str, dict[str, Any]]]:
    """``(key, name, kwargs)`` of every ``optimizer.chain`` entry, in order: each entry a
    one-key mapping ``{name: kwargs}`` (as loading normalises it) or a bare name."""
    out = []
    for i, entry in enumerate(o.chain or ()):
        key = f"optimizer.chain[{i}]"
        if isinstance(entry, str):
            entry = {entry: {}}
        if not (isinstance(entry, Mapping) and len(entry) == 1):
            raise ConfigError(f"{key}: expected {{NAME: {{KWARG: VALUE}}}} or NAME, got {entry!r}")
        ((name, kwargs),) = entry.items()
        out.append((key, name, dict(kwargs or {})))
    return out


def check_optimizer(o: OptimizerConfig, where: dict[str, str], source: str) -> None:
    """optimizer.name names an optimizer (optax or dotted) and optimizer.kwargs are parameters
    of it; every optimizer.chain entry names a transform and its kwargs fit its signature."""
    import optax

    here = origin(where, source, "optimizer.name")
    if "." not in o.name and o.name not in optax_optimizer_names():
        names = optax_optimizer_names()
        close = difflib.get_close_matches(o.name, names, n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        kind = "is not an optimizer" if hasattr(optax, o.name) else "is not in optax"
        raise ConfigError(
            f"{here}: optimizer.name={o.name!r} {kind} (optax {optax.__version__}); "
            f"{hint}valid: {', '.join(names)} (or a dotted path package.module.callable)"
        )
    params = _parameters(resolve(o.name, "optimizer.name", here))
    if params is not None and "learning_rate" not in params and not _takes_any(params):
        raise ConfigError(
            f"{here}: optimizer.name={o.name!r} takes no learning_rate argument (it is called "
            "as name(learning_rate=schedule, **optimizer.kwargs))"
        )
    for k in o.kwargs:
        key = f"optimizer.kwargs.{k}"
        if k == "learning_rate":
            raise ConfigError(
                f"{origin(where, source, key)}: {key}: set optimizer.learning_rate instead"
            )
        _check_kwarg(
            params,
            k,
            o.kwargs[k],
            key,
            origin(where, source, key),
            display(o.name),
            skip="learning_rate",
            tail=" (to drop kwargs from a recipe: --set optimizer.kwargs={})",
        )
    for key, name, kwargs in chain_entries(o):
        _check_chain_entry(key, name, kwargs, where, source)


def _check_chain_entry(
    key: str, name: str, kwargs: dict[str, Any], where: dict[str, str], source: str
) -> None:
    here = origin(where, source, key)
    if "." not in name and name not in optax_transform_names():
        close = difflib.get_close_matches(name, optax_transform_names(), n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"{here}: {key}: {name!r} is not an optax transform; {hint}write an optax name "
            "(clip_by_global_norm, add_decayed_weights, clip, scale_by_adam, ...) or a dotted "
            "path package.module.callable"
        )
    params = _parameters(resolve(name, key, here))
    for k in kwargs:
        _check_kwarg(params, k, kwargs[k], f"{key}.{name}.{k}", here, display(name))
    required = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    missing = [
        p
        for p, v in (params or {}).items()
        if v.default is inspect.Parameter.empty and v.kind in required and p not in kwargs
    ]
    if missing:
        example = ", ".join(f"{p}: ..." for p in missing)
        raise ConfigError(
            f"{here}: {key}: {display(name)} needs {', '.join(missing)}: write "
            f"- {name}: {{{example}}}"
        )


def _parameters(fn: Callable[..., Any]) -> Mapping[str, inspect.Parameter] | None:
    """The parameters of ``fn``; None if it has no signature (then nothing is checked)."""
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None


def _takes_any(params: Mapping[str, inspect.Parameter]) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _check_kwarg(
    params: Mapping[str, inspect.Parameter] | None,
    k: str,
    value: Any,
    key: str,
    here: str,
    what: str,
    skip: str = "",
    tail: str = "",
) -> None:
    """ConfigError naming ``key`` unless ``k`` is a parameter of ``what`` (or it takes any)
    and ``value`` is of its kind."""
    if params is not None and k in params:
        return _check_value(params[k], value, key, here, what)
    if params is None or _takes_any(params):
        return
    valid = [p for p in params if p != skip]
    close = difflib.get_close_matches(k, valid, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"{here}: {key}: {what} has no parameter {k!r}; {hint}"
        f"valid: {', '.join(valid) or '(none)'}{tail}"
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


#: The kinds of config value a parameter can take, by the type of its default or annotation,
#: the first that a union holds winning (optax's ArrayLike holds bool, int and float: a
#: number): (description, test). Values of other parameters are not checked.
KINDS: dict[type, tuple[str, Callable[[Any], bool]]] = {
    float: ("a number", _is_number),
    int: ("a number", _is_number),
    str: ("a string", lambda v: isinstance(v, str)),
    bool: ("true or false", lambda v: isinstance(v, bool)),
}

_CONTAINERS = (tuple, list, dict, abc.Sequence, abc.Iterable, abc.Mapping)


def expected_kind(p: inspect.Parameter) -> tuple[str, Callable[[Any], bool]] | None:
    """(description, test) of the config values parameter ``p`` accepts, from its default's
    type, else its annotation (a type, a union of types or a Literal); None (not checked) if
    neither tells, or the annotation holds Any, a container or both numbers and strings."""
    hint = p.annotation
    if typing.get_origin(hint) is typing.Literal:
        choices = typing.get_args(hint)
        return f"one of {', '.join(map(repr, choices))}", lambda v: v in choices
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    if Any in args or (str in args and float in args):
        return None
    if any((typing.get_origin(a) or a) in _CONTAINERS for a in args):
        return None
    none_ok = p.default is None or type(None) in args
    if p.default is not p.empty and p.default is not None:
        args = (type(p.default),)
    kind = next((KINDS[t] for t in KINDS if t in args), None)
    if kind is None or not none_ok:
        return kind
    return f"{kind[0]} or null", lambda v: v is None or kind[1](v)


def _check_value(p: inspect.Parameter, value: Any, key: str, here: str, what: str) -> None:
    """ConfigError naming ``key``, ``value`` and the kind ``p`` takes if ``value`` is not one."""
    kind = expected_kind(p)
    if kind is not None and not kind[1](value):
        default = "" if p.default is p.empty else f" (default {p.default!r})"
        raise ConfigError(f"{here}: {key}={value!r}: {what}'s {p.name} takes {kind[0]}{default}")
