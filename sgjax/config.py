"""Experiment configuration: a typed schema, YAML files and dotted ``key=value`` overrides.

The schema is a tree of frozen dataclasses (:class:`Config` with sections ``model``, ``data``,
``optimizer``, ``train``, ``eval``, ``mesh``); each field's ``metadata["doc"]`` documents its
key (``sgjax train --help`` lists them all, :mod:`sgjax.config_docs`). Loading, merging and
overrides are done by omegaconf (``OmegaConf.structured`` + merge of the YAML files + ``--set``
items), so unknown keys, wrong types and bad enumeration values are caught by the schema;
:func:`load_config` then checks ranges and cross-field rules (:mod:`sgjax.config_checks`).
Every problem raises :class:`ConfigError` naming the dotted key and where it was set
(``FILE:LINE`` or ``--set ITEM``), listing the valid choices. This module holds the schema and
the public API; the loading internals are in :mod:`sgjax.config_load`, the optimizer names'
resolution in :mod:`sgjax.config_optax`.

Defaults are right for every model: word2vec.c's settings where they are best, measured
departures elsewhere, and each model's own keys as data (:mod:`sgjax.config_defaults`).

Several YAML files merge in order, key by key: a later file's value replaces an earlier
one's, a section or mapping (``optimizer.kwargs``) merges into what the earlier files wrote,
a list replaces. The model's defaults follow the merged ``model.architecture`` and
``model.output``, on the keys no file or override sets. Overrides ``KEY=VALUE`` are applied
in order after the files; VALUE is parsed as YAML
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
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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
    pallas = "pallas"


class Examples(StrEnum):
    """Where the examples are made (``data.examples``)."""

    host = "host"
    device = "device"


class DType(StrEnum):
    float32 = "float32"
    float64 = "float64"
    bfloat16 = "bfloat16"


# --------------------------------------------------------------------------------------------
# The schema. Each field's doc (``metadata["doc"]``) is the documentation of its key: ``sgjax
# train --help`` lists them (sgjax.config_docs), and a test requires one for every field.


def option(default: Any = dataclasses.MISSING, doc: str = "", *, factory: Any = None) -> Any:
    """A schema field with its one-paragraph doc; ``factory`` makes a mutable default."""
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = option(
        "skipgram",
        "an input side of sgjax.inputs.INPUTS (skipgram | cbow | skipgram_context) or its "
        "dotted path",
    )
    output: str = option(
        "negative",
        "an output layer of sgjax.outputs.REGISTRY (softmax | hierarchical | negative | ...) "
        "or the dotted path of an OutputLayer (mypkg.layers.LAYER)",
    )
    dim: int = option(100, "N, the embedding size")
    window: int = option(5, "maximum window; the effective one is drawn from 1..window")
    negatives: int = option(5, "K negative samples per pair (output layers that draw negatives)")
    cbow_mean: bool = option(True, "CBOW h = mean of the context vectors (false: their sum)")
    cbow_update: str = option(
        "word2vec",
        "CBOW (mean) input update, paper | word2vec (sgjax.inputs.CBOW_UPDATES): paper = the "
        "gradient EH / C per context word; word2vec = EH to every context word, as word2vec.c "
        "and gensim do (sgjax.inputs.cbow_hidden)",
    )
    skipgram_input: str = option(
        "context",
        "skip-gram input word, center | context (sgjax.inputs.SKIPGRAM_INPUTS): center = the "
        "paper (h = v_{w_I} of the centre predicts each context word); context = word2vec.c "
        "and gensim (each context word predicts the centre)",
    )
    init_from: str | None = option(
        None,
        "a word2vec vectors file (text or binary, of dim N): the input vectors v_w of the "
        "words it holds start from it (sgjax.continuation); null = random",
    )
    shared_negatives: bool = option(
        True,
        "skip-gram, layers that draw negatives: one set of K per centre word, shared by its C "
        "context pairs instead of one set per pair (K rows per centre instead of C x K; "
        "sgjax.outputs.sampling, BENCHMARKS.md: with skipgram_input=context it keeps the "
        "accuracy, with center it loses, so the skipgram side's defaults turn it off)",
    )


@dataclass(frozen=True)
class DataConfig:
    corpus: Any = option(
        None, "path or list of paths; null = the shipped sgjax/data/realtext-v1.txt.xz"
    )
    min_count: int = option(5, "drop words seen fewer times")
    max_vocab_size: int | None = option(
        None, "keep at most this many most frequent words; null = all"
    )
    sample: float = option(1e-3, "subsampling threshold s; 0 disables subsampling")
    ns_exponent: float = option(0.75, "noise distribution P_n(w) ~ count(w)^ns_exponent")
    max_line_tokens: int = option(1000, "longer lines are split (word2vec.c's MAX_SENTENCE_LENGTH)")
    shuffle: bool = option(
        True,
        "shuffle the sentences each epoch (seeded by train.seed and the epoch); false = the "
        "file's order, as word2vec.c and gensim",
    )
    cache_dir: str | None = option(None, "encoded-corpus cache; null = the run directory's cache/")
    examples: Examples = option(
        Examples.host,
        "where the examples are drawn: host (numpy, sgjax.batches; fastest on a CPU) | device "
        "(in the compiled step from streamed tokens, sgjax.device_examples; accelerators; "
        "chunks of train.steps_per_call x train.batch_size tokens, no window buckets)",
    )
    vocab: str | None = option(
        None,
        "a fixed vocabulary: a 'word count' file (a run's vocab.txt); its words, counted in "
        "this corpus, are the vocabulary (no min_count), others are dropped; null = counted",
    )


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = option(
        "sgd",
        "an optax optimizer taking learning_rate (sgd, adam, adagrad, ...) or a dotted path "
        "package.module.callable returning an optax GradientTransformation "
        "(sgjax.config_optax)",
    )
    learning_rate: float = option(
        0.025, "eta, the initial rate (word2vec: 0.025 skip-gram, 0.05 CBOW)"
    )
    schedule: str = option(
        "linear", "a name of sgjax.optim.SCHEDULES: constant | linear | cosine | ..."
    )
    end_learning_rate: float | None = option(
        None, "the final rate; null = end_factor x learning_rate"
    )
    end_factor: float = option(
        END_LR_FACTOR, "the final rate's fraction when end_learning_rate is null (HS: 0.1)"
    )
    warmup_fraction: float | None = option(
        None, "the warmup's share of the steps, warmup_* schedules only; null = 0.05"
    )
    kwargs: dict[str, Any] = option(doc="extra optax constructor arguments", factory=dict)
    sparse: Sparse = option(
        Sparse.lazy, "lazy: O(rows touched) per step; dense: exact optax on the whole tables"
    )
    table_scales: dict[str, float] = option(
        doc="a factor on each named table's updates, after the optimizer: per-table rates "
        "({W: 2.0} doubles the input vectors' rate; a table not named keeps 1; CBOW HS: "
        "{W: 3.0}). Not on a table that train.row_damping damps",
        factory=dict,
    )
    table_scales_min_count: int = option(
        0,
        "W's factor in table_scales applies to the rows of words seen at least this many "
        "times; rarer words' rows keep rate 1 (plain SGD; 0: every row; CBOW HS: 20)",
    )
    chain: list[Any] = option(
        doc="optax transforms applied to the gradients before the optimizer, in order: each "
        "entry {name: {kwarg: value, ...}} or a bare name (optax names or dotted paths, as "
        "for name)",
        factory=list,
    )

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
    epochs: int = option(5, "passes over the corpus")
    batch_size: int = option(
        320,
        "examples (centre positions) per step: small batches suit a CPU (BENCHMARKS.md); on a "
        "GPU raise it with train.row_damping",
    )
    steps_per_call: int = option(400, "steps per compiled call (jax.lax.scan length)")
    batch_parts: int = option(
        1,
        "explicit gradients: compute the rule on this many equal slices of each batch as "
        "independent programs (XLA's CPU runtime runs them concurrently; same update, summed)",
    )
    window_buckets: bool = option(
        True,
        "group each batch's centres by their effective window b (B / window of each b), so "
        "the explicit rule computes 2b context slots for them instead of 2 x window (the same "
        "examples, reordered by a few batches at most; sgjax.batches.epoch_batches)",
    )
    row_update_cap: int = option(
        0,
        "explicit gradients: 0 = sum every update of a row (per-example SGD summed over the "
        "batch); n > 0 = a row more than n of a batch's entries update gets their sum scaled "
        "to n entries' worth (large batches; sgjax.train.cap_row_updates, BENCHMARKS.md)",
    )
    row_damping: bool = option(
        False,
        "explicit gradients, skip-gram NS/HS, SGD: scale each row's summed update to about "
        "what word2vec.c's one-after-another updates would move it, from the loss's curvature "
        'along the row (large batches; sgjax.rules.damp_rows, BENCHMARKS.md "Large batches")',
    )
    row_damping_inputs: bool = option(
        True,
        "with train.row_damping: damp the input rows (E) too; false: the output rows (E') "
        "only (CBOW HS's default: damping CBOW's inputs costs it 0.012 WordSim at 640 "
        "centres a step, while CBOW NS at 16,384 needs it; BENCHMARKS.md)",
    )
    seed: int = option(0, "jax.random key seed")
    gradients: Gradients = option(
        Gradients.explicit, "explicit (the paper's rules) | autodiff (jax.grad)"
    )
    checkpoint_every_steps: int = option(
        0, "also checkpoint every this many steps; 0 = not by steps (see checkpoint_every_seconds)"
    )
    checkpoint_every_seconds: float = option(
        300.0,
        "crash recovery: a checkpoint at the first epoch end or call boundary this many seconds "
        "of training after the previous one; the last epoch's end always writes one (as Ctrl-C "
        "and SIGTERM do), so a run shorter than this writes one, at its end. 0 = at every "
        "epoch's end and none between (the rule before this key)",
    )
    keep_checkpoints: int = option(
        2,
        "how many of the newest checkpoints to keep in RUN/checkpoints (>= 1; orbax deletes "
        "older ones after each save)",
    )
    keep_epoch_checkpoints: bool = option(
        False,
        "also keep every epoch's end checkpoint for good (never deleted by "
        "train.keep_checkpoints): the vectors of each epoch stay in the run directory",
    )
    log_every_steps: int = option(
        100,
        "a metrics record every this many steps (at the first call boundary after them: the "
        "loss curve); 0 = at the end of each epoch only",
    )
    log_to: list[str] = option(
        doc="metric writers (sgjax.logwriters): jsonl (RUN/metrics.jsonl), tensorboard "
        "(RUN/tensorboard/, pip install 'sgjax[tensorboard]'), or package.module.OPENER",
        factory=lambda: ["jsonl"],
    )
    extended: list[Any] = option(
        doc="written by sgjax: [step, epochs before] of each continuation of the run with more "
        "epochs (sgjax.continuation), so that config.yaml reproduces its schedule",
        factory=list,
    )
    dtype: DType = option(
        DType.float32,
        "the tables' dtype: float32 | float64 | bfloat16 (stored in bfloat16, computed and "
        "summed in float32, rounded stochastically; accelerators; sgjax.lowp)",
    )
    compile_cache: Any = option(
        True,
        "JAX's persistent compilation cache: true = $SGJAX_CACHE_DIR or ~/.cache/sgjax/xla, a "
        "path, or false (sgjax.timing.use_compile_cache); saves ~2 s of compiling per run",
    )
    kernel: Kernel = option(
        Kernel.auto,
        "the step's kernel (sgjax.kernels): auto = the fused CPU kernel where it computes the "
        "step (negative sampling, NCE, hierarchical softmax; plain SGD, float32, one CPU "
        "device) and builds, else XLA's; xla; cpu (required: an error where it cannot run); "
        "pallas (the same step as Pallas kernels, for GPUs; interpreted, slowly, elsewhere)",
    )


@dataclass(frozen=True)
class EvalConfig:
    analogies: Any = option(None, "path; null = the shipped questions-words.txt; false = skip")
    similarity: Any = option(None, "path; null = the shipped wordsim353.tsv; false = skip")
    restrict_vocab: int = option(
        30000,
        "only the most frequent words take part in the scores of a run; 30000 keeps the "
        "evaluation during training fast (gensim's default, and sgjax eval's, is 300000)",
    )
    every_epoch: bool = option(
        False, "also after each epoch (~0.5 s each on realtext-v1), not only at the end"
    )


@dataclass(frozen=True)
class MeshConfig:
    """Devices for training (:mod:`sgjax.sharding`); the default 1 x 1 is one device."""

    data: int = option(1, "devices along the data axis: each step's batch is split over them")
    model: int = option(
        1, "devices along the model axis: W, W_out and their optimizer state by rows"
    )
    distributed: bool = option(False, "call jax.distributed.initialize() (TPU pods, SLURM, ...)")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = option(
        doc="the model: input side, output layer and sizes", factory=ModelConfig
    )
    data: DataConfig = option(doc="the corpus, the vocabulary and subsampling", factory=DataConfig)
    optimizer: OptimizerConfig = option(
        doc="the optax optimizer and the learning-rate schedule", factory=OptimizerConfig
    )
    train: TrainConfig = option(
        doc="the training loop: epochs, batches, gradients, kernel, checkpoints",
        factory=TrainConfig,
    )
    eval: EvalConfig = option(
        doc="the analogy and word-similarity scores of a run", factory=EvalConfig
    )
    mesh: MeshConfig = option(
        doc="devices for training (sgjax.sharding); the default 1 x 1 is one device",
        factory=MeshConfig,
    )


# --------------------------------------------------------------------------------------------
# Public API.


ConfigPaths = str | os.PathLike | Sequence[str | os.PathLike] | None


def load_config(path: ConfigPaths, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path`` (a list of paths: merged in order; None: no
    file), then ``key=value`` overrides."""
    from sgjax.config_load import load_files

    return _validate(*load_files(path, overrides))


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
    from omegaconf import OmegaConf  # here: `sgjax --help` imports this module, not omegaconf

    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))


def x64_enabled() -> bool:
    """Whether JAX makes float64 arrays now (``JAX_ENABLE_X64=1``, ``jax_enable_x64``)."""
    import jax
    import numpy as np

    return jax.dtypes.canonicalize_dtype(np.float64) == np.float64


def _validate(cfg: Config, where: dict[str, str], source: str) -> Config:
    """The model's defaults, then the range and cross-field checks (:mod:`sgjax.config_checks`)."""
    from sgjax.config_checks import validate

    return validate(cfg, where, source)
