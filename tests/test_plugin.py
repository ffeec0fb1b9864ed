"""An output layer defined here, outside the package: registered, trained through
``sgjax.experiment.train`` from a config, and gradchecked, with no edit to ``sgjax``.

The toy layer is positive-only logistic regression ("negative sampling with K = 0"):
E = -log s(v~_{w_O} . h), on a table of its own, ``W_toy`` (V, N). It is a poor objective
(nothing pushes unrelated words apart) but a complete one: loss, explicit rule, tables.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_cfg, write_toy_corpus

from sgjax.config import ConfigError, load_config
from sgjax.experiment import train
from sgjax.gradcheck import check
from sgjax.model import ModelSpec
from sgjax.outputs import REGISTRY, OutputLayer, OutputRule, register
from sgjax.outputs.logistic import log_sigmoid_sum, logistic_rows


def toy_loss(params, h, w_O, fields, consts, model):
    """E = -log s(v~_{w_O} . h) of one pair."""
    u = params["W_toy"][w_O] @ h
    return log_sigmoid_sum(u, jnp.ones_like(u), jnp.ones_like(u))


def toy_rule(params, h_BxHxN, targets_BxT, w_BxHxT, fields, consts, model, curvature=False):
    """The example's T output words are rows shared by its H hidden vectors."""
    t = jnp.ones(targets_BxT.shape, jnp.float32)
    E, grad, EH = logistic_rows(params["W_toy"], h_BxHxN, targets_BxT, t, w_BxHxT)
    return OutputRule(E, EH, {"W_toy": grad})


TOY = OutputLayer(
    tables=lambda V: {"W_toy": V},
    prepare=lambda vocab, model: {},
    complete=lambda key, targets, H, consts, model: {},
    scopes=lambda model: {},
    loss=toy_loss,
    rule=toy_rule,
)


@pytest.fixture(autouse=True)
def registered():
    register("toy", TOY)
    yield
    REGISTRY.pop("toy", None)


@pytest.mark.parametrize("side", ["skipgram", "skipgram_context", "cbow"])
def test_toy_layer_rule_equals_autodiff(side):
    r = check(ModelSpec(input=side, output="toy"))
    assert r["ok"], r
    assert r["max_rel_err"] <= 1e-9 and r["pairwise_rel_err"] <= 1e-9


@pytest.mark.parametrize("name", ["toy", "test_plugin.TOY"])
def test_toy_layer_trains_from_a_config(tmp_path, name):
    corpus = write_toy_corpus(tmp_path)
    cfg = tiny_cfg(corpus, f"model.output={name}", "train.epochs=2")
    result = train(cfg, out_dir=tmp_path / "run", progress=False)
    W_toy = np.asarray(result.state.params["W_toy"])
    assert W_toy.shape == (result.vectors.vocab_size, cfg.model.dim)
    assert np.all(np.isfinite(W_toy)) and np.abs(W_toy).max() > 0  # it was trained
    assert (tmp_path / "run" / "vectors.bin").is_file()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len([x for x in lines if '"epoch"' in x]) == 2


def test_unknown_output_layer_names_the_key_and_the_choices():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["model.output=toyy"])
    msg = str(e.value)
    assert "model.output" in msg and "toy" in msg and "negative" in msg
