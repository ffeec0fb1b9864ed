"""The optimizer keys' names: ``optimizer.name`` resolved in optax, its kwargs checked.

:func:`check_optimizer` runs at load time (from :func:`sgjax.config._validate`): the name must
be an optax optimizer (:func:`sgjax.config.optax_optimizer_names`) and every key of
``optimizer.kwargs`` a parameter of it; :mod:`sgjax.optim` builds it.
"""

from __future__ import annotations

import difflib

from sgjax.config import ConfigError, OptimizerConfig, optax_optimizer_names
from sgjax.config_load import origin


def check_optimizer(o: OptimizerConfig, where: dict[str, str], source: str) -> None:
    """optimizer.name is an optax optimizer; optimizer.kwargs are parameters of it."""
    import inspect

    import optax

    names = list(optax_optimizer_names())
    if o.name not in names:
        close = difflib.get_close_matches(o.name, names, n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        kind = "is not an optimizer" if hasattr(optax, o.name) else "is not in optax"
        raise ConfigError(
            f"{origin(where, source, 'optimizer.name')}: optimizer.name={o.name!r} {kind} "
            f"(optax {optax.__version__}); {hint}valid: {', '.join(names)}"
        )
    params = inspect.signature(getattr(optax, o.name)).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = [p for p in params if p != "learning_rate"]
    for k in o.kwargs:
        key = f"optimizer.kwargs.{k}"
        here = origin(where, source, key)
        if k == "learning_rate":
            raise ConfigError(f"{here}: {key}: set optimizer.learning_rate instead")
        if k not in params and not takes_any:
            close = difflib.get_close_matches(k, valid, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ConfigError(
                f"{here}: {key}: optax.{o.name} has no parameter {k!r}; {hint}"
                f"valid: {', '.join(valid) or '(none)'} "
                "(to drop kwargs from a recipe: --set optimizer.kwargs={})"
            )
