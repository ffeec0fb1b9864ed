"""Config schema, YAML loading, --set overrides, validation errors and the shipped recipes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sgjax.config import (
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    to_dict,
    to_yaml,
)
from sgjax.inputs import INPUTS
from sgjax.outputs import REGISTRY

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_skipgram_negative_sampling_in_the_fast_form():
    cfg = load_config(None)
    assert cfg == Config()
    m, d, o, t, ev = cfg.model, cfg.data, cfg.optimizer, cfg.train, cfg.eval
    assert (m.architecture, m.output, m.dim, m.window, m.negatives, m.cbow_mean) == (
        "skipgram",
        "negative",
        100,
        5,
        5,
        True,
    )
    assert (d.corpus, d.min_count, d.sample, d.ns_exponent, d.max_line_tokens) == (
        None,
        5,
        1e-3,
        0.75,
        1000,
    )
    assert (o.name, o.learning_rate, o.schedule, o.sparse, o.kwargs) == (
        "sgd",
        0.025,
        "linear",
        "lazy",
        {},
    )
    assert o.end_lr == pytest.approx(0.2 * 0.025)  # a floor that still learns (not 1e-4)
    assert (t.epochs, t.gradients, t.dtype, t.checkpoint_every_steps) == (
        5,
        "explicit",
        "float32",
        0,
    )
    assert t.checkpoint_every_seconds == 300.0  # crash recovery; short runs: one at the end
    # the fast shared-rows form: word2vec.c's orientation, negatives per centre, buckets
    assert (m.skipgram_input, m.shared_negatives, t.batch_size, t.window_buckets) == (
        "context",
        True,
        320,
        True,
    )
    assert d.shuffle and not t.row_damping
    assert (ev.analogies, ev.similarity, ev.restrict_vocab) == (None, None, 30000)


@pytest.mark.parametrize("output", list(REGISTRY))
@pytest.mark.parametrize("architecture", list(INPUTS))
def test_every_registered_side_and_layer_is_a_valid_choice(architecture, output):
    cfg = load_config(None, [f"model.architecture={architecture}", f"model.output={output}"])
    assert (cfg.model.architecture, cfg.model.output) == (architecture, output)


@pytest.mark.parametrize(
    "item, key, names",
    [
        ("model.output=negatve", "model.output", REGISTRY),
        ("model.architecture=skipgrm", "model.architecture", INPUTS),
        ("model.output=no_such_module.LAYER", "model.output", ["no_such_module"]),
        ("model.cbow_update=c", "model.cbow_update", ["paper", "word2vec"]),
        ("model.skipgram_input=both", "model.skipgram_input", ["center", "context"]),
    ],
)
def test_unknown_model_choices_name_the_key_and_list_the_registry(item, key, names):
    with pytest.raises(ConfigError) as e:
        load_config(None, [item])
    msg = str(e.value)
    assert msg.startswith(f"--set {item}: {key}") and all(n in msg for n in names), msg


def test_yaml_then_overrides(tmp_path):
    path = write(
        tmp_path,
        "model:\n  architecture: cbow\n  dim: 50\noptimizer:\n  name: adam\n"
        "  learning_rate: 1\n  kwargs: {b1: 0.8, eps: 1e-6}\n",
    )
    cfg = load_config(path, ["model.dim=300", "optimizer.kwargs.b2=0.99", "train.seed=7"])
    assert cfg.model.architecture == "cbow"
    assert cfg.model.dim == 300 and cfg.model.window == 5  # override wins; default kept
    assert cfg.optimizer.learning_rate == 1.0 and isinstance(cfg.optimizer.learning_rate, float)
    assert cfg.optimizer.kwargs == {"b1": 0.8, "eps": 1e-6, "b2": 0.99}
    assert cfg.train.seed == 7
    cleared = load_config(path, ["optimizer.kwargs={}", "optimizer.name=sgd"])
    assert cleared.optimizer.kwargs == {}


def test_section_override_merges_dict_override_replaces():
    cfg = load_config(None, ["model={dim: 3, window: 2}", "optimizer.name=adam"])
    assert (cfg.model.dim, cfg.model.window, cfg.model.negatives) == (3, 2, 5)
    cfg = load_config(
        None, ["optimizer.name=adam", "optimizer.kwargs.b1=0.5"] + ["optimizer.kwargs={b2: 0.9}"]
    )
    assert cfg.optimizer.kwargs == {"b2": 0.9}


def test_later_overrides_win():
    cfg = load_config(None, ["model.dim=10", "model.dim=20"])
    assert cfg.model.dim == 20


@pytest.mark.parametrize(
    "value,expected",
    [
        ("null", None),
        ("corpus.txt", ("corpus.txt",)),
        ("[a.txt,b.txt.xz]", ("a.txt", "b.txt.xz")),
    ],
)
def test_corpus_forms(value, expected):
    assert load_config(None, [f"data.corpus={value}"]).data.corpus == expected


@pytest.mark.parametrize("value,expected", [("null", None), ("false", False), ("true", None)])
def test_eval_data_forms(value, expected):
    cfg = load_config(None, [f"eval.analogies={value}", "eval.similarity=my/ws.tsv"])
    assert cfg.eval.analogies is expected and cfg.eval.similarity == "my/ws.tsv"


def test_warmup_fraction_resolution():
    assert load_config(None, ["optimizer.schedule=warmup_cosine"]).optimizer.warmup == 0.05
    cfg = load_config(None, ["optimizer.schedule=warmup_linear", "optimizer.warmup_fraction=0.2"])
    assert cfg.optimizer.warmup == 0.2
    assert load_config(None).optimizer.warmup == 0.0


def test_mesh_section():
    assert (Config().mesh.data, Config().mesh.model, Config().mesh.distributed) == (1, 1, False)
    cfg = load_config(None, ["mesh={data: 2, model: 4}", "train.batch_size=64"])
    assert (cfg.mesh.data, cfg.mesh.model) == (2, 4)
    assert to_dict(cfg)["mesh"] == {"data": 2, "model": 4, "distributed": False}


MODEL_RECIPES = {  # configs/NAME.yaml -> the model choice whose defaults it writes out
    "sg_ns.yaml": [],
    "cbow_ns.yaml": ["model.architecture=cbow"],
    "sg_hs.yaml": ["model.output=hierarchical"],
    "cbow_hs.yaml": ["model.architecture=cbow", "model.output=hierarchical"],
}


@pytest.mark.parametrize("name", list(MODEL_RECIPES))
def test_model_recipes_are_the_defaults_written_out(name):
    cfg = load_config(Path(__file__).parents[1] / "configs" / name)
    assert cfg == load_config(None, MODEL_RECIPES[name])


def test_word2vec_c_recipe_is_the_c_tools_literal_choices():
    cfg = load_config(Path(__file__).parents[1] / "configs" / "word2vec_c.yaml")
    m, d, o = cfg.model, cfg.data, cfg.optimizer
    assert (m.skipgram_input, m.shared_negatives, d.shuffle) == ("context", False, False)
    assert o.end_lr == pytest.approx(1e-4 * o.learning_rate)


def test_shared_negatives():
    assert load_config(None).model.shared_negatives is True
    cfg = load_config(None, ["model.shared_negatives=false"])  # word2vec.c: a set per pair
    assert cfg.model.shared_negatives is False
    assert load_config(None, ["model.shared_negatives=no"]).model.shared_negatives is False


def test_skipgram_input():
    assert load_config(None).model.skipgram_input == "context"  # word2vec.c's orientation
    cfg = load_config(None, ["model.skipgram_input=center"])  # the paper's
    assert (cfg.model.skipgram_input, cfg.model.shared_negatives) == ("center", False)
    cfg = load_config(None, ["model.skipgram_input=center", "model.shared_negatives=true"])
    assert (cfg.model.skipgram_input, cfg.model.shared_negatives) == ("center", True)


#: What each model resolves to from the defaults plus its choice alone: (architecture,
#: output) -> (learning_rate, skipgram_input, shared_negatives, row_damping, window_buckets)
MODEL_DEFAULTS = {
    ("skipgram", "negative"): (0.025, "context", True, False, True),
    ("skipgram", "hierarchical"): (0.05, "context", False, True, True),
    ("skipgram", "softmax"): (0.025, "center", False, False, False),
    ("skipgram", "nce"): (0.025, "context", True, False, True),
    ("cbow", "negative"): (0.05, "center", False, False, False),
    ("cbow", "hierarchical"): (0.05, "center", False, True, False),
    ("cbow", "softmax"): (0.05, "center", False, False, False),
}


@pytest.mark.parametrize("model", list(MODEL_DEFAULTS), ids="-".join)
def test_each_model_gets_its_defaults(model):
    architecture, output = model
    cfg = load_config(None, [f"model.architecture={architecture}", f"model.output={output}"])
    m, o, t = cfg.model, cfg.optimizer, cfg.train
    got = (o.learning_rate, m.skipgram_input, m.shared_negatives, t.row_damping, t.window_buckets)
    assert got == MODEL_DEFAULTS[model]
    floor = 0.1 if model == ("skipgram", "hierarchical") else 0.2  # HS layer; CBOW HS pair
    assert o.end_lr == pytest.approx(floor * o.learning_rate)
    batch = {("cbow", "hierarchical"): 1280}.get(model, 640 if architecture == "cbow" else 320)
    assert t.batch_size == batch
    if architecture == "cbow":
        assert m.cbow_update == "word2vec"  # EH to every context word, as word2vec.c


@pytest.mark.parametrize("architecture", list(INPUTS))
@pytest.mark.parametrize("output", list(REGISTRY))
def test_model_defaults_come_from_the_side_and_layer_records(architecture, output):
    from sgjax.config_defaults import PAIR_DEFAULTS, SWITCHES
    from sgjax.inputs import side_name

    cfg = load_config(None, [f"model.architecture={architecture}", f"model.output={output}"])
    side, layer = INPUTS[side_name(architecture, cfg.model.skipgram_input)], REGISTRY[output]
    pair = PAIR_DEFAULTS.get((architecture, output), {})  # the pair's win over the layer's
    switched = {key for key, _, _ in SWITCHES}
    for key, value in {**side.defaults, **layer.defaults, **pair}.items():
        section, name = key.split(".")
        if key not in switched or value:
            assert getattr(getattr(cfg, section), name) == value, key


@pytest.mark.parametrize(
    "sets, scales, min_count",
    [
        ([], {"W": 3.0}, 20),  # CBOW HS's default
        (["optimizer.table_scales.W=1.5"], {"W": 1.5}, 20),  # a key below it: the user's dict
        # W at 1: the rare rows' limit does not apply, so it is turned off
        (["train.row_damping=false", "optimizer.table_scales.W_out=3"], {"W_out": 3.0}, 0),
        (["optimizer.table_scales={}"], {}, 0),
        # not plain SGD: it does not apply either (the scales do, after the optimizer)
        (["optimizer.name=adam", "train.row_damping=false"], {"W": 3.0}, 0),
    ],
)
def test_a_dict_default_yields_to_any_key_the_user_writes_in_it(sets, scales, min_count):
    cbow_hs = ["model.architecture=cbow", "model.output=hierarchical"]
    o = load_config(None, [*cbow_hs, *sets]).optimizer
    assert (o.table_scales, o.table_scales_min_count) == (scales, min_count)


@pytest.mark.parametrize(
    "how",
    ["--set", "section --set", "yaml", "yaml then section --set", "dict"],
)
def test_keys_the_user_sets_win_over_the_model_defaults(tmp_path, how):
    arch = ["model.architecture=cbow"]
    if how == "--set":
        cfg = load_config(None, [*arch, "optimizer.learning_rate=0.01"])
    elif how == "section --set":
        cfg = load_config(None, [*arch, "optimizer={learning_rate: 0.01}"])
    elif how == "yaml":
        path = write(tmp_path, "model: {architecture: cbow}\noptimizer: {learning_rate: 0.01}\n")
        cfg = load_config(path)
    elif how == "yaml then section --set":  # a merged section keeps the file's keys
        path = write(tmp_path, "model: {architecture: cbow}\noptimizer: {learning_rate: 0.01}\n")
        cfg = load_config(path, ["optimizer={name: sgd}"])
    else:
        d = {"model": {"architecture": "cbow"}, "optimizer": {"learning_rate": 0.01}}
        cfg = config_from_dict(d)
    assert cfg.optimizer.learning_rate == 0.01
    assert cfg.optimizer.end_lr == pytest.approx(0.002)


def test_saved_config_loads_back_unchanged(tmp_path):
    """A run's config.yaml sets every key: the model defaults of the architecture it
    names do not apply to it again (a CBOW run saved with eta 0.025 stays at 0.025)."""
    cfg = load_config(None, ["model.architecture=cbow", "optimizer.learning_rate=0.025"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg
    assert config_from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "sets, key, off",
    [
        (["model.architecture=cbow"], "model.skipgram_input", "center"),
        (["model.architecture=cbow"], "model.shared_negatives", False),
        (["model.output=hierarchical"], "model.shared_negatives", False),
        (["model.window=7"], "train.window_buckets", False),  # 320 % 7 != 0
        (["train.batch_parts=2"], "train.window_buckets", False),
        (["model.output=hierarchical", "optimizer.name=adam"], "train.row_damping", False),
    ],
)
def test_defaults_a_model_cannot_use_are_switched_off_but_checked_when_set(sets, key, off):
    cfg = load_config(None, sets)
    section, name = key.split(".")
    assert getattr(getattr(cfg, section), name) == off
    on = "context" if off == "center" else "true"
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(None, [*sets, f"{key}={on}"])


def test_config_is_frozen():
    cfg = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.dim = 3  # type: ignore[misc]


def test_yaml_and_dict_round_trip(tmp_path):
    cfg = load_config(
        None,
        [
            "model.output=hierarchical",
            "data.corpus=[x.txt,y.txt]",
            "optimizer.name=adam",
            "optimizer.kwargs.b1=0.5",
            "optimizer.schedule=warmup_cosine",
            "optimizer.warmup_fraction=0.1",
            "eval.similarity=false",
            "data.max_vocab_size=1000",
        ],
    )
    again = load_config(write(tmp_path, to_yaml(cfg)))
    assert again == cfg
    assert config_from_dict(to_dict(cfg)) == cfg
    assert to_dict(cfg)["optimizer"]["schedule"] == "warmup_cosine"  # plain strings


# --------------------------------------------------------------------------------------------
# Errors: (yaml text or None, overrides, substrings the message must contain).

BAD = {
    "unknown key in yaml": (
        "model:\n  dim: 3\n  dimm: 4\n",
        [],
        ["exp.yaml:3", "unknown key 'model.dimm'", "'dim'", "valid keys in 'model'", "window"],
    ),
    "unknown section in yaml": (
        "modle:\n  dim: 3\n",
        [],
        ["exp.yaml:1", "unknown key 'modle'", "'model'", "optimizer"],
    ),
    "unknown key in --set": (
        None,
        ["train.epoch=3"],
        ["--set train.epoch=3", "unknown key 'train.epoch'", "'epochs'", "batch_size"],
    ),
    "unknown section in --set": (
        None,
        ["mseh.data=8"],
        ["unknown key 'mseh'", "'mesh'", "model, data"],
    ),
    "unknown mesh key": (
        None,
        ["mesh.devices=8"],
        ["unknown key 'mesh.devices'", "valid keys in 'mesh': data, model, distributed"],
    ),
    "zero data axis": (None, ["mesh.data=0"], ["--set mesh.data=0", "mesh.data must be >= 1"]),
    "zero model axis": ("mesh:\n  model: 0\n", [], ["exp.yaml:2", "mesh.model must be >= 1"]),
    "batch not divisible by data axis": (
        None,
        ["mesh.data=4", "train.batch_size=30"],
        ["train.batch_size must be a multiple of mesh.data=4", "got 30"],
    ),
    "wrong type in yaml": ("model:\n  dim: abc\n", [], ["exp.yaml", "model.dim", "'abc'"]),
    "float for int": (None, ["train.batch_size=1.5"], ["train.batch_size", "1.5"]),
    "bool for int": (None, ["model.dim=true"], ["model.dim", "True"]),
    "str for float": (None, ["optimizer.learning_rate=fast"], ["optimizer.learning_rate"]),
    "scalar for section": ("model: 3\n", [], ["exp.yaml:1", "section 'model'", "window"]),
    "scalar for section in --set": (None, ["model=3"], ["--set model=3", "model"]),
    "null for required": (None, ["model.window=null"], ["model.window", "not Optional"]),
    "bad architecture": (
        "model:\n  architecture: skipgrm\n",
        [],
        ["exp.yaml:2", "model.architecture", "skipgrm", "skipgram, skipgram_context, cbow"],
    ),
    "bad output": (None, ["model.output=nse"], ["model.output", "softmax, hierarchical, negative"]),
    "bad schedule": (None, ["optimizer.schedule=linearr"], ["optimizer.schedule", "warmup_cosine"]),
    "bad sparse": (None, ["optimizer.sparse=sparse"], ["optimizer.sparse", "lazy, dense"]),
    "bad gradients": (None, ["train.gradients=manual"], ["train.gradients", "explicit, autodiff"]),
    "bad dtype": (None, ["train.dtype=float16"], ["train.dtype", "float32, float64, bfloat16"]),
    "negative dim": (None, ["model.dim=-3"], ["--set model.dim=-3", "model.dim must be >= 1"]),
    "negative dim in yaml": ("model:\n  dim: -3\n", [], ["exp.yaml:2", "model.dim must be >= 1"]),
    "zero window": (None, ["model.window=0"], ["model.window must be >= 1"]),
    "no negatives": (None, ["model.negatives=0"], ["model.negatives", "output=negative"]),
    "negative negatives": (
        None,
        ["model.output=hierarchical", "model.negatives=-1"],
        ["model.negatives must be >= 0"],
    ),
    "shared negatives with cbow": (
        None,
        ["model.architecture=cbow", "model.shared_negatives=true"],
        ["--set model.shared_negatives=true", "applies to model.architecture=skipgram", "cbow"],
    ),
    "shared negatives with hierarchical softmax": (
        "model:\n  output: hierarchical\n  shared_negatives: true\n",
        [],
        ["exp.yaml:3", "model.shared_negatives", "draws negatives", "hierarchical"],
    ),
    "skipgram input with cbow": (
        "model:\n  architecture: cbow\n  skipgram_input: context\n",
        [],
        ["exp.yaml:3", "model.skipgram_input applies to model.architecture=skipgram", "cbow"],
    ),
    "bad skipgram input": (None, ["model.skipgram_input=centre"], ["skipgram_input", "context"]),
    "row update cap with autodiff": (
        None,
        ["train.row_update_cap=64", "train.gradients=autodiff"],
        ["train.row_update_cap needs train.gradients=explicit"],
    ),
    "negative row update cap": (None, ["train.row_update_cap=-1"], ["train.row_update_cap"]),
    "zero batch parts": (None, ["train.batch_parts=0"], ["train.batch_parts must be >= 1"]),
    "batch not divisible by parts": (
        None,
        ["train.batch_parts=3", "train.batch_size=256"],
        ["train.batch_size must be a multiple of train.batch_parts=3", "got 256"],
    ),
    "window buckets, batch not divisible by window": (
        None,
        ["train.window_buckets=true", "train.batch_size=256", "model.window=5"],
        ["train.window_buckets needs train.batch_size (now 256)", "model.window=5"],
    ),
    "window buckets with batch parts": (
        None,
        ["train.window_buckets=true", "train.batch_size=250", "train.batch_parts=2"],
        ["train.window_buckets", "train.batch_parts=1"],
    ),
    "min_count 0": (None, ["data.min_count=0"], ["data.min_count must be >= 1"]),
    "vocab 1": (None, ["data.max_vocab_size=1"], ["data.max_vocab_size must be >= 2"]),
    "negative sample": (None, ["data.sample=-0.1"], ["data.sample must be >= 0"]),
    "nan exponent": (None, ["data.ns_exponent=.nan"], ["data.ns_exponent must be a finite"]),
    "zero line tokens": (None, ["data.max_line_tokens=0"], ["data.max_line_tokens must be"]),
    "empty cache dir": (None, ["data.cache_dir=''"], ["data.cache_dir"]),
    "corpus number": (None, ["data.corpus=3"], ["data.corpus", "a list of paths"]),
    "corpus empty list": (None, ["data.corpus=[]"], ["data.corpus"]),
    "corpus list of numbers": (None, ["data.corpus=[a.txt,3]"], ["data.corpus", "3"]),
    "zero lr": (None, ["optimizer.learning_rate=0"], ["optimizer.learning_rate must be"]),
    "negative end lr": (None, ["optimizer.end_learning_rate=-1"], ["end_learning_rate must be"]),
    "end factor above 1": (None, ["optimizer.end_factor=2"], ["optimizer.end_factor must be"]),
    "table scale of no table": (
        None,
        ["optimizer.table_scales.E=2"],
        ["--set optimizer.table_scales.E=2", "the tables are W and W_out"],
    ),
    "table scale 0": (None, ["optimizer.table_scales.W=0"], ["table_scales.W must be a finite"]),
    "table scale on a damped table": (
        None,
        ["model.output=hierarchical", "optimizer.table_scales.W_out=2"],
        ["optimizer.table_scales must leave the tables", "(W_out, W) at 1"],
    ),
    "rare rows' limit negative": (
        None,
        ["optimizer.table_scales.W=2", "optimizer.table_scales_min_count=-1"],
        ["optimizer.table_scales_min_count must be >= 0"],
    ),
    "rare rows' limit without W's factor": (
        None,
        ["optimizer.table_scales_min_count=20"],
        ["optimizer.table_scales_min_count limits W's factor", "got 20"],
    ),
    "rare rows' limit with adam": (
        None,
        ["optimizer.name=adam", "optimizer.table_scales.W=2", "optimizer.table_scales_min_count=5"],
        ["optimizer.table_scales_min_count", "plain SGD only", "optimizer.name='adam'"],
    ),
    "rare rows' limit after a chain": (
        None,
        ["optimizer.chain=[clip: {max_delta: 1.0}]", "optimizer.table_scales.W=2"]
        + ["optimizer.table_scales_min_count=5"],
        ["optimizer.table_scales_min_count", "no optimizer.chain"],
    ),
    "exponential to zero": (
        None,
        ["optimizer.schedule=exponential", "optimizer.end_learning_rate=0"],
        ["optimizer.end_learning_rate must be > 0 for schedule exponential"],
    ),
    "warmup without warmup schedule": (
        None,
        ["optimizer.warmup_fraction=0.1"],
        ["optimizer.warmup_fraction", "warmup_cosine", "not by schedule linear"],
    ),
    "warmup fraction 1": (
        None,
        ["optimizer.schedule=warmup_cosine", "optimizer.warmup_fraction=1.0"],
        ["optimizer.warmup_fraction must be in [0, 1)"],
    ),
    "unknown optimizer": (
        "optimizer:\n  name: adamm\n",
        [],
        ["exp.yaml:2", "optimizer.name='adamm'", "did you mean", "adam", "rmsprop"],
    ),
    "optax name that is no optimizer": (
        None,
        ["optimizer.name=linear_schedule"],
        ["'linear_schedule' is not an optimizer", "adagrad"],
    ),
    "unknown optimizer kwarg": (
        "optimizer:\n  name: adam\n  kwargs:\n    beta1: 0.9\n",
        [],
        ["exp.yaml:4", "optimizer.kwargs.beta1", "optax.adam has no parameter", "b1"],
    ),
    "kwarg left from another optimizer": (
        "optimizer:\n  name: adam\n  kwargs: {b1: 0.9}\n",
        ["optimizer.name=sgd"],
        ["optimizer.kwargs.b1", "optax.sgd", "momentum", "optimizer.kwargs={}"],
    ),
    "learning rate in kwargs": (
        None,
        ["optimizer.kwargs.learning_rate=0.1"],
        ["optimizer.kwargs.learning_rate", "set optimizer.learning_rate"],
    ),
    "zero epochs": (None, ["train.epochs=0"], ["train.epochs must be >= 1"]),
    "zero batch": (None, ["train.batch_size=0"], ["train.batch_size must be >= 1"]),
    "zero scan": (None, ["train.steps_per_call=0"], ["train.steps_per_call must be >= 1"]),
    "negative seed": (None, ["train.seed=-1"], ["train.seed must be in"]),
    "negative checkpoint": (None, ["train.checkpoint_every_steps=-1"], ["checkpoint_every"]),
    "negative seconds": (
        None,
        ["train.checkpoint_every_seconds=-1"],
        ["train.checkpoint_every_seconds must be a finite number >= 0"],
    ),
    "nan seconds": (None, ["train.checkpoint_every_seconds=.nan"], ["finite number >= 0"]),
    "negative log": (None, ["train.log_every_steps=-5"], ["train.log_every_steps must be"]),
    "zero restrict": (None, ["eval.restrict_vocab=0"], ["eval.restrict_vocab must be >= 1"]),
    "eval number": (None, ["eval.analogies=3"], ["eval.analogies", "false (skip)"]),
    "set without =": (None, ["model.dim"], ["--set 'model.dim'", "KEY=VALUE"]),
    "set empty key": (None, ["=3"], ["empty key"]),
    "yaml syntax": ("model:\n  dim: [1, 2\n", [], ["exp.yaml:", "invalid YAML"]),
    "yaml top level list": ("- 1\n- 2\n", [], ["exp.yaml", "top level must be a mapping"]),
    "yaml top level scalar": ("hello\n", [], ["exp.yaml", "top level must be a mapping"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_a_clear_error(case, tmp_path):
    text, overrides, needles = BAD[case]
    path = write(tmp_path, text) if text is not None else None
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    msg = str(e.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert isinstance(e.value, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_bad_dict():
    with pytest.raises(ConfigError, match="<dict>: unknown key 'model.size'"):
        config_from_dict({"model": {"size": 3}})
    with pytest.raises(ConfigError, match="expected a mapping"):
        config_from_dict([1, 2])  # type: ignore[arg-type]


def test_empty_file_is_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing\n")) == Config()


# --------------------------------------------------------------------------------------------
# The recipes in configs/.

RECIPES = {  # file -> (architecture, output, optimizer, learning rate, sparse)
    "sg_ns.yaml": ("skipgram", "negative", "sgd", 0.025, "lazy"),
    "word2vec_c.yaml": ("skipgram", "negative", "sgd", 0.025, "lazy"),
    "cbow_ns.yaml": ("cbow", "negative", "sgd", 0.05, "lazy"),
    "sg_hs.yaml": ("skipgram", "hierarchical", "sgd", 0.05, "lazy"),
    "cbow_hs.yaml": ("cbow", "hierarchical", "sgd", 0.05, "lazy"),
    "sg_softmax.yaml": ("skipgram", "softmax", "sgd", 0.025, "lazy"),
    "sg_ns_adam.yaml": ("skipgram", "negative", "adam", None, "lazy"),
    "sg_ns_adagrad.yaml": ("skipgram", "negative", "adagrad", None, "lazy"),
    "sg_ns_rmsprop.yaml": ("skipgram", "negative", "rmsprop", None, "lazy"),
    "sg_ns_chain.yaml": ("skipgram", "negative", "adam", 0.01, "dense"),
}


def test_recipes_present():
    names = {p.name for p in CONFIGS}
    assert set(RECIPES) | {"smoke.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_recipe_loads(path, tmp_path):
    cfg = load_config(path)
    assert load_config(write(tmp_path, to_yaml(cfg))) == cfg
    if path.name in RECIPES:
        arch, output, name, lr, sparse = RECIPES[path.name]
        o = cfg.optimizer
        assert (cfg.model.architecture, cfg.model.output, o.name, o.sparse) == (
            arch,
            output,
            name,
            sparse,
        )
        if lr is not None:
            assert o.learning_rate == lr
        if output != "softmax":  # the C tool's defaults
            m, d = cfg.model, cfg.data
            assert (m.dim, m.window, d.min_count, d.sample, cfg.train.epochs) == (
                100,
                5,
                5,
                1e-3,
                5,
            )
            if output == "negative":
                assert m.negatives == 5


def test_smoke_recipe_is_small():
    cfg = load_config(CONFIGS[0].parent / "smoke.yaml")
    assert cfg.model.dim <= 32 and cfg.train.epochs == 1
    assert cfg.data.max_vocab_size is not None and cfg.data.max_vocab_size <= 5000


# --------------------------------------------------------------------------------------------
# optimizer.chain and dotted optimizer names.


def test_chain_syntaxes_agree(tmp_path):
    """Block and flow YAML, --set, one-key mappings and bare names: one normalised list."""
    block = write(
        tmp_path,
        "optimizer:\n  name: adam\n  chain:\n    - clip_by_global_norm: {max_norm: 1.0}\n"
        "    - add_decayed_weights:\n        weight_decay: 1.0e-4\n    - zero_nans\n",
    )
    flow = (
        "[clip_by_global_norm: {max_norm: 1.0}, add_decayed_weights: {weight_decay: 1e-4}, "
        "zero_nans]"
    )
    want = [
        {"clip_by_global_norm": {"max_norm": 1.0}},
        {"add_decayed_weights": {"weight_decay": 1e-4}},
        {"zero_nans": {}},
    ]
    assert load_config(block).optimizer.chain == want
    assert (
        load_config(None, ["optimizer.name=adam", f"optimizer.chain={flow}"]).optimizer.chain
        == want
    )
    cfg = load_config(block)
    assert load_config(write(tmp_path, to_yaml(cfg), "again.yaml")) == cfg
    assert config_from_dict(to_dict(cfg)) == cfg
    assert load_config(block, ["optimizer.chain=[]"]).optimizer.chain == []
    assert load_config(None).optimizer.chain == []


def test_dotted_optimizer_names_load():
    cfg = load_config(None, ["optimizer.name=optax.adam", "optimizer.kwargs={b1: 0.5}"])
    assert (cfg.optimizer.name, cfg.optimizer.kwargs) == ("optax.adam", {"b1": 0.5})
    chain = "optimizer.chain=[optax.contrib.normalize, optax.clip: {max_delta: 1}]"
    assert len(load_config(None, [chain]).optimizer.chain) == 2


CHAIN_FILE = "optimizer:\n  name: adam\n  chain:\n    - clip: {{max_delta: 1.0}}\n    - {}\n"
BAD_OPTIMIZER = {  # (yaml text or None, overrides, substrings the message must contain)
    "unknown transform": (
        CHAIN_FILE.format("clip_by_globl_norm: {max_norm: 1.0}"),
        [],
        ["exp.yaml:5", "optimizer.chain[1]", "did you mean", "clip_by_global_norm"],
    ),
    "optax name that is no transform": (
        None,
        ["optimizer.chain=[linear_schedule]"],
        ["--set optimizer.chain=[linear_schedule]", "optimizer.chain[0]", "not an optax transform"],
    ),
    "transform kwarg typo": (
        CHAIN_FILE.format("add_decayed_weights: {weight_decy: 0.1}"),
        [],
        ["exp.yaml:5", "optimizer.chain[1].add_decayed_weights.weight_decy", "weight_decay"],
    ),
    "transform needs an argument": (
        None,
        ["optimizer.chain=[clip_by_global_norm]"],
        ["optimizer.chain[0]", "optax.clip_by_global_norm needs max_norm", "{max_norm: ...}"],
    ),
    "two names in one entry": (
        CHAIN_FILE.format("{clip: {max_delta: 1}, zero_nans: {}}"),
        [],
        ["exp.yaml:5", "optimizer.chain[1]", "expected {NAME: {KWARG: VALUE, ...}}"],
    ),
    "arguments not a mapping": (
        None,
        ["optimizer.chain=[clip: 0.5]"],
        ["optimizer.chain[0]", "arguments of clip must be a mapping"],
    ),
    "number as entry": (None, ["optimizer.chain=[3]"], ["optimizer.chain[0]", "got 3"]),
    "chain not a list": (
        None,
        ["optimizer.chain=3"],
        ["--set optimizer.chain=3", "optimizer.chain"],
    ),
    "dotted transform not importable": (
        None,
        ["optimizer.chain=[no_such_package.clip]"],
        ["optimizer.chain[0]='no_such_package.clip'", "no module 'no_such_package'"],
    ),
    "dotted transform attribute": (
        CHAIN_FILE.format("optax.clip_by_globl_norm: {max_norm: 1}"),
        [],
        ["exp.yaml:5", "optimizer.chain[1]", "optax has no attribute", "clip_by_global_norm"],
    ),
    "--set replaces the file's chain": (
        CHAIN_FILE.format("clip: {max_delta: 1}"),
        ["optimizer.chain=[zero_nanz]"],
        ["--set optimizer.chain=[zero_nanz]: optimizer.chain[0]", "zero_nans"],
    ),
    "dotted optimizer attribute": (
        "optimizer:\n  name: optax.adamm\n",
        [],
        ["exp.yaml:2", "optimizer.name='optax.adamm'", "did you mean adam"],
    ),
    "dotted optimizer not importable": (
        None,
        ["optimizer.name=no_such_package.adam"],
        ["optimizer.name='no_such_package.adam'", "no module"],
    ),
    "dotted optimizer without learning_rate": (
        None,
        ["optimizer.name=optax.clip_by_global_norm"],
        ["optimizer.name='optax.clip_by_global_norm' takes no learning_rate"],
    ),
    "dotted optimizer not callable": (
        None,
        ["optimizer.name=optax.__version__"],
        ["optimizer.name='optax.__version__'", "not a callable"],
    ),
    "dotted optimizer kwarg": (
        None,
        ["optimizer.name=optax.adam", "optimizer.kwargs={beta1: 0.9}"],
        ["optimizer.kwargs.beta1", "optax.adam has no parameter 'beta1'", "b1"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_OPTIMIZER))
def test_bad_optimizer_name_or_chain_is_a_clear_error(case, tmp_path):
    text, overrides, needles = BAD_OPTIMIZER[case]
    path = write(tmp_path, text) if text is not None else None
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    msg = str(e.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


# --------------------------------------------------------------------------------------------
# Several config files: merged in order, key by key, then --set; errors name the file.

A_YAML = "model:\n  architecture: cbow\n  dim: 50\n  window: 4\n"
MERGES = {  # case -> (yaml texts of a.yaml, b.yaml, ..., overrides, {dotted key: value})
    "later file wins, earlier keys kept": (
        [A_YAML, "model:\n  dim: 60\n"],
        [],
        {"model.dim": 60, "model.window": 4, "model.architecture": "cbow"},
    ),
    "--set wins over every file": (
        [A_YAML, "model:\n  dim: 60\n"],
        ["model.dim=70"],
        {"model.dim": 70, "model.window": 4},
    ),
    "three files in order": (
        ["model: {dim: 1}\n", "model: {dim: 2, window: 2}\n", "model: {dim: 3}\n"],
        [],
        {"model.dim": 3, "model.window": 2},
    ),
    "a mapping merges key by key": (
        ["optimizer: {name: adam, kwargs: {b1: 0.8}}\n", "optimizer: {kwargs: {b2: 0.9}}\n"],
        [],
        {"optimizer.name": "adam", "optimizer.kwargs": {"b1": 0.8, "b2": 0.9}},
    ),
    "a list replaces": (
        [
            "optimizer:\n  chain: [clip: {max_delta: 1.0}, zero_nans]\n",
            "optimizer: {chain: [zero_nans]}\n",
        ],
        [],
        {"optimizer.chain": [{"zero_nans": {}}]},
    ),
    "null replaces": (
        ["data: {max_vocab_size: 1000}\n", "data: {max_vocab_size: null}\n"],
        [],
        {"data.max_vocab_size": None},
    ),
    "an empty section changes nothing": (
        [A_YAML, "model:\n"],
        [],
        {"model.dim": 50, "model.architecture": "cbow"},
    ),
    "a bad value a later file replaces is no error": (
        ["model: {dim: -3}\n", "model: {dim: 8}\n"],
        [],
        {"model.dim": 8},
    ),
    "the model's defaults see the merged architecture": (
        ["model: {architecture: cbow}\n", "optimizer: {learning_rate: 0.01}\n"],
        [],
        {
            "optimizer.learning_rate": 0.01,
            "train.batch_size": 640,
            "model.skipgram_input": "center",
        },
    ),
    "the last file's architecture picks the defaults": (
        ["model: {architecture: cbow}\n", "model: {architecture: skipgram}\n"],
        [],
        {
            "optimizer.learning_rate": 0.025,
            "train.batch_size": 320,
            "model.skipgram_input": "context",
        },
    ),
    "a key any file sets is not a model default": (
        ["train: {batch_size: 100}\n", "model: {architecture: cbow}\n"],
        [],
        {"train.batch_size": 100, "optimizer.learning_rate": 0.05},
    ),
}


def write_all(tmp_path: Path, texts: list[str]) -> list[Path]:
    return [write(tmp_path, text, f"{'abcdefg'[i]}.yaml") for i, text in enumerate(texts)]


def get(cfg: Config, key: str):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


@pytest.mark.parametrize("case", list(MERGES))
def test_config_files_merge_in_order(case, tmp_path):
    texts, overrides, want = MERGES[case]
    cfg = load_config(write_all(tmp_path, texts), overrides)
    assert {key: get(cfg, key) for key in want} == want


def test_one_file_in_a_list_is_that_file(tmp_path):
    (path,) = write_all(tmp_path, [A_YAML])
    assert load_config([path]) == load_config(path) == load_config(str(path))
    assert load_config([]) == load_config(None) == Config()
    assert load_config([path], ["model.dim=9"]) == load_config(
        None, [*MODEL_RECIPES["cbow_ns.yaml"], "model.dim=9", "model.window=4"]
    )


def test_merged_provenance_names_the_file_and_line_of_each_key(tmp_path):
    from sgjax.config_load import load_files

    a, b = write_all(tmp_path, [A_YAML, "model:\n  dim: 60\noptimizer:\n  chain: [zero_nans]\n"])
    _, where, source = load_files([a, b], ["train.seed=3"])
    assert source == f"{a} + {b}"
    assert where["model.dim"] == f"{b}:2"  # b wins
    assert where["model.window"] == f"{a}:4"  # a's, untouched by b
    assert where["model.architecture"] == f"{a}:2"
    assert where["model"] == f"{b}:1"
    assert where["optimizer.chain[0]"] == f"{b}:4"
    assert where["train.seed"] == "--set train.seed=3"
    a2, _ = write_all(
        tmp_path,
        [
            "optimizer:\n  chain: [clip: {max_delta: 1}, zero_nans]\n",
            "optimizer:\n  chain: [zero_nans]\n",
        ],
    )
    _, where, _ = load_files([a2, b], [])
    assert not any(k.startswith("optimizer.chain[1]") or "clip" in k for k in where), where


MERGE_ERRORS = {  # case -> (yaml texts of a.yaml, b.yaml, ..., overrides, message substrings)
    "bad value in the second file": (
        ["model: {dim: 50}\n", "model:\n  dim: -3\n"],
        [],
        ["b.yaml:2: model.dim must be >= 1"],
    ),
    "wrong type in the first file": (
        ["model:\n  dim: abc\n", "model: {dim: 50}\n"],
        [],
        ["a.yaml:2", "model.dim", "'abc'"],
    ),
    "unknown key in the second file": (
        [A_YAML, "model:\n  dimm: 3\n"],
        [],
        ["b.yaml:2", "unknown key 'model.dimm'", "'dim'"],
    ),
    "scalar section in the second file": (
        [A_YAML, "optimizer: 3\n"],
        [],
        ["b.yaml:1", "section 'optimizer' must be a mapping"],
    ),
    "a rule across files names the key's file": (
        ["model: {architecture: cbow}\n", "train: {seed: 1}\nmodel:\n  skipgram_input: context\n"],
        [],
        ["b.yaml:3: model.skipgram_input applies to model.architecture=skipgram"],
    ),
    "a kwarg an earlier file left": (
        ["optimizer:\n  name: adam\n  kwargs:\n    b1: 0.9\n", "optimizer: {name: sgd}\n"],
        [],
        ["a.yaml:4: optimizer.kwargs.b1", "optax.sgd has no parameter 'b1'"],
    ),
    "a bad entry of the list that replaced another": (
        [
            "optimizer:\n  chain: [clip: {max_delta: 1.0}, zero_nans]\n",
            "\noptimizer:\n  chain: [zero_nanz]\n",
        ],
        [],
        ["b.yaml:3: optimizer.chain[0]", "zero_nans"],
    ),
    "a default no file sets names every file": (
        ["mesh: {data: 3}\n", "model: {dim: 8}\n"],
        [],
        ["a.yaml + ", "b.yaml: train.batch_size must be a multiple of mesh.data=3"],
    ),
    "--set over the files": (
        [A_YAML, "model: {dim: 60}\n"],
        ["model.dim=0"],
        ["--set model.dim=0: model.dim must be >= 1"],
    ),
    "invalid YAML in the second file": (
        [A_YAML, "model:\n  dim: [1, 2\n"],
        [],
        ["b.yaml:", "invalid YAML"],
    ),
}


@pytest.mark.parametrize("case", list(MERGE_ERRORS))
def test_merged_config_errors_name_the_file_and_key(case, tmp_path):
    texts, overrides, needles = MERGE_ERRORS[case]
    with pytest.raises(ConfigError) as e:
        load_config(write_all(tmp_path, texts), overrides)
    msg = str(e.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_missing_second_file(tmp_path):
    (a,) = write_all(tmp_path, [A_YAML])
    with pytest.raises(ConfigError, match="cannot read config file .*nope.yaml"):
        load_config([a, tmp_path / "nope.yaml"])


# --------------------------------------------------------------------------------------------
# The docs of the keys (field metadata; sgjax train --help lists them).


def schema_fields(schema=Config, prefix=""):
    """(dotted name, field) of every section and key, straight from the dataclasses."""
    for f in dataclasses.fields(schema):
        yield f"{prefix}{f.name}", f
        if dataclasses.is_dataclass(f.default_factory):
            yield from schema_fields(f.default_factory, f"{prefix}{f.name}.")


def test_every_section_and_key_has_a_doc():
    names = [name for name, _ in schema_fields()]
    assert len(names) > 50 and "model.dim" in names and "mesh" in names
    undocumented = [
        name for name, f in schema_fields() if not str(f.metadata.get("doc", "")).strip()
    ]
    assert not undocumented, f"fields without metadata['doc']: {undocumented}"


def test_schema_keys_walks_every_field_with_its_default():
    from sgjax.config_docs import schema_keys

    keys = schema_keys()
    assert [k.name for k in keys] == [name for name, _ in schema_fields()]
    defaults = {k.name: k.default for k in keys if not k.section}
    assert defaults == {
        f"{s}.{name}": value
        for s, section in to_dict(Config()).items()
        for name, value in section.items()
    }


def test_restrict_vocab_doc_says_why_30000_and_that_gensims_is_300000():
    from sgjax.evaldata import DEFAULT_RESTRICT_VOCAB

    (f,) = [f for name, f in schema_fields() if name == "eval.restrict_vocab"]
    assert f.default == 30000 and DEFAULT_RESTRICT_VOCAB == 300000
    doc = f.metadata["doc"]
    assert "gensim's default, and sgjax eval's, is 300000" in doc and "fast" in doc
