"""Row damping for large batches (``train.row_damping``): the rules' per-entry curvature is
the trace of the loss's Hessian along each row (checked against jax's second derivatives in
float64, for every input side and output layer that define it, and each record variant),
and :func:`sgjax.rules.damp_rows` scales each row's summed update by (1 - exp(-x)) / x,
x = eta x its summed curvature."""

from __future__ import annotations

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import tiered

from sgjax.config import ConfigError, load_config
from sgjax.gradcheck import random_problem
from sgjax.inputs import INPUTS
from sgjax.losses import batch_loss
from sgjax.model import ModelSpec
from sgjax.outputs import REGISTRY
from sgjax.rules import damp_rows, value_and_rule
from sgjax.sparse import RowGrads, densify_tree
from sgjax.train import _grads


def curvature_defined(model: ModelSpec) -> bool:
    return bool(model.layer.curvature)


def label(m: ModelSpec) -> str:
    s = f"{m.input}-{m.output}" + ("-shared" if m.shared_negatives else "")
    return s + ("" if m.cbow_mean else "-sum") + ("-w2v" if m.cbow_update == "word2vec" else "")


#: every input side with every output layer, and with shared negatives where it draws them
ALL = [
    ModelSpec(input=i, output=o, negatives=3, shared_negatives=shared)
    for i in INPUTS
    for o in REGISTRY
    for shared in (
        (False, True) if "negatives" in REGISTRY[o].scopes(ModelSpec(output=o)) else (False,)
    )
]
#: CBOW's curvature differs with its update (EH / C, EH: the straight-through h's) and the sum
CBOW_VARIANTS = [
    ModelSpec(input="cbow", output=o, negatives=3, cbow_mean=mean, cbow_update=update)
    for o in ("negative", "hierarchical")
    for mean, update in ((True, "word2vec"), (False, "paper"))
]
CURVATURE = [m for m in ALL + CBOW_VARIANTS if curvature_defined(m)]


@functools.partial(jax.jit, static_argnums=2)
def _row_hessian_traces(params: dict, batch: dict, model: ModelSpec, consts: dict) -> dict:
    """trace of d^2 E / d(table[r])^2 for every row r of every table (R,), by forward-over-
    reverse products with every coordinate's unit vector."""

    def trace(key: str) -> jax.Array:
        table = params[key]

        def E(t):
            return batch_loss({**params, key: t}, batch, model, consts)

        g = jax.grad(E)
        basis = jnp.eye(table.size, dtype=table.dtype).reshape(table.size, *table.shape)
        diag = jax.vmap(lambda v: (jax.jvp(g, (table,), (v,))[1] * v).sum())(basis)
        return diag.reshape(table.shape).sum(1)

    return {key: trace(key) for key in params}


@pytest.mark.parametrize("model", tiered(CURVATURE), ids=label)
def test_curvature_is_the_trace_of_each_rows_hessian(model):
    with jax.enable_x64(True):
        params, batch, consts = random_problem(model, vocab_size=20, dim=4, batch_size=6)
        rule = jax.jit(value_and_rule, static_argnums=(2, 4))
        E, grads, curv = rule(params, batch, model, consts, True)
        E0, grads0 = rule(params, batch, model, consts, False)
        np.testing.assert_allclose(E, E0, rtol=1e-12)  # asking for curvature changes nothing
        assert set(curv) == set(grads) == set(params)
        traces = _row_hessian_traces(params, batch, model, consts)
        for k in params:
            R = params[k].shape[0]
            assert curv[k].shape == grads[k].index.shape
            np.testing.assert_array_equal(grads[k].value, grads0[k].value)
            got = jnp.zeros(R + 1).at[jnp.minimum(grads[k].index, R)].add(curv[k])
            assert float(got[R]) == 0.0  # padding entries carry no curvature
            if k == "W" and model.side.input_curvature is None:
                np.testing.assert_array_equal(got, 0.0)  # a side without it: W undamped
                continue
            want = traces[k]
            assert float(want.max()) > 0
            np.testing.assert_allclose(got[:R], want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model", [m for m in CURVATURE if m.input != "skipgram"], ids=label)
def test_damp_inputs_false_leaves_the_input_rows_undamped(model):
    """``train.row_damping_inputs=false``: W's entries get curvature 0 (scale 1), E''s keep
    theirs."""
    params, batch, consts = random_problem(model, vocab_size=20, dim=4, batch_size=6)
    _, _, both = value_and_rule(params, batch, model, consts, True)
    _, _, outs = value_and_rule(params, batch, model, consts, True, damp_inputs=False)
    assert float(jnp.abs(both["W"]).sum()) > 0
    np.testing.assert_array_equal(outs["W"], 0.0)
    np.testing.assert_array_equal(outs["W_out"], both["W_out"])


@pytest.mark.parametrize(
    "model", [m for m in ALL if not curvature_defined(m) and not m.shared_negatives], ids=label
)
def test_curvature_is_refused_where_it_is_not_defined(model):
    """Layers without row curvature (the full and the sampled softmax)."""
    assert not model.layer.curvature
    params, batch, consts = random_problem(model, vocab_size=20, dim=4, batch_size=6, window=2)
    match = re.escape(f"output layer {model.output}")
    with pytest.raises(ValueError, match=match):
        value_and_rule(params, batch, model, consts, curvature=True)


def test_damp_rows_scales_each_row_by_its_summed_curvature():
    R = 4
    index = jnp.array([0, 0, 0, 1, 2, R, R], jnp.int32)  # R: padding
    value = jnp.ones((7, 3))
    curv = jnp.array([1.0, 2.0, 3.0, 0.5, 0.0, 9.0, 9.0])
    dense = jnp.ones((R, 3))
    grads = {"W": RowGrads(index, value), "W_out": dense}
    lr = jnp.float32(0.5)
    out = damp_rows(grads, {"W": curv, "W_out": None}, {"W": R, "W_out": R}, lr)
    assert out["W_out"] is dense
    x = np.array([0.5 * 6.0] * 3 + [0.5 * 0.5, 0.0])  # row 0: 1 + 2 + 3, row 1: 0.5, row 2: 0
    f = np.where(x > 0, -np.expm1(-x) / np.where(x > 0, x, 1), 1.0)
    np.testing.assert_allclose(out["W"].value[:5, 0], f, rtol=1e-6)
    summed = densify_tree(out, {"W": jnp.zeros((R, 3)), "W_out": dense})["W"][:, 0]
    # row 0 moves by 3 f(3) ~ 0.95 entries' worth instead of 3; rows without curvature by 1
    np.testing.assert_allclose(summed, [3 * f[0], f[3], 1.0, 0.0], rtol=1e-6)
    # tiny x: the series 1 - x / 2, continuous with the exact form
    tiny = damp_rows(grads, {"W": curv * 1e-9, "W_out": None}, {"W": R, "W_out": R}, lr)
    np.testing.assert_allclose(tiny["W"].value[:3, 0], 1 - 0.5 * 3e-9, rtol=1e-7)


#: each layer with row curvature, in the paper's skip-gram and in word2vec.c's with the
#: fast options (negatives shared per example where the layer draws them)
DAMPED = [m for m in CURVATURE if m.input == "skipgram" and not m.shared_negatives] + [
    m
    for m in CURVATURE
    if m.input == "skipgram_context"
    and m.shared_negatives == ("negatives" in m.layer.scopes(ModelSpec(output=m.output)))
]


@pytest.mark.parametrize("model", tiered(DAMPED), ids=label)
def test_damped_step_is_the_same_on_window_groups(model):
    """With window buckets the curvature of the groups is joined like their rows: the
    damped gradient equals the damped gradient of the whole batch."""
    # tests/ is on sys.path (rootdir-less test modules); test_fast_paths' specs share its
    # optimizer, so the undamped step here is the one its window-bucket test compiled
    from test_fast_paths import _bucketed, _spec

    window = 3
    with jax.enable_x64(True):
        params, batch, consts = random_problem(model, batch_size=12, window=window)
        batch = jax.tree.map(jnp.asarray, _bucketed(batch, window))
        spec = _spec(model, row_damping=True)
        lr = jnp.float64(0.3)
        grads = jax.jit(_grads, static_argnums=3)
        E1, g1 = grads(params, batch, consts, spec, lr)
        E, g = grads(params, batch, consts, dataclasses.replace(spec, window_buckets=window), lr)
        np.testing.assert_allclose(E, E1, rtol=1e-12)
        d, d1 = densify_tree(g, params), densify_tree(g1, params)
        for k in params:
            np.testing.assert_allclose(d[k], d1[k], rtol=1e-10, atol=1e-13)
        # and damping changed the update (the batch repeats rows)
        _, plain = grads(params, batch, consts, dataclasses.replace(spec, row_damping=False))
        assert not np.allclose(densify_tree(plain, params)["W_out"], d1["W_out"])


@pytest.mark.parametrize(
    "sets,key",
    [
        (["model.output=softmax"], "train.row_damping"),
        (["model.output=sampled_softmax"], "train.row_damping"),
        (["optimizer.name=adam"], "train.row_damping"),
        (["train.gradients=autodiff"], "train.row_damping"),
    ],
)
def test_row_damping_config_errors_name_the_key(sets, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, ["train.row_damping=true", *sets])
    assert load_config(None, ["train.row_damping=true"]).train.row_damping


def test_damping_keeps_a_large_batch_finite_where_summing_diverges(tmp_path):
    """End to end (sgjax.experiment.train): a batch that repeats each of the toy corpus's 15
    words hundreds of times, at a learning rate where the summed updates overshoot."""
    from test_train import tiny_cfg, write_toy_corpus

    from sgjax.experiment import train
    from sgjax.train import NonFiniteLossError

    path = write_toy_corpus(tmp_path)
    big = ("train.batch_size=1024", "optimizer.learning_rate=2", "model.dim=16", "train.epochs=5")
    fast = ("model.skipgram_input=context", "model.shared_negatives=true")
    with pytest.raises(NonFiniteLossError):
        train(tiny_cfg(path, *big, *fast), None, progress=False)
    runs = [
        train(tiny_cfg(path, *big, *fast, "train.row_damping=true"), None, progress=False)
        for _ in range(2)
    ]
    W = [np.asarray(r.state.params["W"]) for r in runs]
    assert np.isfinite(W[0]).all()
    np.testing.assert_array_equal(W[0], W[1])  # deterministic
    # and it learned the toy grammar: subjects are nearer each other than to verbs
    v = runs[0].vectors
    assert v.similarity("cat", "dog") > v.similarity("cat", "eats")
