"""Experiment configuration: a typed schema, YAML files and dotted ``key=value`` overrides.

The schema is a tree of frozen dataclasses (:class:`Config` with sections ``model``, ``data``,
``optimizer``, ``train``, ``eval``, ``mesh``). Loading, merging and overrides are done by omegaconf
(``OmegaConf.structured`` + merge of the YAML file + ``--set`` items), so unknown keys, wrong
types and bad enumeration values are caught by the schema; :func:`load_config` then checks
ranges and cross-field rules. Every problem raises :class:`ConfigError` naming the dotted key
and where it was set (``FILE:LINE`` or ``--set ITEM``), listing the valid choices.

Defaults are word2vec.c's skip-gram negative-sampling recipe (PAPER.md, last section):
``dim 100, window 5, negatives 5, sample 1e-3, min_count 5, epochs 5``, SGD with learning
rate eta = 0.025 decayed linearly to ``end_learning_rate``. ``end_learning_rate: null`` (the
default) means the C tool's floor ``1e-4 * learning_rate`` (2.5e-6 for 0.025); gensim instead
uses ``min_alpha = 1e-4`` absolute: set ``optimizer.end_learning_rate: 0.0001`` to match it.
(The C tool's own default architecture is CBOW; this kit defaults to skip-gram, the paper's
main model.)

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

Resolved values: ``data.corpus`` becomes ``None`` or a tuple of paths (a single string is a
one-path tuple); ``eval.analogies`` / ``eval.similarity`` are ``None`` (the shipped data),
``False`` (disabled) or a path string (``true`` in a file means the shipped data). Relative
paths are kept as written (relative to the working directory). Enumerated fields are
``enum.StrEnum`` members, which compare equal to their string values
(``cfg.model.output == "negative"``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A bad configuration: the message names the dotted key and where it was set."""


# --------------------------------------------------------------------------------------------
# Enumerations (values equal names, so YAML and --set use the plain words).


class Architecture(StrEnum):
    skipgram = "skipgram"
    cbow = "cbow"


class Output(StrEnum):
    softmax = "softmax"
    hierarchical = "hierarchical"
    negative = "negative"


class Schedule(StrEnum):
    """Learning-rate schedules; :data:`sgjax.optim.SCHEDULES` maps each to an optax builder."""

    constant = "constant"
    linear = "linear"
    cosine = "cosine"
    exponential = "exponential"
    warmup_cosine = "warmup_cosine"
    warmup_linear = "warmup_linear"


#: Schedules that start with a linear warmup from 0 over ``warmup_fraction`` of the steps.
WARMUP_SCHEDULES = frozenset({Schedule.warmup_cosine, Schedule.warmup_linear})
#: ``warmup_fraction: null`` resolves to this for a warmup schedule.
DEFAULT_WARMUP_FRACTION = 0.05


class Sparse(StrEnum):
    """How row-sparse gradients meet the optimizer (see :mod:`sgjax.optim`)."""

    lazy = "lazy"
    dense = "dense"


class CbowUpdate(StrEnum):
    paper = "paper"
    word2vec = "word2vec"


class SkipgramInput(StrEnum):
    """Skip-gram's input word (:data:`sgjax.losses.SKIPGRAM_INPUTS`)."""

    center = "center"
    context = "context"


class Gradients(StrEnum):
    explicit = "explicit"
    autodiff = "autodiff"


class DType(StrEnum):
    float32 = "float32"
    float64 = "float64"
    bfloat16 = "bfloat16"


# --------------------------------------------------------------------------------------------
# The schema. Field comments are the documentation of each key.


@dataclass(frozen=True)
class ModelConfig:
    architecture: Architecture = Architecture.skipgram  # skipgram | cbow
    output: Output = Output.negative  # softmax | hierarchical | negative
    dim: int = 100  # N, the embedding size
    window: int = 5  # maximum window; the effective one is drawn from 1..window
    negatives: int = 5  # K negative samples per positive (output: negative)
    cbow_mean: bool = True  # CBOW h = mean of the context vectors (False: their sum)
    # CBOW (mean) input update: paper = the gradient EH / C per context word; word2vec = EH
    # to every context word, as word2vec.c and gensim do (see sgjax.losses.cbow_hidden)
    cbow_update: CbowUpdate = CbowUpdate.paper
    # skip-gram input word: center = the paper (h = v_{w_I} of the centre predicts each
    # context word); context = word2vec.c and gensim (each context word predicts the centre)
    skipgram_input: SkipgramInput = SkipgramInput.center
    # skip-gram NS: one set of K negatives per centre word, shared by its C context pairs
    # instead of one set per pair (K rows per centre instead of C x K; see sgjax.losses and
    # BENCHMARKS.md: with skipgram_input=context it keeps the accuracy, with center it loses)
    shared_negatives: bool = False


@dataclass(frozen=True)
class DataConfig:
    corpus: Any = None  # path or list of paths; null = shipped sgjax/data/realtext-v1.txt.xz
    min_count: int = 5  # drop words seen fewer times
    max_vocab_size: int | None = None  # keep at most this many most frequent words; null = all
    sample: float = 1e-3  # subsampling threshold s; 0 disables subsampling
    ns_exponent: float = 0.75  # noise distribution P_n(w) ~ count(w)^ns_exponent
    max_line_tokens: int = 1000  # longer lines are split (word2vec.c MAX_SENTENCE_LENGTH)
    cache_dir: str | None = None  # encoded-corpus cache; null = the run directory's cache/


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "sgd"  # any optax optimizer taking learning_rate: sgd, adam, adagrad, ...
    learning_rate: float = 0.025  # eta (word2vec: 0.025 skip-gram, 0.05 CBOW)
    schedule: Schedule = Schedule.linear  # constant|linear|cosine|exponential|warmup_*
    end_learning_rate: float | None = None  # null = 1e-4 * learning_rate (word2vec.c)
    warmup_fraction: float | None = None  # warmup_* schedules only; null = 0.05
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra optax constructor arguments
    sparse: Sparse = Sparse.lazy  # lazy: O(rows touched) per step; dense: exact optax

    @property
    def end_lr(self) -> float:
        """The resolved final learning rate (``end_learning_rate`` or 1e-4 x the initial)."""
        if self.end_learning_rate is None:
            return 1e-4 * self.learning_rate
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
    batch_size: int = 1024  # examples (centre positions) per step
    steps_per_call: int = 100  # steps per compiled call (jax.lax.scan length)
    # explicit gradients: compute the rule on this many equal slices of each batch as
    # independent programs (XLA's CPU runtime runs them concurrently; same update, summed)
    batch_parts: int = 1
    # group each batch's centres by their effective window b (B / window of each b), so the
    # explicit rule computes 2b context slots for them instead of 2 x window (the same
    # examples, reordered by a few batches at most; sgjax.pipeline.epoch_batches)
    window_buckets: bool = False
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


@dataclass(frozen=True)
class EvalConfig:
    analogies: Any = None  # path; null = shipped questions-words.txt; false = skip
    similarity: Any = None  # path; null = shipped wordsim353.tsv; false = skip
    restrict_vocab: int = 30000  # only the most frequent words take part (gensim's default)


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
    if path is None:
        return _build({}, {}, "<defaults>", overrides)
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
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
    where = {k: f"{path}:{line}" for k, line in lines.items()}
    return _build(data, where, path, overrides)


def config_from_dict(
    d: Mapping[str, Any], overrides: Sequence[str] = (), source: str = "<dict>"
) -> Config:
    """Like :func:`load_config` for an already parsed mapping (e.g. a checkpoint's config)."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(d).__name__}")
    return _build(dict(d), {}, source, overrides)


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


@functools.cache
def optax_optimizer_names() -> tuple[str, ...]:
    """Names of the optax callables that take a ``learning_rate`` (valid ``optimizer.name``)."""
    import inspect

    import optax

    names = []
    for name in dir(optax):
        obj = getattr(optax, name)
        if name.startswith("_") or inspect.isclass(obj) or not callable(obj):
            continue
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            continue
        if "learning_rate" in params:
            names.append(name)
    return tuple(sorted(names))


# --------------------------------------------------------------------------------------------
# Loading internals.

_SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


def _first_line(e: Exception) -> str:
    msg = getattr(e, "msg", None) or str(e)
    return str(msg).splitlines()[0] if str(msg) else type(e).__name__


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Dotted key -> 1-based line where it is written, from a composed YAML node tree."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            out[key] = k.start_mark.line + 1
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


def _build(data: Any, where: dict[str, str], source: str, overrides: Sequence[str]) -> Config:
    base = OmegaConf.structured(Config)
    _unlock(base)
    data = {k: v for k, v in data.items() if not (k in _SECTIONS and v is None)}  # "model:"
    for k, v in data.items():
        if k in _SECTIONS and not isinstance(v, Mapping | DictConfig):
            keys = ", ".join(_schema_section(f"{k}.x")[1])
            raise ConfigError(
                f"{where.get(k, source)}: section '{k}' must be a mapping of keys ({keys}), "
                f"got {type(v).__name__} {v!r}"
            )
    try:
        merged = OmegaConf.merge(base, data)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        raise _explain(e, where.get(key, source)) from None
    where = dict(where)
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
        for k in list(where):  # the override replaces anything written below this key
            if k == key or k.startswith(key + "."):
                del where[k]
        where[key] = f"--set {item}"
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:  # e.g. a failing ${interpolation}
        key = getattr(e, "full_key", None) or ""
        raise _explain(e, where.get(key, source)) from None
    assert isinstance(cfg, Config)
    return _validate(_normalise(cfg, where, source), where, source)


def _origin(where: dict[str, str], source: str, key: str) -> str:
    while key:
        if key in where:
            return where[key]
        key = key.rpartition(".")[0]
    return source


def _normalise(cfg: Config, where: dict[str, str], source: str) -> Config:
    def err(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{_origin(where, source, key)}: {key}: {msg}")

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

    kwargs = cfg.optimizer.kwargs
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, corpus=corpus),
        optimizer=dataclasses.replace(cfg.optimizer, kwargs=dict(kwargs)),
        eval=dataclasses.replace(
            cfg.eval,
            analogies=eval_path("eval.analogies", cfg.eval.analogies),
            similarity=eval_path("eval.similarity", cfg.eval.similarity),
        ),
    )


def _validate(cfg: Config, where: dict[str, str], source: str) -> Config:
    """Range and cross-field checks; the schema has already checked types and enums."""

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
    if m.output == Output.negative:
        check(m.negatives >= 1, "model.negatives", "must be >= 1 with model.output=negative")
    if m.shared_negatives:
        check(
            m.architecture == Architecture.skipgram and m.output == Output.negative,
            "model.shared_negatives",
            "applies to model.architecture=skipgram with model.output=negative only "
            f"(here {m.architecture!s} with {m.output!s}; CBOW draws one set per target "
            "already)",
        )
    if m.skipgram_input != SkipgramInput.center:
        check(
            m.architecture == Architecture.skipgram,
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
            "must be a finite number >= 0, or null (= 1e-4 * learning_rate)",
        )
    if o.schedule == Schedule.exponential:
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
    _check_optimizer(o, where, source)

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
            cfg.model.architecture == "skipgram" and cfg.model.output != "softmax",
            "train.row_damping",
            "is defined for model.architecture=skipgram with model.output=negative or "
            f"hierarchical, not {cfg.model.architecture} with {cfg.model.output}",
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
    check(
        t.checkpoint_every_steps >= 0,
        "train.checkpoint_every_steps",
        "must be >= 0 (0 = per epoch)",
    )
    check(t.log_every_steps >= 0, "train.log_every_steps", "must be >= 0 (0 = per epoch)")
    check(ev.restrict_vocab >= 1, "eval.restrict_vocab", "must be >= 1")
    check(cfg.mesh.data >= 1, "mesh.data", "must be >= 1")
    check(cfg.mesh.model >= 1, "mesh.model", "must be >= 1")
    check(
        t.batch_size % cfg.mesh.data == 0,
        "train.batch_size",
        f"must be a multiple of mesh.data={cfg.mesh.data} (each data shard gets an equal slice)",
    )
    return cfg


def _check_optimizer(o: OptimizerConfig, where: dict[str, str], source: str) -> None:
    """optimizer.name is an optax optimizer; optimizer.kwargs are parameters of it."""
    import inspect

    import optax

    names = list(optax_optimizer_names())
    if o.name not in names:
        close = difflib.get_close_matches(o.name, names, n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        kind = "is not an optimizer" if hasattr(optax, o.name) else "is not in optax"
        raise ConfigError(
            f"{_origin(where, source, 'optimizer.name')}: optimizer.name={o.name!r} {kind} "
            f"(optax {optax.__version__}); {hint}valid: {', '.join(names)}"
        )
    params = inspect.signature(getattr(optax, o.name)).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = [p for p in params if p != "learning_rate"]
    for k in o.kwargs:
        key = f"optimizer.kwargs.{k}"
        here = _origin(where, source, key)
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
