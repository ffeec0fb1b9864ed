"""Range and cross-field checks of a loaded :class:`~sgjax.config.Config`.

The last step of :func:`sgjax.config.load_config` and :func:`sgjax.config.config_from_dict`:
the schema (omegaconf, :mod:`sgjax.config_load`) has already checked keys, types and
enumerations; here the model's defaults are applied (:mod:`sgjax.config_defaults`) and the
values checked against each other. Every failure is a :class:`~sgjax.config.ConfigError`
naming the dotted key and where it was set (``FILE:LINE``, ``--set ITEM``), or the source
(the config files, ``<defaults>``) for a key nobody set.
"""

from __future__ import annotations

import math

from sgjax.config import (
    WARMUP_SCHEDULES,
    Config,
    ConfigError,
    DType,
    Gradients,
    x64_enabled,
)


def validate(cfg: Config, where: dict[str, str], source: str) -> Config:
    """The model's defaults on the keys nobody set, then the range and cross-field checks."""
    from sgjax.config_defaults import model_defaults, model_parts
    from sgjax.config_load import origin as _origin
    from sgjax.config_optax import check_optimizer

    cfg = model_defaults(cfg, where, source)

    def check(ok: bool, key: str, msg: str) -> None:
        if not ok:
            value = cfg
            for part in key.split("."):
                value = getattr(value, part)
            raise ConfigError(f"{_origin(where, source, key)}: {key} {msg}, got {value!r}")

    m, d, o, t, ev = cfg.model, cfg.data, cfg.optimizer, cfg.train, cfg.eval
    check(m.dim >= 1, "model.dim", "must be >= 1")
    check(m.window >= 1, "model.window", "must be >= 1")
    check(m.negatives >= 0, "model.negatives", "must be >= 0")
    side, layer = model_parts(cfg, where, source)
    if layer.draws:
        check(m.negatives >= 1, "model.negatives", f"must be >= 1 with model.output={m.output}")
    if m.shared_negatives:
        check(
            m.architecture == "skipgram" and layer.draws,
            "model.shared_negatives",
            "applies to model.architecture=skipgram with an output layer that draws negatives "
            f"only (here {m.architecture!s} with {m.output!s}; CBOW draws one set per target "
            "already)",
        )
    if m.skipgram_input != "center":
        check(
            m.architecture == "skipgram",
            "model.skipgram_input",
            f"applies to model.architecture=skipgram only (here {m.architecture!s})",
        )

    check(d.min_count >= 1, "data.min_count", "must be >= 1")
    if d.max_vocab_size is not None:
        check(d.max_vocab_size >= 2, "data.max_vocab_size", "must be >= 2 or null (no limit)")
    check(math.isfinite(d.sample) and d.sample >= 0, "data.sample", "must be >= 0 (0 = off)")
    check(math.isfinite(d.ns_exponent), "data.ns_exponent", "must be a finite number")
    check(d.max_line_tokens >= 1, "data.max_line_tokens", "must be >= 1")
    if d.cache_dir is not None:
        check(bool(d.cache_dir), "data.cache_dir", "must be a directory path or null")

    check(
        math.isfinite(o.learning_rate) and o.learning_rate > 0,
        "optimizer.learning_rate",
        "must be a finite number > 0",
    )
    if o.end_learning_rate is not None:
        check(
            math.isfinite(o.end_learning_rate) and o.end_learning_rate >= 0,
            "optimizer.end_learning_rate",
            "must be a finite number >= 0, or null (= end_factor * learning_rate)",
        )
    check(
        math.isfinite(o.end_factor) and 0 < o.end_factor <= 1,
        "optimizer.end_factor",
        "must be in (0, 1]",
    )
    from sgjax.optim import SCHEDULES

    check(
        o.schedule in SCHEDULES,
        "optimizer.schedule",
        f"must be one of {', '.join(SCHEDULES)}",
    )
    if o.schedule == "exponential":
        check(o.end_lr > 0, "optimizer.end_learning_rate", "must be > 0 for schedule exponential")
    if o.warmup_fraction is not None:
        check(
            o.schedule in WARMUP_SCHEDULES,
            "optimizer.warmup_fraction",
            f"is only used by the warmup schedules ({', '.join(sorted(WARMUP_SCHEDULES))}), "
            f"not by schedule {o.schedule!s} (set optimizer.warmup_fraction=null)",
        )
        check(
            math.isfinite(o.warmup_fraction) and 0 <= o.warmup_fraction < 1,
            "optimizer.warmup_fraction",
            "must be in [0, 1)",
        )
    check_optimizer(o, where, source)
    for table, factor in o.table_scales.items():
        key = f"optimizer.table_scales.{table}"
        if table not in ("W", "W_out"):
            raise ConfigError(f"{_origin(where, source, key)}: {key}: the tables are W and W_out")
        if not (math.isfinite(factor) and factor > 0):
            raise ConfigError(
                f"{_origin(where, source, key)}: {key} must be a finite number > 0, got {factor}"
            )
    key = "optimizer.table_scales_min_count"
    check(o.table_scales_min_count >= 0, key, "must be >= 0 (0: every row)")
    if o.table_scales_min_count:
        check(
            o.table_scales.get("W", 1.0) != 1.0,
            key,
            "limits W's factor in optimizer.table_scales, which is 1 here",
        )
        check(
            o.name == "sgd" and not o.chain,
            key,
            "sets rare rows' rate by scaling their gradients: plain SGD only (optimizer.name="
            f"'sgd' and no optimizer.chain; here optimizer.name={o.name!r})",
        )

    check(t.epochs >= 1, "train.epochs", "must be >= 1")
    check(t.batch_size >= 1, "train.batch_size", "must be >= 1")
    check(t.steps_per_call >= 1, "train.steps_per_call", "must be >= 1")
    check(t.batch_parts >= 1, "train.batch_parts", "must be >= 1")
    check(t.row_update_cap >= 0, "train.row_update_cap", "must be >= 0 (0 = no cap)")
    if t.row_update_cap:
        check(
            t.gradients == Gradients.explicit,
            "train.row_update_cap",
            "needs train.gradients=explicit (autodiff gives dense gradients, whose rows "
            "cannot be told apart by example)",
        )
    if t.row_damping:
        check(
            t.gradients == Gradients.explicit,
            "train.row_damping",
            "needs train.gradients=explicit (the damping scales the rule's row entries)",
        )
        check(
            layer.curvature,
            "train.row_damping",
            "is defined for output layers that give row curvatures (negative, hierarchical, "
            f"nce), not {m.output}",
        )
        check(
            o.name == "sgd",
            "train.row_damping",
            f"is sized for plain SGD's step (eta x gradient), not optimizer.name={o.name!r}",
        )
        damped = ("W_out", "W") if t.row_damping_inputs and side.input_curvature else ("W_out",)
        check(
            all(o.table_scales.get(k, 1.0) == 1.0 for k in damped),
            "optimizer.table_scales",
            f"must leave the tables train.row_damping damps ({', '.join(damped)}) at 1: the "
            "damping is sized for the schedule's rate",
        )
    if t.window_buckets:
        check(
            t.batch_size % cfg.model.window == 0,
            "train.window_buckets",
            f"needs train.batch_size (now {t.batch_size}) to be a multiple of "
            f"model.window={cfg.model.window}",
        )
        check(
            t.batch_parts == 1,
            "train.window_buckets",
            "already splits each batch into independent groups: set train.batch_parts=1",
        )
        check(
            d.examples == "host",
            "train.window_buckets",
            "groups the host's batches: data.examples=device makes them without buckets",
        )
    check(
        t.batch_size % t.batch_parts == 0,
        "train.batch_size",
        f"must be a multiple of train.batch_parts={t.batch_parts}",
    )
    check(0 <= t.seed < 2**32, "train.seed", "must be in [0, 2**32)")
    if t.dtype == DType.float64 and not x64_enabled():  # JAX would make float32 tables
        raise ConfigError(
            f"{_origin(where, source, 'train.dtype')}: train.dtype=float64 needs JAX's 64-bit "
            "mode, which is off: set JAX_ENABLE_X64=1 in the environment, or call "
            'jax.config.update("jax_enable_x64", True) before loading the config'
        )
    check(
        t.checkpoint_every_steps >= 0,
        "train.checkpoint_every_steps",
        "must be >= 0 (0 = not by steps)",
    )
    check(
        math.isfinite(t.checkpoint_every_seconds) and t.checkpoint_every_seconds >= 0,
        "train.checkpoint_every_seconds",
        "must be a finite number >= 0 (0 = at every epoch's end)",
    )
    check(
        t.keep_checkpoints >= 1,
        "train.keep_checkpoints",
        "must be >= 1 (the newest checkpoint is always kept)",
    )
    check(t.log_every_steps >= 0, "train.log_every_steps", "must be >= 0 (0 = per epoch)")
    check(
        isinstance(t.compile_cache, bool) or (isinstance(t.compile_cache, str) and t.compile_cache),
        "train.compile_cache",
        "must be true, false or a directory",
    )
    from sgjax.logwriters import WRITERS  # (imports no jax)

    for kind in t.log_to:
        check(
            kind in WRITERS or "." in str(kind),
            "train.log_to",
            f"{kind!r} is no metric writer: {', '.join(WRITERS)}, or package.module.OPENER",
        )
    check(
        all(isinstance(e, list) and len(e) == 2 for e in t.extended),
        "train.extended",
        "is written by sgjax: a list of [step, epochs before]",
    )
    check(ev.restrict_vocab >= 1, "eval.restrict_vocab", "must be >= 1")
    check(cfg.mesh.data >= 1, "mesh.data", "must be >= 1")
    check(cfg.mesh.model >= 1, "mesh.model", "must be >= 1")
    check(
        t.batch_size % cfg.mesh.data == 0,
        "train.batch_size",
        f"must be a multiple of mesh.data={cfg.mesh.data} (each data shard gets an equal slice)",
    )
    if d.examples == "device":
        check(
            cfg.mesh.data * cfg.mesh.model == 1,
            "data.examples",
            "needs one device (mesh.data = mesh.model = 1)",
        )
        check(
            d.max_line_tokens <= t.batch_size * t.steps_per_call,
            "data.max_line_tokens",
            "must fit in a chunk of train.steps_per_call x train.batch_size tokens with "
            "data.examples=device",
        )
    return cfg
