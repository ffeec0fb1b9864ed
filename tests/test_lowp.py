"""bfloat16 tables with float32 arithmetic (sgjax.lowp): unbiased stochastic rounding
(tolerance from the sample size), one rounding per row and step, and a bfloat16 run that
trains as the float32 one does and repeats itself exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import params_of, tiny_cfg, write_toy_corpus

from sgjax import lowp
from sgjax.experiment import train
from sgjax.sparse import RowGrads

Z = 5.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("x", [0.3, -0.3, 1.7e-3, 0.12345])
def test_stochastic_rounding_is_unbiased(x):
    """n roundings of one value (other rows, columns): each one of its two bfloat16
    neighbours, the mean within Z standard errors of x (sd <= one ulp / 2)."""
    rows, N = 4096, 64
    v = jnp.full((rows, N), x, jnp.float32)
    r = np.asarray(lowp.stochastic_round(v, jnp.arange(rows), jnp.uint32(7)), np.float32)
    lo = float(jnp.asarray(x, jnp.float32).astype(jnp.bfloat16))  # nearest
    vals = np.unique(r)
    assert 1 <= vals.size <= 2 and lo in vals
    ulp = float(np.abs(np.diff(vals))[0]) if vals.size == 2 else abs(x) * 2**-7
    n = r.size
    assert abs(r.mean() - x) < Z * (ulp / 2) / np.sqrt(n)
    if vals.size == 2:  # the chance of rounding up is the fraction of the way up
        frac = (x - vals[0]) / (vals[1] - vals[0])
        up = (r == vals[1]).mean()
        assert abs(up - frac) < Z * np.sqrt(frac * (1 - frac) / n)


def test_rounding_depends_on_row_column_and_seed_only():
    v = jax.random.uniform(jax.random.PRNGKey(0), (64, 16), jnp.float32)
    rows = jnp.arange(64) % 8  # duplicates: rows 0..7 each 8 times, same values per row
    v = v[rows]
    a = lowp.stochastic_round(v, rows, jnp.uint32(3))
    np.testing.assert_array_equal(a, lowp.stochastic_round(v, rows, jnp.uint32(3)))
    np.testing.assert_array_equal(a[:8], a[8:16])  # the same row rounds alike
    b = lowp.stochastic_round(v, rows, jnp.uint32(4))
    assert not np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_apply_updates_sums_a_rows_entries_in_float32_then_rounds_once():
    V, N = 6, 8
    p = jax.random.normal(jax.random.PRNGKey(1), (V, N)).astype(jnp.bfloat16)
    small = jnp.full((1, N), 1e-3, jnp.float32)  # under half an ulp of most entries
    index = jnp.array([2] * 40 + [V], jnp.int32)  # 40 entries of row 2, one padding entry
    u = RowGrads(index, jnp.concatenate([jnp.repeat(small, 40, axis=0), jnp.ones((1, N))]))
    key = jax.random.PRNGKey(0)
    out = lowp.apply_updates({"W": p}, {"W": u}, key, jnp.int32(0))["W"]
    assert out.dtype == jnp.bfloat16
    keep = np.arange(V) != 2
    np.testing.assert_array_equal(np.asarray(out)[keep], np.asarray(p)[keep])  # untouched
    want = np.asarray(p, np.float32)[2] + 0.04  # the float32 sum, not 40 lost roundings
    ulp = np.abs(np.asarray(p, np.float32)[2]) * 2**-7
    np.testing.assert_array_less(np.abs(np.asarray(out, np.float32)[2] - want), ulp + 1e-12)
    # a dense leaf (the full softmax's E') is added and rounded as a whole
    d = lowp.apply_updates({"W_out": p}, {"W_out": jnp.ones((V, N))}, key, jnp.int32(0))
    d = d["W_out"]
    np.testing.assert_allclose(np.asarray(d, np.float32), np.asarray(p, np.float32) + 1, rtol=1e-2)


def test_seeds_differ_by_table_step_and_key():
    k0, k1 = jax.random.PRNGKey(0), jax.random.PRNGKey(1)
    seeds = {
        int(lowp.round_seed(k, jnp.int32(s), t)) for k in (k0, k1) for s in (0, 1) for t in (0, 1)
    }
    assert len(seeds) == 8


def test_an_update_costs_the_rows_it_touches_not_the_table():
    """The compiled bfloat16 update's scratch memory beyond the scatter's own is O(rows
    touched x N), not a float32 copy of a 200,000-row table (51 MB). (XLA's CPU backend
    scatters into bfloat16 through a float32 copy of the table; a GPU's does not.)"""
    V, N, M = 200_000, 64, 512
    p = jnp.zeros((V, N), jnp.bfloat16)
    u = RowGrads(jnp.arange(M, dtype=jnp.int32) * 97, jnp.ones((M, N), jnp.float32))
    step, key = jnp.int32(0), jax.random.PRNGKey(0)

    def temp(fn):
        return (
            jax.jit(fn, donate_argnums=0).lower(p, u).compile().memory_analysis().temp_size_in_bytes
        )

    scatter = temp(lambda p, u: p.at[u.index].set(u.value.astype(p.dtype), mode="drop"))
    update = temp(lambda p, u: lowp.apply_updates({"W": p}, {"W": u}, key, step)["W"])
    assert update - scatter < 16 * M * N * 4, (update, scatter)


def test_a_bfloat16_run_trains_like_float32_and_repeats(corpus, tmp_path):
    over = ("train.epochs=3", "train.kernel=xla")
    f32 = train(tiny_cfg(corpus, *over), tmp_path / "f32", progress=False)
    bf = train(tiny_cfg(corpus, *over, "train.dtype=bfloat16"), tmp_path / "bf", progress=False)
    again = train(tiny_cfg(corpus, *over, "train.dtype=bfloat16"), tmp_path / "b2", progress=False)
    assert all(v.dtype == jnp.bfloat16 for v in jax.tree.leaves(bf.state.params))
    for k in ("W", "W_out"):
        np.testing.assert_array_equal(params_of(bf)[k], params_of(again)[k])
    loss = [[r["loss"] for r in res.history if r["event"] == "epoch"] for res in (f32, bf)]
    assert loss[1][-1] < loss[1][0]  # it learns
    np.testing.assert_allclose(loss[1], loss[0], rtol=0.02)  # as float32 does
