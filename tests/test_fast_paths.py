"""The fast paths of the train step: negatives shared per centre word, skip-gram in
word2vec.c's orientation, the guide-table noise sampler, negatives drawn once per call and
rules computed on independent parts of a batch. Each must give what the plain path gives."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgjax.config import OptimizerConfig
from sgjax.gradcheck import VARIANTS, max_errors, random_problem
from sgjax.huffman import build_huffman
from sgjax.noise import NOISE_TOTAL, NoiseSampler, noise_sampler, noise_table, sample_negatives
from sgjax.optim import build_optimizer
from sgjax.pipeline import complete_batch, device_tree, window_bucket_slices
from sgjax.sparse import densify_tree
from sgjax.train import StepSpec, _grads, init_state, train_step_jit
from sgjax.vocab import Vocab


def _vocab(V: int, a: float = 1.0, seed: int = 0) -> Vocab:
    counts = np.maximum((1e6 / np.arange(1, V + 1) ** a).astype(np.int64), 5)
    return Vocab(tuple(f"w{i}" for i in range(V)), counts)


@pytest.mark.parametrize("V,a,bits", [(2, 0.5, None), (10, 1.0, None), (3000, 1.1, None),
                                      (3000, 1.1, 4), (50_000, 1.2, None)])  # fmt: skip
def test_noise_sampler_draws_exactly_what_searchsorted_draws(V, a, bits):
    cdf = noise_table(_vocab(V, a))
    s = noise_sampler(cdf, bucket_bits=bits)
    assert isinstance(s, NoiseSampler) and s.steps >= 1
    key = jax.random.PRNGKey(V)
    f = jax.jit(sample_negatives, static_argnums=2)
    np.testing.assert_array_equal(f(key, s, (64, 500)), f(key, cdf, (64, 500)))
    # the extreme draws too: u = 0 and u = NOISE_TOTAL - 1 map to the first / last word
    u = jnp.array([0, 1, NOISE_TOTAL - 2, NOISE_TOTAL - 1], jnp.int32)
    from sgjax.noise import _guided_search

    np.testing.assert_array_equal(
        _guided_search(s, u), jnp.searchsorted(cdf, u, side="right").astype(jnp.int32)
    )


def test_noise_sampler_is_a_pytree_with_static_steps():
    s = noise_sampler(noise_table(_vocab(100)))
    leaves, tree = jax.tree.flatten(s)
    assert len(leaves) == 2
    again = jax.tree.unflatten(tree, leaves)
    assert again.steps == s.steps
    with pytest.raises(ValueError, match="bucket_bits"):
        noise_sampler(noise_table(_vocab(100)), bucket_bits=40)


def _batch(B: int = 16, C: int = 4, V: int = 30, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    mask = rng.random((B, C)) < 0.7
    mask[-1] = False
    return {
        "center": jnp.asarray(rng.integers(0, V, B), jnp.int32),
        "context": jnp.asarray(np.where(mask, rng.integers(0, V, (B, C)), 0), jnp.int32),
        "mask": jnp.asarray(mask),
    }


def test_complete_batch_shapes_of_the_variants():
    vocab = _vocab(30)
    table, tree = noise_table(vocab), device_tree(build_huffman(vocab.counts))
    b = _batch()
    B, C = b["context"].shape
    key = jax.random.PRNGKey(0)
    shared = complete_batch(key, b, output="negative", negatives=3, table=table,
                            shared_negatives=True)  # fmt: skip
    assert shared["negatives"].shape == (B, 3)
    per_pair = complete_batch(key, b, output="negative", negatives=3, table=table)
    assert per_pair["negatives"].shape == (B, C, 3)
    paths = complete_batch(key, b, output="hierarchical", tree_arrays=tree,
                           skipgram_input="context")  # fmt: skip
    assert paths["points"].shape == (B, tree.points.shape[1])  # the centre's path
    np.testing.assert_array_equal(paths["points"], np.asarray(tree.points)[b["center"]])


def _spec(arch: str, out: str, **kw) -> StepSpec:
    opt = build_optimizer(OptimizerConfig(name="sgd", learning_rate=0.05), 100)
    return StepSpec(arch, out, 3, True, "explicit", opt, **kw)


PART_CASES = [
    ("skipgram", "negative", {"skipgram_input": "context", "shared_negatives": True}),
    ("skipgram", "softmax", {"skipgram_input": "context"}),  # a dense W_out gradient
    ("cbow", "hierarchical", {}),
]


@pytest.mark.parametrize("arch,out,kw", PART_CASES)
def test_batch_parts_give_the_same_gradient(arch, out, kw):
    problem = {"shared_negatives": kw.get("shared_negatives", False)}
    skipgram_input = kw.get("skipgram_input", "center")
    with jax.enable_x64(True):
        params, batch = random_problem(
            arch, out, batch_size=12, skipgram_input=skipgram_input, **problem
        )
        params = jax.tree.map(jnp.asarray, params)
        batch = jax.tree.map(jnp.asarray, batch)
        one = _spec(arch, out, **kw)
        grads = jax.jit(_grads, static_argnums=2)
        E1, g1 = grads(params, batch, one)
        for parts in (2, 3):
            E, g = grads(params, batch, dataclasses.replace(one, batch_parts=parts))
            np.testing.assert_allclose(E, E1, rtol=1e-12)
            assert max_errors(densify_tree(g, params), densify_tree(g1, params))[1] <= 1e-12


def _bucketed(batch: dict, window: int, seed: int = 0) -> dict:
    """``batch`` with the mask of epoch_batches(window_buckets=True): rows of group b
    (1..window) set only slots window-b .. window+b-1 (a random subset of them)."""
    rng = np.random.default_rng(seed)
    B, C = batch["mask"].shape
    Bb = B // window
    allowed = np.zeros((B, C), bool)
    for b in range(1, window + 1):
        allowed[(b - 1) * Bb : b * Bb, window - b : window + b] = True
    mask = allowed & (rng.random((B, C)) < 0.8)
    mask[np.arange(0, B, Bb), window - 1] = True  # every group has a real slot
    mask[-1] = False  # and a padding row
    return {**batch, "mask": mask}


BUCKET_CASES = [
    *((a, o, opts) for a, o, opts in VARIANTS),
    ("cbow", "negative", {"cbow_update": "word2vec"}),
]


@pytest.mark.parametrize("arch,out,opts", BUCKET_CASES, ids=str)
def test_window_buckets_give_the_same_gradient(arch, out, opts):
    """The rule computed per window group on its 2b slots (window_bucket_slices) equals the
    rule on the whole padded batch, for every model and record variant (float64)."""
    window = 3
    problem = {k: v for k, v in opts.items() if k != "cbow_update"}
    with jax.enable_x64(True):
        params, batch = random_problem(arch, out, batch_size=12, window=window, **problem)
        batch = _bucketed(batch, window)
        params = jax.tree.map(jnp.asarray, params)
        batch = jax.tree.map(jnp.asarray, batch)
        spec = _spec(arch, out, **opts)
        grads = jax.jit(_grads, static_argnums=2)
        E1, g1 = grads(params, batch, spec)
        E, g = grads(params, batch, dataclasses.replace(spec, window_buckets=window))
        assert float(E1) > 0
        np.testing.assert_allclose(E, E1, rtol=1e-12)
        assert max_errors(densify_tree(g, params), densify_tree(g1, params))[1] <= 1e-12
        # and the slices hold every real slot: dropping a group changes the result
        slices = window_bucket_slices(batch, window)
        assert sum(int(p["mask"].sum()) for p in slices) == int(batch["mask"].sum())
        assert [p["context"].shape[1] for p in slices] == [2, 4, 6]


def _groups(n_steps: int, S: int, B: int = 16, C: int = 4, V: int = 30) -> list[dict]:
    steps = [_batch(B, C, V, seed=i) for i in range(n_steps)]
    groups = []
    for i in range(0, n_steps, S):
        chunk = steps[i : i + S]
        g = {k: np.stack([np.asarray(c[k]) for c in chunk]) for k in chunk[0]}
        g["words"] = np.full(len(chunk), 10, np.int32)
        g["active"] = np.ones(len(chunk), bool)
        groups.append(g)
    return groups


@pytest.mark.parametrize(
    "kw", [{}, {"shared_negatives": True, "skipgram_input": "context", "batch_parts": 2}]
)
def test_negatives_do_not_depend_on_steps_per_call(kw):
    """Step t draws its negatives with fold_in(key, t): 8 steps in calls of 2 or of 4 give
    the same parameters."""
    V = 30
    spec = _spec("skipgram", "negative", **kw)
    tables = {"noise": noise_sampler(noise_table(_vocab(V)))}
    finals = []
    for S in (2, 4):
        state = init_state(jax.random.PRNGKey(0), V, 8, "negative", spec.optimizer)
        state = state.replace(params=jax.tree.map(lambda x: x + 0.1, state.params))
        for g in _groups(8, S):
            state, m = train_step_jit(state, g, tables, spec)
            assert bool(m["finite"])
        assert int(state.step) == 8
        finals.append(jax.tree.map(np.asarray, state.params))
    for k in finals[0]:
        np.testing.assert_allclose(finals[0][k], finals[1][k], rtol=1e-6, atol=1e-7)


def test_row_update_cap_scales_only_rows_updated_more_often_than_the_cap():
    from sgjax.sparse import RowGrads
    from sgjax.train import cap_row_updates

    R = 5
    params = {"W": jnp.zeros((R, 2)), "W_out": jnp.zeros((R, 2))}
    index = jnp.array([0, 0, 0, 0, 1, 2, 2, R, R, R], jnp.int32)  # R: padding
    value = jnp.ones((10, 2))
    dense = jnp.ones((R, 2))
    grads = {"W": RowGrads(index, value), "W_out": dense}
    assert cap_row_updates(grads, params, 0) is grads
    capped = cap_row_updates(grads, params, 2)
    scale = np.asarray(capped["W"].value[:, 0])
    np.testing.assert_allclose(scale, [0.5, 0.5, 0.5, 0.5, 1, 1, 1, 2 / 3, 2 / 3, 2 / 3])
    assert capped["W_out"] is dense  # dense leaves are left alone
    summed = densify_tree(capped, params)["W"]
    np.testing.assert_allclose(summed[:, 0], [2, 1, 2, 0, 0])  # row 0: 4 entries -> 2 worth
    big = cap_row_updates(grads, params, 100)
    np.testing.assert_array_equal(big["W"].value, value)
