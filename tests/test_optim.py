"""The optimizer layer: schedules, dense mode == optax, lazy mode == its row-sparse semantics."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend import core as jcore

import sgjax.optim
from sgjax.config import ConfigError, OptimizerConfig, Sparse, load_config
from sgjax.optim import SCHEDULES, apply_updates, build_optimizer, build_schedule, distinct_rows
from sgjax.sparse import RowGrads

V, N = 20, 4  # W is (V, N); W_out is (V - 1, N), as for hierarchical softmax
STEPS, TOTAL = 5, 8
UNTOUCHED = np.arange(15, 20)  # rows of W that never get a gradient entry
ZERO_ONLY = 14  # a row of W that only appears in padding entries (value 0)

# (id, optax name, kwargs): the element-wise optimizers of the table
OPTIMIZERS = [
    ("sgd", "sgd", {}),
    ("sgd_momentum", "sgd", {"momentum": 0.9}),
    ("sgd_nesterov", "sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", "adam", {}),
    ("adamw", "adamw", {"weight_decay": 0.1}),
    ("adagrad", "adagrad", {}),
    ("rmsprop", "rmsprop", {}),
    ("lion", "lion", {}),
]
IDS = [o[0] for o in OPTIMIZERS]


def opt_cfg(name, kwargs=None, sparse="lazy", lr=0.05, schedule="linear", **kw) -> OptimizerConfig:
    """An optimizer section; the lr decays to word2vec.c's 1e-4 x lr unless told."""
    kw.setdefault("end_learning_rate", 1e-4 * lr)
    return OptimizerConfig(
        name=name,
        learning_rate=lr,
        schedule=schedule,
        kwargs=dict(kwargs or {}),
        sparse=Sparse(sparse),
        **kw,
    )


def make_problem(dtype, dense_out=False, seed=0):
    """Initial params and STEPS gradient pytrees with repeated indices, zero-valued padding
    entries and rows never touched. ``dense_out``: W_out gets a dense gradient (softmax)."""
    rng = np.random.default_rng(seed)
    params = {
        "W": rng.normal(size=(V, N)).astype(dtype),
        "W_out": rng.normal(size=(V - 1, N)).astype(dtype),
    }
    steps = []
    for t in range(STEPS):
        idx = rng.integers(0, 14, size=10)
        idx[1] = idx[0]  # a duplicate in every step
        idx = np.concatenate([idx, [ZERO_ONLY, 0]])  # padding entries: zero rows
        val = rng.normal(size=(12, N)).astype(dtype)
        val[-2:] = 0
        out_idx = rng.integers(0, V - 1, size=6)
        out_idx[2] = out_idx[3]
        out_val = rng.normal(size=(6, N)).astype(dtype)
        if t == 2:  # a step where row 0 of W_out gets two entries that cancel exactly
            out_idx[4:] = 0
            out_val[5] = -out_val[4]
        g = {"W": RowGrads(jnp.asarray(idx, jnp.int32), jnp.asarray(val))}
        if dense_out:
            g["W_out"] = jnp.asarray(rng.normal(size=(V - 1, N)).astype(dtype))
        else:
            g["W_out"] = RowGrads(jnp.asarray(out_idx, jnp.int32), jnp.asarray(out_val))
        steps.append(g)
    return {k: jnp.asarray(v) for k, v in params.items()}, steps


def dense_np(g, rows):
    """The summed dense gradient, written with numpy."""
    if not isinstance(g, RowGrads):
        return np.asarray(g)
    out = np.zeros((rows, np.asarray(g.value).shape[1]), np.asarray(g.value).dtype)
    np.add.at(out, np.asarray(g.index), np.asarray(g.value))
    return out


def optax_tx(name, kwargs, lr=0.05, total=TOTAL, chain=()):
    """optax's optimizer ``name`` on sgjax's default schedule, after the transforms ``chain``
    (built by hand with optax, independently of sgjax.config_optax)."""
    schedule = optax.linear_schedule(lr, 1e-4 * lr, total)
    opt = getattr(optax, name)(learning_rate=schedule, **kwargs)
    return optax.chain(*chain, opt) if chain else opt


def step(opt, g, state, params):
    """One optimizer step: ``(new params, new state)``."""
    updates, state = opt.update(g, state, params)
    return apply_updates(params, updates), state


def run(opt, params, steps):
    state = opt.init(params)
    for g in steps:
        params, state = step(opt, g, state, params)
    return params, state


def reference_dense(name, kwargs, params, steps, chain=(), lr=0.05):
    tx = optax_tx(name, kwargs, lr, chain=chain)
    state = tx.init(params)
    for g in steps:
        dg = {k: jnp.asarray(dense_np(g[k], params[k].shape[0])) for k in params}
        updates, state = tx.update(dg, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def reference_lazy(name, kwargs, params, steps, chain=(), lr=0.05):
    """Lazy semantics, stated directly: take optax's dense step, then put back every row
    whose summed gradient is all zero (its parameters and every state leaf shaped like the
    table); leaves of other shapes (step counts) keep the dense step's value."""
    tx = optax_tx(name, kwargs, lr, chain=chain)
    state = tx.init(params)
    for g in steps:
        dg = {k: dense_np(g[k], params[k].shape[0]) for k in params}
        touched = {p.shape: np.any(dg[k] != 0, axis=1) for k, p in params.items()}
        updates, new_state = tx.update({k: jnp.asarray(v) for k, v in dg.items()}, state, params)
        new_params = optax.apply_updates(params, updates)

        def keep(old, new, touched=touched):
            shape = getattr(old, "shape", None)
            if shape in touched:
                return jnp.where(touched[shape][:, None], new, old)
            return new

        params = jax.tree_util.tree_map(keep, params, new_params)
        state = jax.tree_util.tree_map(keep, state, new_state)
    return params, state


def assert_trees_close(a, b, rtol, atol):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


PRECISIONS = [("float32", 1e-5, 1e-6), ("float64", 1e-12, 1e-12)]


# --------------------------------------------------------------------------------------------
# Schedules.


def test_the_schedule_table_is_the_configs_list_of_choices():
    for name in SCHEDULES:
        assert load_config(None, [f"optimizer.schedule={name}"]).optimizer.schedule == name
    with pytest.raises(ConfigError, match="optimizer.schedule must be one of constant, linear"):
        load_config(None, ["optimizer.schedule=linearr"])


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_schedule_builds_and_ends_at_end_lr(name):
    warm = 0.25 if name.startswith("warmup") else None
    cfg = opt_cfg("sgd", lr=0.1, schedule=name, end_learning_rate=0.01, warmup_fraction=warm)
    s = build_schedule(cfg, 100)
    values = np.array([float(s(t)) for t in range(0, 121)])
    assert np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 0.1 + 1e-7
    if name == "constant":
        np.testing.assert_allclose(values, 0.1, rtol=1e-6)
        return
    np.testing.assert_allclose(values[100:], 0.01, rtol=1e-5)  # reaches end_lr, stays
    if name.startswith("warmup"):
        assert values[0] == 0.0
        np.testing.assert_allclose(values[25], 0.1, rtol=1e-6)
        assert np.all(np.diff(values[:26]) > 0) and np.all(np.diff(values[25:]) <= 1e-9)
    else:
        np.testing.assert_allclose(values[0], 0.1, rtol=1e-6)
        assert np.all(np.diff(values) <= 1e-9)


def test_linear_schedule_is_word2vec_decay():
    cfg = opt_cfg("sgd", lr=0.025)  # end_learning_rate 1e-4 * lr (word2vec.c)
    assert cfg.end_lr == pytest.approx(2.5e-6)
    # null: sgjax's floor, END_LR_FACTOR x lr
    assert opt_cfg("sgd", lr=0.025, end_learning_rate=None).end_lr == pytest.approx(0.005)
    assert opt_cfg("sgd", lr=0.05, end_learning_rate=None, end_factor=0.1).end_lr == pytest.approx(
        0.005
    )
    s = build_schedule(cfg, 1000)
    t = np.arange(0, 1500)
    want = np.where(t < 1000, 0.025 + (2.5e-6 - 0.025) * t / 1000, 2.5e-6)
    np.testing.assert_allclose([float(s(i)) for i in t], want, rtol=1e-5, atol=1e-9)


def test_exponential_and_cosine_midpoints():
    cfg = opt_cfg("sgd", lr=0.1, schedule="exponential", end_learning_rate=0.001)
    assert float(build_schedule(cfg, 100)(50)) == pytest.approx(0.01, rel=1e-5)
    cfg = opt_cfg("sgd", lr=0.1, schedule="cosine", end_learning_rate=0.0)
    assert float(build_schedule(cfg, 100)(50)) == pytest.approx(0.05, rel=1e-5)


def test_schedule_needs_steps():
    with pytest.raises(ValueError, match="total_steps"):
        build_schedule(opt_cfg("sgd"), 0)


def test_updates_use_the_schedule_step_by_step():
    """Plain SGD step t moves a row by exactly -schedule(t) * g."""
    with jax.enable_x64(True):
        opt = build_optimizer(opt_cfg("sgd", lr=0.5), total_steps=4)
        params = {"W": jnp.zeros((3, 2), jnp.float64), "W_out": jnp.zeros((2, 2), jnp.float64)}
        state = opt.init(params)
        g = {"W": RowGrads(jnp.array([1]), jnp.ones((1, 2))), "W_out": jnp.zeros((2, 2))}
        for t in range(6):
            before = params["W"][1, 0]
            params, state = step(opt, g, state, params)
            moved = float(before - params["W"][1, 0])
            # (optax evaluates schedules at an int32 count, hence in float32)
            assert moved == pytest.approx(float(opt.learning_rate(jnp.int32(t))), rel=1e-12)
        assert float(opt.learning_rate(0)) == 0.5
        assert float(opt.learning_rate(5)) == pytest.approx(0.5e-4, rel=1e-6)


# --------------------------------------------------------------------------------------------
# Dense and lazy modes against direct computations.


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS)
@pytest.mark.parametrize("oid,name,kwargs", OPTIMIZERS + [("lamb", "lamb", {})], ids=IDS + ["lamb"])
def test_dense_mode_equals_optax(oid, name, kwargs, dtype, rtol, atol):
    with jax.enable_x64(dtype == "float64"):
        params, steps = make_problem(dtype)
        opt = build_optimizer(opt_cfg(name, kwargs, sparse="dense"), TOTAL)
        assert opt.path == "dense"
        got = run(opt, params, steps)
        want = reference_dense(name, kwargs, params, steps)
        assert got[0]["W"].dtype == np.dtype(dtype)
        assert_trees_close(got, want, rtol, atol)


@pytest.mark.parametrize("sparse", ["lazy", "dense"])
@pytest.mark.parametrize("oid,name,kwargs", OPTIMIZERS, ids=IDS)
def test_table_scales_multiply_each_tables_updates(oid, name, kwargs, sparse):
    """``optimizer.table_scales``: each named table's updates are the unscaled ones times
    its factor, step after step (the optimizer's state is the unscaled run's), on every
    path; a table not named is left alone."""
    params, steps = make_problem("float32")
    plain = build_optimizer(opt_cfg(name, kwargs, sparse=sparse), TOTAL)
    scaled = build_optimizer(opt_cfg(name, kwargs, sparse=sparse, table_scales={"W": 2.5}), TOTAL)
    assert scaled.path == plain.path
    s_plain, s_scaled = plain.init(params), scaled.init(params)
    for g in steps:
        u_plain, s_plain = plain.update(g, s_plain, params)
        u_scaled, s_scaled = scaled.update(g, s_scaled, params)
        for k, factor in (("W", 2.5), ("W_out", 1.0)):
            a, b = apply_updates(params, u_plain)[k], apply_updates(params, u_scaled)[k]
            np.testing.assert_allclose(
                b - params[k], factor * (a - params[k]), rtol=1e-5, atol=1e-6
            )
    # a factor of 1 builds the optimizer alone (its state is optax's own)
    one = build_optimizer(opt_cfg(name, kwargs, sparse=sparse, table_scales={"W": 1.0}), TOTAL)
    assert jax.tree.structure(one.init(params)) == jax.tree.structure(plain.init(params))


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS)
@pytest.mark.parametrize("dense_out", [False, True], ids=["rows", "dense_W_out"])
@pytest.mark.parametrize("oid,name,kwargs", OPTIMIZERS, ids=IDS)
def test_lazy_mode_equals_reference(oid, name, kwargs, dense_out, dtype, rtol, atol):
    with jax.enable_x64(dtype == "float64"):
        params, steps = make_problem(dtype, dense_out=dense_out)
        opt = build_optimizer(opt_cfg(name, kwargs), TOTAL)
        got_p, got_s = run(opt, params, steps)
        want_p, want_s = reference_lazy(name, kwargs, params, steps)
        assert_trees_close((got_p, got_s), (want_p, want_s), rtol, atol)
        # rows never touched, or touched only by zero padding entries, did not move
        for r in [*UNTOUCHED, ZERO_ONLY]:
            np.testing.assert_array_equal(got_p["W"][r], params["W"][r])
        if dense_out:  # a dense leaf takes the dense path: the same as dense mode
            dense_p, _ = run(
                build_optimizer(opt_cfg(name, kwargs, sparse="dense"), TOTAL), params, steps
            )
            np.testing.assert_allclose(got_p["W_out"], dense_p["W_out"], rtol=rtol, atol=atol)


@pytest.mark.parametrize("ratio", [0, 10**9], ids=["sort", "index_map"])
@pytest.mark.parametrize("R,M", [(7, 30), (50, 12), (1000, 40)])
def test_distinct_rows_both_strategies(R, M, ratio, monkeypatch):
    monkeypatch.setattr(sgjax.optim, "MAP_MERGE_MAX_RATIO", ratio)
    rng = np.random.default_rng(R + M)
    index = rng.integers(0, min(R, 9), size=M)  # few distinct rows, many repeats
    value = rng.normal(size=(M, 3))
    idx, val = distinct_rows(RowGrads(jnp.asarray(index), jnp.asarray(value)), R)
    K = min(M, R)
    assert idx.shape == (K,) and val.shape == (K, 3)
    idx, val = np.asarray(idx), np.asarray(val)
    rows = np.unique(index)
    want = np.zeros((R, 3))
    np.add.at(want, index, value)
    np.testing.assert_array_equal(idx[: len(rows)], rows)
    np.testing.assert_array_equal(idx[len(rows) :], R + np.arange(len(rows), K))
    np.testing.assert_allclose(val[: len(rows)], want[rows], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(val[len(rows) :], 0)


@pytest.mark.parametrize("ratio", [0, 10**9], ids=["sort", "index_map"])
@pytest.mark.parametrize("oid,name,kwargs", [OPTIMIZERS[1], OPTIMIZERS[3]], ids=IDS[1:4:2])
def test_lazy_mode_with_each_merge_strategy(oid, name, kwargs, ratio, monkeypatch):
    monkeypatch.setattr(sgjax.optim, "MAP_MERGE_MAX_RATIO", ratio)
    params, steps = make_problem("float32", seed=1)
    got = run(build_optimizer(opt_cfg(name, kwargs), TOTAL), params, steps)
    assert_trees_close(got, reference_lazy(name, kwargs, params, steps), 1e-5, 1e-6)


def test_lazy_adam_by_hand():
    """LazyAdam written out in numpy: touched rows get Adam with the global step's bias
    correction and learning rate; other rows keep parameters and moments."""
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.05
    with jax.enable_x64(True):
        params, steps = make_problem("float64")
        got, _ = run(build_optimizer(opt_cfg("adam"), TOTAL), params, steps)
    p = {k: np.array(v) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    for t, g in enumerate(steps, start=1):
        # eta_t = lr + (1e-4 lr - lr) (t - 1) / TOTAL, as optax evaluates it (float32)
        eta = float(optax.linear_schedule(lr, 1e-4 * lr, TOTAL)(jnp.int32(t - 1)))
        assert eta == pytest.approx(lr + (1e-4 * lr - lr) * (t - 1) / TOTAL, rel=1e-6)
        for k in p:
            G = dense_np(g[k], p[k].shape[0])
            for r in range(p[k].shape[0]):
                if not np.any(G[r] != 0):
                    continue
                m[k][r] = b1 * m[k][r] + (1 - b1) * G[r]
                v2[k][r] = b2 * v2[k][r] + (1 - b2) * G[r] ** 2
                mhat, vhat = m[k][r] / (1 - b1**t), v2[k][r] / (1 - b2**t)
                p[k][r] -= eta * mhat / (np.sqrt(vhat) + eps)
    for k in p:
        np.testing.assert_allclose(np.asarray(got[k]), p[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS)
@pytest.mark.parametrize("name", ["sgd", "adagrad"])
def test_lazy_equals_dense_when_zero_gradients_do_nothing(name, dtype, rtol, atol):
    """Plain SGD (scatter-add of -eta * value, duplicates unmerged) and Adagrad: an all-zero
    gradient row changes nothing in dense mode either, so lazy == dense."""
    with jax.enable_x64(dtype == "float64"):
        params, steps = make_problem(dtype)
        lazy = run(build_optimizer(opt_cfg(name), TOTAL), params, steps)
        dense = run(build_optimizer(opt_cfg(name, sparse="dense"), TOTAL), params, steps)
        assert_trees_close(lazy, dense, rtol, atol)


def test_lazy_differs_from_dense_for_adam():
    """Not a tautology: with momentum, dense mode moves rows that got no gradient."""
    params, steps = make_problem("float32")
    lazy, _ = run(build_optimizer(opt_cfg("adam"), TOTAL), params, steps)
    dense, _ = run(build_optimizer(opt_cfg("adam", sparse="dense"), TOTAL), params, steps)
    moved = np.abs(np.asarray(dense["W"][ZERO_ONLY] - params["W"][ZERO_ONLY]))
    assert moved.max() == 0  # never a nonzero gradient: zero moments in dense mode too
    assert not np.allclose(lazy["W_out"], dense["W_out"], rtol=1e-3)


@pytest.mark.parametrize(
    "name,kwargs,path",
    [
        ("sgd", {}, "scatter"),
        ("scale_by_learning_rate", {}, "scatter"),
        ("sgd", {"momentum": 0.9}, "rows"),
        ("adam", {}, "rows"),
        ("adagrad", {}, "rows"),
        ("sign_sgd", {}, "rows"),  # stateless but not linear: duplicates must be merged
    ],
)
def test_lazy_path_is_detected_not_named(name, kwargs, path):
    assert build_optimizer(opt_cfg(name, kwargs), TOTAL).path == path


def test_lazy_sign_sgd_merges_duplicates():
    """sign(g1 + g2) != sign(g1) + sign(g2): a stateless optimizer that is not linear."""
    params = {"W": jnp.zeros((3, 1)), "W_out": jnp.zeros((2, 1))}
    g = {
        "W": RowGrads(jnp.array([1, 1]), jnp.array([[2.0], [-1.0]])),
        "W_out": RowGrads(jnp.array([0]), jnp.array([[0.0]])),
    }
    opt = build_optimizer(opt_cfg("sign_sgd", lr=0.1, schedule="constant"), TOTAL)
    new, _ = step(opt, g, opt.init(params), params)
    np.testing.assert_allclose(new["W"][:, 0], [0.0, -0.1, 0.0], rtol=1e-6)


@pytest.mark.parametrize(
    "name,kwargs",
    [("lamb", {}), ("lars", {}), ("adafactor", {}), ("novograd", {}), ("fromage", {})]
    + [("noisy_sgd", {"key": 0})],
)
def test_lazy_mode_rejects_non_elementwise(name, kwargs):
    with pytest.raises(ConfigError, match=r"optimizer\.sparse=dense") as e:
        build_optimizer(opt_cfg(name, kwargs, schedule="constant"), TOTAL)
    assert name in str(e.value)


def test_optimizer_that_needs_more_than_gradients_is_rejected():
    with pytest.raises(ConfigError, match="lbfgs"):
        build_optimizer(opt_cfg("lbfgs", sparse="dense"), TOTAL)


def test_bad_kwargs_value_is_config_error():
    with pytest.raises(ConfigError, match="optax.sgd"):
        build_optimizer(opt_cfg("sgd", {"momentum": "fast"}), TOTAL)


def test_optimizer_without_schedule_support_runs_with_constant():
    """optax.sm3 takes only a number: constant works (dense), other schedules say why not."""
    assert build_optimizer(opt_cfg("sm3", sparse="dense", schedule="constant"), 5).path == "dense"
    with pytest.raises(ConfigError, match="schedule=constant"):
        build_optimizer(opt_cfg("sm3", sparse="dense"), 5)


def test_mismatched_gradient_keys():
    opt = build_optimizer(opt_cfg("sgd"), TOTAL)
    params = {"W": jnp.zeros((3, 2)), "W_out": jnp.zeros((3, 2))}
    with pytest.raises(ValueError, match="gradient keys"):
        opt.update({"W": jnp.zeros((3, 2))}, opt.init(params), params)


# --------------------------------------------------------------------------------------------
# jit, lax.scan and cost.


@pytest.mark.parametrize("sparse", ["lazy", "dense"])
@pytest.mark.parametrize("name,kwargs", [("sgd", {}), ("adam", {})])
def test_update_under_jit_and_scan(name, kwargs, sparse):
    params, steps = make_problem("float32")
    opt = build_optimizer(opt_cfg(name, kwargs, sparse=sparse), TOTAL)
    eager = run(opt, params, steps)
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *steps)

    @jax.jit
    def train(params, opt_state, grads_seq):
        def body(carry, g):
            return step(opt, g, carry[1], carry[0]), None

        return jax.lax.scan(body, (params, opt_state), grads_seq)[0]

    scanned = train(params, opt.init(params), stacked)
    assert_trees_close(scanned, eager, 1e-5, 1e-6)
    jitted = jax.jit(opt.update)(steps[0], opt.init(params), params)
    assert_trees_close(jitted, opt.update(steps[0], opt.init(params), params), 1e-6, 1e-7)
    jitted = jax.jit(lambda g, s, p: step(opt, g, s, p))(steps[0], opt.init(params), params)
    assert_trees_close(jitted, step(opt, steps[0], opt.init(params), params), 1e-6, 1e-7)


def table_shaped_ops(fn, *args, shapes):
    """Primitives in the jaxpr of ``fn`` whose output has one of the table ``shapes``."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            for sub in eqn.params.values():
                if isinstance(sub, jcore.ClosedJaxpr | jcore.Jaxpr):
                    walk(getattr(sub, "jaxpr", sub))
            if eqn.primitive.name in ("pjit", "jit", "closed_call"):
                continue
            found.extend(eqn.primitive.name for v in eqn.outvars if v.aval.shape in shapes)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize(
    "name,kwargs,expected",
    [
        ("sgd", {}, ["scatter-add"] * 2),  # one scatter-add per table
        # per table: the params' row updates are added, the mu and nu rows are set
        ("adam", {}, ["scatter"] * 4 + ["scatter-add"] * 2),
        ("rmsprop", {}, ["scatter"] * 2 + ["scatter-add"] * 2),  # per table: params, nu rows
    ],
)
def test_lazy_update_costs_rows_touched(name, kwargs, expected):
    """In lazy mode the only table-sized operations of a step (update, then apply_updates)
    are the scatters into the tables and their state rows (updated in place under
    donation); dense mode computes on whole tables."""
    params, steps = make_problem("float32")
    shapes = {(V, N), (V - 1, N)}
    lazy = build_optimizer(opt_cfg(name, kwargs), TOTAL)
    ops = table_shaped_ops(
        lambda g, s, p: step(lazy, g, s, p), steps[0], lazy.init(params), params, shapes=shapes
    )
    assert sorted(ops) == expected
    dense = build_optimizer(opt_cfg(name, kwargs, sparse="dense"), TOTAL)
    ops = table_shaped_ops(
        lambda g, s, p: step(dense, g, s, p), steps[0], dense.init(params), params, shapes=shapes
    )
    assert len([o for o in ops if not o.startswith("scatter")]) >= 4


# --------------------------------------------------------------------------------------------
# Every recipe's optimizer builds.

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_recipe_builds_its_optimizer(path):
    cfg = load_config(path)
    opt = build_optimizer(cfg.optimizer, total_steps=1000)
    assert opt.path in (("dense",) if cfg.optimizer.sparse == "dense" else ("scatter", "rows"))
    assert float(opt.learning_rate(0)) == pytest.approx(
        0.0 if cfg.optimizer.schedule.startswith("warmup") else cfg.optimizer.learning_rate
    )


# --------------------------------------------------------------------------------------------
# optimizer.chain and dotted names.

# (id, chain as written in a config, the same transforms built by hand with optax)
CLIP_CHAIN = [{"clip_by_global_norm": {"max_norm": 1.0}}]
DENSE_CHAINS = [
    ("clip_global", CLIP_CHAIN, lambda: [optax.clip_by_global_norm(1.0)]),
    (
        "clip_global_decay",
        CLIP_CHAIN + [{"add_decayed_weights": {"weight_decay": 0.01}}],
        lambda: [optax.clip_by_global_norm(1.0), optax.add_decayed_weights(0.01)],
    ),
]
LAZY_CHAINS = [  # element-wise transforms only
    (
        "decay",
        [{"add_decayed_weights": {"weight_decay": 0.01}}],
        lambda: [optax.add_decayed_weights(0.01)],
    ),
    ("clip", [{"clip": {"max_delta": 0.3}}], lambda: [optax.clip(0.3)]),
    (
        "nans_clip_adam",
        ["zero_nans", {"clip": {"max_delta": 0.3}}, {"scale_by_adam": {"b1": 0.5}}],
        lambda: [optax.zero_nans(), optax.clip(0.3), optax.scale_by_adam(b1=0.5)],
    ),
]
CHAIN_OPTIMIZERS = [OPTIMIZERS[0], OPTIMIZERS[3], OPTIMIZERS[5]]  # sgd, adam, adagrad
CHAIN_IDS = [o[0] for o in CHAIN_OPTIMIZERS]


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS)
@pytest.mark.parametrize("cid,chain,by_hand", DENSE_CHAINS, ids=[c[0] for c in DENSE_CHAINS])
@pytest.mark.parametrize("oid,name,kwargs", CHAIN_OPTIMIZERS, ids=CHAIN_IDS)
def test_dense_chain_equals_optax_chain(oid, name, kwargs, cid, chain, by_hand, dtype, rtol, atol):
    """optimizer.chain + dense mode == optax.chain(*transforms, optimizer) applied by hand
    with optax.apply_updates on the densified gradients, step after step."""
    with jax.enable_x64(dtype == "float64"):
        params, steps = make_problem(dtype)
        opt = build_optimizer(opt_cfg(name, kwargs, sparse="dense", chain=chain), TOTAL)
        assert opt.path == "dense"
        got = run(opt, params, steps)
        want = reference_dense(name, kwargs, params, steps, chain=by_hand())
        assert_trees_close(got, want, rtol, atol)
        # the clipping took part: without it the result is another one
        plain = run(build_optimizer(opt_cfg(name, kwargs, sparse="dense"), TOTAL), params, steps)
        assert not np.allclose(got[0]["W"], plain[0]["W"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS)
@pytest.mark.parametrize("cid,chain,by_hand", LAZY_CHAINS, ids=[c[0] for c in LAZY_CHAINS])
@pytest.mark.parametrize("oid,name,kwargs", CHAIN_OPTIMIZERS, ids=CHAIN_IDS)
def test_lazy_chain_equals_reference(oid, name, kwargs, cid, chain, by_hand, dtype, rtol, atol):
    """Element-wise chain entries run in lazy mode, with its semantics: touched rows as the
    hand-applied chain moves them, untouched rows and their state left alone."""
    with jax.enable_x64(dtype == "float64"):
        params, steps = make_problem(dtype)
        opt = build_optimizer(opt_cfg(name, kwargs, chain=chain), TOTAL)
        assert opt.path == "rows"  # no chain entry here is c * g
        got = run(opt, params, steps)
        assert_trees_close(got, reference_lazy(name, kwargs, params, steps, by_hand()), rtol, atol)
        for r in [*UNTOUCHED, ZERO_ONLY]:
            np.testing.assert_array_equal(got[0]["W"][r], params["W"][r])


@pytest.mark.parametrize("name", ["sgd", "adagrad"])
def test_lazy_clip_chain_equals_dense_when_zero_gradients_do_nothing(name):
    """clip maps a zero gradient row to zero, so with SGD or Adagrad lazy == dense still."""
    with jax.enable_x64(True):
        params, steps = make_problem("float64")
        chain = [{"clip": {"max_delta": 0.3}}]
        lazy = run(build_optimizer(opt_cfg(name, chain=chain), TOTAL), params, steps)
        dense = run(
            build_optimizer(opt_cfg(name, chain=chain, sparse="dense"), TOTAL), params, steps
        )
        assert_trees_close(lazy, dense, 1e-12, 1e-12)


@pytest.mark.parametrize(
    "chain,key,transform",
    [
        (CLIP_CHAIN, "optimizer.chain[0]", "clip_by_global_norm"),
        # a max_norm the unit-scale probe gradient stays under: found at a larger scale
        (
            [{"clip_by_global_norm": {"max_norm": 50.0}}],
            "optimizer.chain[0]",
            "clip_by_global_norm",
        ),
        (
            [
                {"add_decayed_weights": {"weight_decay": 0.1}},
                {"clip_by_global_norm": {"max_norm": 1.0}},
            ],
            "optimizer.chain[1]",
            "clip_by_global_norm",
        ),
        (
            [{"scale_by_adam": {}}, {"clip_by_block_rms": {"threshold": 0.1}}],
            "optimizer.chain[1]",
            "clip_by_block_rms",
        ),
    ],
)
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_lazy_mode_rejects_non_elementwise_chain_entry(chain, key, transform, name):
    with pytest.raises(ConfigError, match=r"optimizer\.sparse=dense") as e:
        build_optimizer(opt_cfg(name, chain=chain), TOTAL)
    assert f"{key}={transform!r}" in str(e.value)
    assert build_optimizer(opt_cfg(name, chain=chain, sparse="dense"), TOTAL).path == "dense"


def test_lazy_mode_names_the_optimizer_after_an_elementwise_chain():
    with pytest.raises(ConfigError, match=r"optimizer\.name='lamb'.*optimizer\.sparse=dense"):
        build_optimizer(opt_cfg("lamb", chain=[{"clip": {"max_delta": 1.0}}]), TOTAL)


def test_chain_state_and_config_round_trip(tmp_path):
    """The YAML syntax: one-key mappings and bare names; the state is optax.chain's."""
    path = tmp_path / "chain.yaml"
    path.write_text(
        "optimizer:\n  name: adam\n  learning_rate: 0.01\n  schedule: constant\n  sparse: dense\n"
        "  chain:\n"
        "    - clip_by_global_norm: {max_norm: 1.0}\n    - zero_nans\n"
    )
    cfg = load_config(path)
    assert cfg.optimizer.chain == [{"clip_by_global_norm": {"max_norm": 1.0}}, {"zero_nans": {}}]
    params, steps = make_problem("float32")
    opt = build_optimizer(cfg.optimizer, TOTAL)
    want = optax.chain(optax.clip_by_global_norm(1.0), optax.zero_nans(), optax.adam(0.01))
    assert jax.tree_util.tree_structure(opt.init(params)) == jax.tree_util.tree_structure(
        want.init(params)
    )


# A module-level optimizer and transform, named by dotted paths below.


def my_opt(learning_rate, b1=0.9):
    """Adam written as a chain of optax transforms (a project's own optimizer)."""
    return optax.chain(optax.scale_by_adam(b1=b1), optax.scale_by_learning_rate(learning_rate))


def my_double():
    """A transform that doubles the updates."""
    return optax.scale(2.0)


def not_a_transform():
    return 3.0


MODULE_SOURCE = """
import optax


def half_sgd(learning_rate, momentum=None):
    lr = learning_rate
    return optax.sgd((lambda t: 0.5 * lr(t)) if callable(lr) else 0.5 * lr, momentum=momentum)
"""


@pytest.mark.parametrize("sparse", ["lazy", "dense"])
def test_dotted_optimizer_name(sparse, tmp_path, monkeypatch):
    params, steps = make_problem("float32")
    same = run(build_optimizer(opt_cfg("adam", {"b1": 0.8}, sparse=sparse), TOTAL), params, steps)
    got = run(
        build_optimizer(opt_cfg("optax.adam", {"b1": 0.8}, sparse=sparse), TOTAL), params, steps
    )
    assert_trees_close(got, same, 0, 0)
    mine = build_optimizer(opt_cfg(f"{__name__}.my_opt", {"b1": 0.8}, sparse=sparse), TOTAL)
    assert_trees_close(run(mine, params, steps)[0], same[0], 1e-5, 1e-6)
    # a module placed on sys.path, with a chain entry from this module
    (tmp_path / "my_optimizers.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config(
        None,
        [
            "optimizer.name=my_optimizers.half_sgd",
            "optimizer.kwargs={momentum: 0.9}",
            f"optimizer.chain=[{__name__}.my_double]",
            f"optimizer.sparse={sparse}",
            "optimizer.learning_rate=0.05",
            "optimizer.end_learning_rate=5e-6",  # 1e-4 x lr, as the reference's schedule
        ],
    )
    got = run(build_optimizer(cfg.optimizer, TOTAL), params, steps)
    ref = reference_lazy if sparse == "lazy" else reference_dense
    want = ref("sgd", {"momentum": 0.9}, params, steps, chain=[optax.scale(2.0)], lr=0.025)
    assert_trees_close(got, want, 1e-5, 1e-6)


@pytest.mark.parametrize(
    "name,chain,needles",
    [
        ("optax.adm", [], ["optimizer.name='optax.adm'", "no attribute 'adm'", "adam"]),
        ("no_such_pkg.opt", [], ["optimizer.name='no_such_pkg.opt'", "no module"]),
        (
            "sgd",
            [{"clip_by_global_norm": {"max_norm": "x"}}],
            ["optimizer.chain[0]='clip_by_global_norm'"],
        ),
        ("sgd", [{f"{__name__}.my_opt": {}}], ["optimizer.chain[0]", "my_opt", "failed"]),
        ("sgd", [f"{__name__}.MODULE_SOURCE"], ["optimizer.chain[0]", "not a callable"]),
        (
            "sgd",
            [f"{__name__}.not_a_transform"],
            ["optimizer.chain[0]", "returned a float, not an optax GradientTransformation"],
        ),
    ],
)
def test_bad_names_and_chain_entries_at_build(name, chain, needles):
    """Configs made in code skip load_config's checks: building names the key."""
    with pytest.raises(ConfigError) as e:
        build_optimizer(opt_cfg(name, chain=chain, sparse="dense"), TOTAL)
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))


# --------------------------------------------------------------------------------------------
# A short training run with a chain (sgjax.experiment.train, a tiny corpus, dense mode).


def test_experiment_trains_with_a_chain(tmp_path):
    from sgjax.experiment import train

    rng = np.random.default_rng(0)
    words = ["cat", "dog", "eats", "sees", "food", "water", "grass", "bird"]
    lines = [" ".join(rng.choice(words, size=int(rng.integers(3, 12)))) for _ in range(150)]
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(lines) + "\n")
    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    common = [
        f"data.corpus={corpus}",
        "data.min_count=1",
        "data.sample=0",
        "train.batch_size=32",
        "train.steps_per_call=4",
        "eval.analogies=false",
        "eval.similarity=false",
        "optimizer.name=adam",
        "optimizer.learning_rate=0.01",
        "optimizer.sparse=dense",
    ]
    chained = load_config(
        smoke, [*common, "optimizer.chain=[clip_by_global_norm: {max_norm: 1.0}]"]
    )
    result = train(chained, tmp_path / "run", progress=False)
    assert int(result.state.step) > 10
    W = np.asarray(result.state.params["W"])
    assert np.all(np.isfinite(W))
    assert load_config(tmp_path / "run" / "config.yaml").optimizer.chain == CLIP_CHAIN
    plain = train(load_config(smoke, common), None, progress=False)
    assert not np.allclose(W, np.asarray(plain.state.params["W"]), rtol=1e-4, atol=1e-6)
