"""The model defaults: what a config resolves to on the keys the user left unset.

Defaults are right for every model, measured against gensim, word2vec.c and fastText on
two real corpora (README, "Quality"). They start from word2vec.c's settings (PAPER.md, last
section: ``dim 100, window 5, negatives 5, sample 1e-3, min_count 5, epochs 5``, SGD, eta
decayed linearly) and depart from them where measured better:

- ``optimizer.end_learning_rate: null`` = ``end_factor`` (0.2, ``END_LR_FACTOR``) x
  ``learning_rate``, not the C tool's ``1e-4 x``: at word2vec's few epochs, an lr that
  still learns in the last epoch gives better vectors (BENCHMARKS.md, "Schedule").
  word2vec.c's decay is ``optimizer.end_learning_rate=2.5e-6`` (x 2 for CBOW); gensim's
  ``min_alpha=1e-4``.
- ``data.shuffle: true``: sentences in a new random order each epoch, so a corpus in some
  order (sorted, concatenated sources) trains as well as a shuffled one. The file's order,
  as the anchors read it: ``data.shuffle=false``.
- skip-gram in word2vec.c's orientation (``model.skipgram_input: context``) with the
  negatives shared per centre word and batches grouped by window: the fast shared-rows form
  (same quality). The paper's orientation: ``model.skipgram_input=center``.
- CBOW takes word2vec.c's choices: eta 0.05 and EH to every context word
  (``model.cbow_update: word2vec``; the paper's EH / C: ``model.cbow_update=paper``), with
  batches of 640 centres in corpus order (``train.window_buckets: false``: grouping by
  window costs CBOW analogy accuracy; a CBOW centre is one example, skip-gram's up to 2c).
- hierarchical softmax: row damping (``train.row_damping: true``; undamped, the nodes near
  the Huffman root diverge at batch 320), eta 0.05; skip-gram HS decays it to 0.1 x
  (``end_factor``), CBOW HS to 0.2 x, with batches of 1,280 centres and three times the
  rate on its input rows but for rare words' (:data:`PAIR_DEFAULTS`).

Which keys a model changes is data: an input side's and an output layer's ``defaults``
(:mod:`sgjax.inputs`, :mod:`sgjax.outputs`), applied to the keys a config leaves unset (in
its file, dict and ``--set`` items); the layer's win over the side's, and a pair's
(:data:`PAIR_DEFAULTS`) over both. A saved config.yaml
sets every key, so it loads back to the same run. Switches of the default model that another
cannot use (``skipgram_input``, ``shared_negatives``, ``window_buckets``) are turned off
where unset and inapplicable. A :class:`Config` built directly in Python gets the schema's
values (the default model's); use :func:`load_config` or :func:`config_from_dict`.
(The C tool's own default architecture is CBOW; this kit defaults to skip-gram, the paper's
main model.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from sgjax.config import Config, ConfigError, Gradients


def model_parts(cfg: Config, where: dict[str, str], source: str):
    """The input side and output layer the model section names (ConfigError if unknown)."""
    from sgjax.config_load import origin
    from sgjax.inputs import CBOW_UPDATES, SKIPGRAM_INPUTS, lookup_input, side_name
    from sgjax.outputs import lookup

    m = cfg.model
    for key, value, valid in (
        ("model.skipgram_input", m.skipgram_input, SKIPGRAM_INPUTS),
        ("model.cbow_update", m.cbow_update, CBOW_UPDATES),
    ):
        if value not in valid:
            raise ConfigError(
                f"{origin(where, source, key)}: {key}={value!r} is not one of {', '.join(valid)}"
            )
    try:
        side = lookup_input(side_name(m.architecture, m.skipgram_input))
    except ValueError as e:
        where_ = origin(where, source, "model.architecture")
        raise ConfigError(f"{where_}: model.architecture: {e}") from None
    try:
        layer = lookup(m.output)
    except ValueError as e:
        raise ConfigError(f"{origin(where, source, 'model.output')}: model.output: {e}") from None
    return side, layer


#: Switches the default model uses that other models cannot: ``(key, applies(cfg, layer),
#: off value)``. Left unset by the user where they don't apply, they are turned off instead
#: of failing the checks below (set by the user, they are checked).
SWITCHES: tuple[tuple[str, Callable[[Config, Any], bool], Any], ...] = (
    ("model.skipgram_input", lambda cfg, layer: cfg.model.architecture == "skipgram", "center"),
    (
        "model.shared_negatives",
        lambda cfg, layer: cfg.model.architecture == "skipgram" and layer.draws,
        False,
    ),
    (
        "train.window_buckets",
        lambda cfg, layer: (
            cfg.model.window >= 1
            and cfg.train.batch_size % cfg.model.window == 0
            and cfg.train.batch_parts == 1
            and cfg.data.examples == "host"
        ),
        False,
    ),
    (
        "optimizer.table_scales_min_count",
        lambda cfg, layer: (
            cfg.optimizer.name == "sgd"
            and not cfg.optimizer.chain
            and cfg.optimizer.table_scales.get("W", 1.0) != 1.0
        ),
        0,
    ),
    (
        "train.row_damping",
        lambda cfg, layer: (
            layer.curvature
            and cfg.train.gradients == Gradients.explicit
            and cfg.optimizer.name == "sgd"
        ),
        False,
    ),
)


#: Defaults of one (model.architecture, model.output) pair, applied after the side's and the layer's
#: (and winning): where a layer's default suits one architecture only. The HS layer's floor
#: of 0.1 x lifts skip-gram HS's analogy by 0.006-0.008 but costs CBOW HS 0.008 WordSim
#: Spearman on realtext-v1, so CBOW HS keeps 0.2 x (BENCHMARKS.md, "Hierarchical softmax";
#: a higher rate or floor lifts its WordSim there but costs gcide-v1's analogy more, "CBOW
#: HS's rate, floor and batch"). Its input rows train at 3 x the rate
#: (``optimizer.table_scales``) but for the rows of words seen fewer than 20 times, which
#: keep 1 x (``optimizer.table_scales_min_count``): medians of 7 seeds, realtext-v1's
#: WordSim 0.465 (1 x) -> 0.483 (2 x, all rows) -> 0.491 (gensim's 0.487 over 10), gcide-v1's
#: analogy 0.1298 -> 0.1251 -> 0.1236 (gensim's 0.1201); all rows at 3 x: 0.485 and 0.1198
#: (BENCHMARKS.md, "The ninth pass": the rare words' rows, few updates each, are noisy at a
#: high rate, while the frequent words' gain from it). 1,280 centres a step instead
#: of CBOW's 640 give CBOW HS the same scores (7 seeds, both corpora) from a ~4 % shorter
#: training. The layer's row damping damps CBOW HS's output rows only: its input rows too
#: cost 0.012 WordSim there (BENCHMARKS.md, "Large batches on a larger corpus").
PAIR_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("cbow", "hierarchical"): {
        "optimizer.end_factor": 0.2,
        "optimizer.table_scales": {"W": 3.0},
        "optimizer.table_scales_min_count": 20,
        "train.batch_size": 1280,
        "train.row_damping_inputs": False,
    },
}


def _get(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _set(cfg: Config, key: str, value: Any) -> Config:
    section, name = key.split(".")
    return dataclasses.replace(
        cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})}
    )


def _written(where: dict[str, str], key: str) -> bool:
    """Whether the user wrote ``key`` or a key below it (``optimizer.table_scales.W``)."""
    return key in where or any(k.startswith(key + ".") for k in where)


def model_defaults(cfg: Config, where: dict[str, str], source: str) -> Config:
    """The model's defaults on the keys the user did not set (in a file, a dict or --set):
    the input side's ``defaults``, then the output layer's (which win), then the pair's
    (:data:`PAIR_DEFAULTS`), then the :data:`SWITCHES` that do not apply turned off. A
    saved config.yaml sets every key, so it loads back unchanged."""
    side, layer = model_parts(cfg, where, source)
    pair = PAIR_DEFAULTS.get((cfg.model.architecture, cfg.model.output), {})
    for key, value in {**side.defaults, **layer.defaults, **pair}.items():
        if not _written(where, key):
            try:
                _get(cfg, key)
            except (AttributeError, ValueError):
                raise ConfigError(
                    f"{source}: the defaults of model {cfg.model.architecture}/"
                    f"{cfg.model.output} name an unknown key {key!r}"
                ) from None
            cfg = _set(cfg, key, value)
    for key, applies, off in SWITCHES:
        if key not in where and _get(cfg, key) != off and not applies(cfg, layer):
            cfg = _set(cfg, key, off)
    return cfg
