"""Experiment configuration: a typed schema, YAML files and dotted ``key=value`` overrides.

The schema is a tree of frozen dataclasses (:class:`Config` with sections ``model``, ``data``,
``optimizer``, ``train``, ``eval``, ``mesh``). Loading, merging and overrides are done by omegaconf
(``OmegaConf.structured`` + merge of the YAML file + ``--set`` items), so unknown keys, wrong
types and bad enumeration values are caught by the schema; :func:`load_config` then checks
ranges and cross-field rules. Every problem raises :class:`ConfigError` naming the dotted key
and where it was set (``FILE:LINE`` or ``--set ITEM``), listing the valid choices. This module
holds the schema, its checks and the public API; the loading internals are in
:mod:`sgjax.config_load`, the optimizer names' resolution in :mod:`sgjax.config_optax`.

Defaults are right for every model: word2vec.c's settings where they are best, measured
departures elsewhere, and each model's own keys as data (:mod:`sgjax.config_defaults`).

Overrides ``KEY=VALUE`` are applied in order after the file; VALUE is parsed as YAML
(``[a.txt,b.txt]``, ``null``, ``{}``, ``1e-3``). A whole section (``model={dim: 3}``) merges
into what is there; any other value, dicts such as ``optimizer.kwargs={}`` included,
replaces it.

``optimizer.sparse``: ``lazy`` (default) updates only the rows, and their optimizer state,
that get a nonzero summed gradient in a step, at O(rows touched) cost (TF LazyAdam / PyTorch
SparseAdam semantics; step counters for bias correction and the schedule advance every
step); it equals ``dense`` for plain SGD and Adagrad. ``dense`` is optax exactly on the whole
tables (every row's state moves every step), O(V x N) per step. Optimizers that are not
element-wise (lamb, lars, adafactor, ...) need ``dense``. Details in :mod:`sgjax.optim`.

``optimizer.chain``: optax transforms applied to the gradients before the optimizer, built as
``optax.chain(*chain, optimizer)``. Each entry is a one-key mapping ``{name: {kwarg: value}}``
or a bare ``name`` (no kwargs), e.g. ``chain: [clip_by_global_norm: {max_norm: 1.0}]`` or
``--set 'optimizer.chain=[add_decayed_weights: {weight_decay: 1.0e-4}]'``; it is normalised to
a list of ``{name: kwargs}``. Names, here and in ``optimizer.name``, are optax attributes or
dotted paths ``package.module.callable`` (imported when the config loads, so a config file is
trusted like code); :mod:`sgjax.config_optax` resolves them and checks the kwargs. Lazy mode
refuses a transform that is not element-wise (``clip_by_global_norm``: use ``dense``).

Resolved values: ``data.corpus`` becomes ``None`` or a tuple of paths (a single string is a
one-path tuple); ``eval.analogies`` / ``eval.similarity`` are ``None`` (the shipped data),
``False`` (disabled) or a path string (``true`` in a file means the shipped data). Relative
paths are kept as written (relative to the working directory). Enumerated fields are
``enum.StrEnum`` members, which compare equal to their string values; ``model.architecture``
and ``model.output`` are names in the registries of :mod:`sgjax.inputs` and
:mod:`sgjax.outputs` (or dotted paths), which list the valid choices.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import OmegaConf


class ConfigError(ValueError):
    """A bad configuration: the message names the dotted key and where it was set."""


# --------------------------------------------------------------------------------------------
# Enumerations (values equal names, so YAML and --set use the plain words).


#: Schedules (of :data:`sgjax.optim.SCHEDULES`, the list of choices) that start with a linear
#: warmup from 0 over ``warmup_fraction`` of the steps.
WARMUP_SCHEDULES = frozenset({"warmup_cosine", "warmup_linear"})
#: ``warmup_fraction: null`` resolves to this for a warmup schedule.
DEFAULT_WARMUP_FRACTION = 0.05
#: ``end_learning_rate: null`` resolves to this times ``learning_rate`` (BENCHMARKS.md,
#: "Schedule"; word2vec.c's is 1e-4).
END_LR_FACTOR = 0.2


class Sparse(StrEnum):
    """How row-sparse gradients meet the optimizer (see :mod:`sgjax.optim`)."""

    lazy = "lazy"
    dense = "dense"


class Gradients(StrEnum):
    explicit = "explicit"
    autodiff = "autodiff"


class Kernel(StrEnum):
    auto = "auto"
    xla = "xla"
    cpu = "cpu"


class DType(StrEnum):
    float32 = "float32"
    float64 = "float64"
    bfloat16 = "bfloat16"


# --------------------------------------------------------------------------------------------
# The schema. Field comments are the documentation of each key.


@dataclass(frozen=True)
class ModelConfig:
    # an input side of sgjax.inputs.INPUTS (skipgram | cbow | skipgram_context) or its dotted path
    architecture: str = "skipgram"
    # an output layer of sgjax.outputs.REGISTRY (softmax | hierarchical | negative | ...) or
    # the dotted path of an OutputLayer (mypkg.layers.LAYER)
    output: str = "negative"
    dim: int = 100  # N, the embedding size
    window: int = 5  # maximum window; the effective one is drawn from 1..window
    negatives: int = 5  # K negative samples per pair (output layers that draw negatives)
    cbow_mean: bool = True  # CBOW h = mean of the context vectors (False: their sum)
    # CBOW (mean) input update: paper = the gradient EH / C per context word; word2vec = EH
    # to every context word, as word2vec.c and gensim do (see sgjax.inputs.cbow_hidden)
    cbow_update: str = "word2vec"  # paper | word2vec (sgjax.inputs.CBOW_UPDATES)
    # skip-gram input word: center = the paper (h = v_{w_I} of the centre predicts each
    # context word); context = word2vec.c and gensim (each context word predicts the centre)
    skipgram_input: str = "context"  # center | context (sgjax.inputs.SKIPGRAM_INPUTS)
    # skip-gram, layers that draw negatives: one set of K per centre word, shared by its C
    # context pairs instead of one set per pair (K rows per centre instead of C x K; see
    # sgjax.outputs.sampling and BENCHMARKS.md: with skipgram_input=context it keeps the
    # accuracy, with center it loses, so the skipgram side's defaults turn it off)
    shared_negatives: bool = True


@dataclass(frozen=True)
class DataConfig:
    corpus: Any = None  # path or list of paths; null = shipped sgjax/data/realtext-v1.txt.xz
    min_count: int = 5  # drop words seen fewer times
    max_vocab_size: int | None = None  # keep at most this many most frequent words; null = all
    sample: float = 1e-3  # subsampling threshold s; 0 disables subsampling
    ns_exponent: float = 0.75  # noise distribution P_n(w) ~ count(w)^ns_exponent
    max_line_tokens: int = 1000  # longer lines are split (word2vec.c MAX_SENTENCE_LENGTH)
    # shuffle the sentences each epoch (seeded by train.seed and the epoch); false = the
    # file's order, as word2vec.c and gensim
    shuffle: bool = True
    cache_dir: str | None = None  # encoded-corpus cache; null = the run directory's cache/


@dataclass(frozen=True)
class OptimizerConfig:
    # an optax optimizer taking learning_rate (sgd, adam, adagrad, ...) or a dotted path
    # package.module.callable returning an optax GradientTransformation (sgjax.config_optax)
    name: str = "sgd"
    learning_rate: float = 0.025  # eta (word2vec: 0.025 skip-gram, 0.05 CBOW)
    schedule: str = "linear"  # a name of sgjax.optim.SCHEDULES: constant|linear|cosine|...
    end_learning_rate: float | None = None  # null = end_factor x learning_rate
    end_factor: float = END_LR_FACTOR  # the floor when end_learning_rate is null (HS: 0.1)
    warmup_fraction: float | None = None  # warmup_* schedules only; null = 0.05
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra optax constructor arguments
    sparse: Sparse = Sparse.lazy  # lazy: O(rows touched) per step; dense: exact optax
    # optax transforms applied to the gradients before the optimizer, in order: each entry
    # {name: {kwarg: value, ...}} or a bare name (optax names or dotted paths, as for name)
    chain: list[Any] = field(default_factory=list)

    @property
    def end_lr(self) -> float:
        """The resolved final learning rate (``end_learning_rate`` or ``end_factor`` x the
        initial)."""
        if self.end_learning_rate is None:
            return self.end_factor * self.learning_rate
        return self.end_learning_rate

    @property
    def warmup(self) -> float:
        """The resolved warmup fraction (0 for schedules without warmup)."""
        if self.schedule not in WARMUP_SCHEDULES:
            return 0.0
        if self.warmup_fraction is None:
            return DEFAULT_WARMUP_FRACTION
        return self.warmup_fraction


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5  # passes over the corpus
    # examples (centre positions) per step: small batches suit a CPU (BENCHMARKS.md); on a
    # GPU raise it with train.row_damping
    batch_size: int = 320
    steps_per_call: int = 400  # steps per compiled call (jax.lax.scan length)
    # explicit gradients: compute the rule on this many equal slices of each batch as
    # independent programs (XLA's CPU runtime runs them concurrently; same update, summed)
    batch_parts: int = 1
    # group each batch's centres by their effective window b (B / window of each b), so the
    # explicit rule computes 2b context slots for them instead of 2 x window (the same
    # examples, reordered by a few batches at most; sgjax.batches.epoch_batches)
    window_buckets: bool = True
    # explicit gradients: 0 = sum every update of a row (per-example SGD summed over the
    # batch); n > 0 = a row more than n of a batch's entries update gets their sum scaled to
    # n entries' worth (large batches; sgjax.train.cap_row_updates, BENCHMARKS.md)
    row_update_cap: int = 0
    # explicit gradients, skip-gram NS/HS, SGD: scale each row's summed update to about what
    # word2vec.c's one-after-another updates would move it, from the loss's curvature along
    # the row (large batches; sgjax.rules.damp_rows, BENCHMARKS.md "Large batches")
    row_damping: bool = False
    seed: int = 0  # jax.random key seed
    gradients: Gradients = Gradients.explicit  # explicit (the paper's rules) | autodiff
    checkpoint_every_steps: int = 0  # 0 = checkpoint at the end of each epoch only
    log_every_steps: int = 0  # 0 = metrics lines at the end of each epoch only
    dtype: DType = DType.float32  # parameter dtype
    # JAX's persistent compilation cache: true = $SGJAX_CACHE_DIR or ~/.cache/sgjax/xla, a
    # path, or false (sgjax.timing.use_compile_cache); saves ~2 s of compiling per run
    compile_cache: Any = True
    # the step's kernel (sgjax.kernels): auto = the fused CPU kernel where it computes the
    # step (negative sampling, NCE, hierarchical softmax; plain SGD, float32, one CPU
    # device) and builds, else XLA's; xla; cpu (required: an error where it cannot run)
    kernel: Kernel = Kernel.auto


@dataclass(frozen=True)
class EvalConfig:
    analogies: Any = None  # path; null = shipped questions-words.txt; false = skip
    similarity: Any = None  # path; null = shipped wordsim353.tsv; false = skip
    restrict_vocab: int = 30000  # only the most frequent words take part (gensim's default)
    every_epoch: bool = (
        False  # also after each epoch (~0.5 s each on realtext-v1), not only at the end
    )


@dataclass(frozen=True)
class MeshConfig:
    """Devices for training (:mod:`sgjax.sharding`); the default 1 x 1 is one device."""

    data: int = 1  # devices along the data axis: each step's batch is split over them
    model: int = 1  # devices along the model axis: W, W_out and their optimizer state by rows
    distributed: bool = False  # call jax.distributed.initialize() (TPU pods, SLURM, ...)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)


# --------------------------------------------------------------------------------------------
# Public API.


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path`` (None: none), then ``key=value`` overrides."""
    from sgjax.config_load import load_file

    return _validate(*load_file(path, overrides))


def config_from_dict(
    d: Mapping[str, Any], overrides: Sequence[str] = (), source: str = "<dict>"
) -> Config:
    """Like :func:`load_config` for an already parsed mapping (e.g. a checkpoint's config)."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(d).__name__}")
    from sgjax.config_load import build, key_paths

    return _validate(*build(dict(d), dict.fromkeys(key_paths(d), source), source, overrides))


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of builtins (enums as strings, tuples as lists): JSON/YAML-ready."""

    def plain(x: Any) -> Any:
        if isinstance(x, StrEnum):
            return str(x)
        if isinstance(x, Mapping):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [plain(v) for v in x]
        return x

    return {
        f.name: plain(dataclasses.asdict(getattr(cfg, f.name))) for f in dataclasses.fields(cfg)
    }


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML; ``load_config`` of it gives back an equal Config."""
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))


def x64_enabled() -> bool:
    """Whether JAX makes float64 arrays now (``JAX_ENABLE_X64=1``, ``jax_enable_x64``)."""
    import jax
    import numpy as np

    return jax.dtypes.canonicalize_dtype(np.float64) == np.float64


def _validate(cfg: Config, where: dict[str, str], source: str) -> Config:
    """Range and cross-field checks; the schema has already checked types and enums."""
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
        "must be >= 0 (0 = per epoch)",
    )
    check(t.log_every_steps >= 0, "train.log_every_steps", "must be >= 0 (0 = per epoch)")
    check(
        isinstance(t.compile_cache, bool) or (isinstance(t.compile_cache, str) and t.compile_cache),
        "train.compile_cache",
        "must be true, false or a directory",
    )
    check(ev.restrict_vocab >= 1, "eval.restrict_vocab", "must be >= 1")
    check(cfg.mesh.data >= 1, "mesh.data", "must be >= 1")
    check(cfg.mesh.model >= 1, "mesh.model", "must be >= 1")
    check(
        t.batch_size % cfg.mesh.data == 0,
        "train.batch_size",
        f"must be a multiple of mesh.data={cfg.mesh.data} (each data shard gets an equal slice)",
    )
    return cfg
