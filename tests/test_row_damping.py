"""Row damping for large batches (``train.row_damping``): the rules' per-entry curvature is
the trace of the loss's Hessian along each row (checked against jax's second derivatives in
float64, for every skip-gram record variant), and :func:`sgjax.rules.damp_rows` scales each
row's summed update by (1 - exp(-x)) / x, x = eta x its summed curvature."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgjax.config import ConfigError, OptimizerConfig, load_config
from sgjax.gradcheck import VARIANTS, random_problem
from sgjax.losses import batch_loss
from sgjax.optim import build_optimizer
from sgjax.rules import damp_rows, value_and_rule
from sgjax.sparse import RowGrads, densify_tree
from sgjax.train import StepSpec, _grads

SKIPGRAM_BINARY = [(a, o, opts) for a, o, opts in VARIANTS if a == "skipgram" and o != "softmax"]


def _row_hessian_traces(params: dict, batch: dict, key: str, output: str, sgi: str):
    """trace of d^2 E / d(table[r])^2 for every row r of params[key] (R,), by forward-over-
    reverse products with every coordinate's unit vector."""
    table = params[key]

    def E(t):
        return batch_loss({**params, key: t}, batch, "skipgram", output, True, "paper", sgi)

    g = jax.grad(E)
    basis = jnp.eye(table.size, dtype=table.dtype).reshape(table.size, *table.shape)
    diag = jax.vmap(lambda v: (jax.jvp(g, (table,), (v,))[1] * v).sum())(basis)
    return diag.reshape(table.shape).sum(1)


@pytest.mark.parametrize("arch,out,opts", SKIPGRAM_BINARY, ids=str)
def test_curvature_is_the_trace_of_each_rows_hessian(arch, out, opts):
    sgi = opts.get("skipgram_input", "center")
    with jax.enable_x64(True):
        params, batch = random_problem(arch, out, vocab_size=20, dim=4, batch_size=6, **opts)
        params = jax.tree.map(jnp.asarray, params)
        batch = jax.tree.map(jnp.asarray, batch)
        E, grads, curv = value_and_rule(
            params, batch, arch, out, skipgram_input=sgi, curvature=True
        )
        E0, grads0 = value_and_rule(params, batch, arch, out, skipgram_input=sgi)
        np.testing.assert_allclose(E, E0, rtol=1e-12)  # asking for curvature changes nothing
        for k in params:
            R = params[k].shape[0]
            assert curv[k].shape == grads[k].index.shape
            np.testing.assert_array_equal(grads[k].value, grads0[k].value)
            got = jnp.zeros(R + 1).at[jnp.minimum(grads[k].index, R)].add(curv[k])
            assert float(got[R]) == 0.0  # padding entries carry no curvature
            want = _row_hessian_traces(params, batch, k, out, sgi)
            assert float(want.max()) > 0
            np.testing.assert_allclose(got[:R], want, rtol=1e-9, atol=1e-12)


def test_curvature_is_refused_where_it_is_not_defined():
    params, batch = random_problem("cbow", "negative")
    with pytest.raises(ValueError, match="skip-gram"):
        value_and_rule(params, batch, "cbow", "negative", curvature=True)
    params, batch = random_problem("skipgram", "softmax")
    with pytest.raises(ValueError, match="softmax"):
        value_and_rule(params, batch, "skipgram", "softmax", curvature=True)


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


def _spec(arch: str, out: str, **kw) -> StepSpec:
    opt = build_optimizer(OptimizerConfig(name="sgd", learning_rate=0.05), 100)
    return StepSpec(arch, out, 3, True, "explicit", opt, **kw)


@pytest.mark.parametrize(
    "opts",
    [
        {"skipgram_input": "context", "shared_negatives": True},
        {"skipgram_input": "center"},
    ],
    ids=str,
)
def test_damped_step_is_the_same_on_window_groups(opts):
    """With window buckets the curvature of the groups is joined like their rows: the
    damped gradient equals the damped gradient of the whole batch."""
    from test_fast_paths import _bucketed  # tests/ is on sys.path (rootdir-less test modules)

    window = 3
    with jax.enable_x64(True):
        params, batch = random_problem("skipgram", "negative", batch_size=12, window=window, **opts)
        batch = jax.tree.map(jnp.asarray, _bucketed(batch, window))
        params = jax.tree.map(jnp.asarray, params)
        spec = _spec("skipgram", "negative", row_damping=True, **opts)
        lr = jnp.float64(0.3)
        grads = jax.jit(_grads, static_argnums=2)
        E1, g1 = grads(params, batch, spec, lr)
        E, g = grads(params, batch, dataclasses.replace(spec, window_buckets=window), lr)
        np.testing.assert_allclose(E, E1, rtol=1e-12)
        d, d1 = densify_tree(g, params), densify_tree(g1, params)
        for k in params:
            np.testing.assert_allclose(d[k], d1[k], rtol=1e-10, atol=1e-13)
        # and damping changed the update (the batch repeats rows)
        _, plain = grads(params, batch, dataclasses.replace(spec, row_damping=False))
        assert not np.allclose(densify_tree(plain, params)["W_out"], d1["W_out"])


@pytest.mark.parametrize(
    "sets,key",
    [
        (["model.architecture=cbow"], "train.row_damping"),
        (["model.output=softmax"], "train.row_damping"),
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
