"""The fast paths of the train step: negatives shared per centre word, skip-gram in
word2vec.c's orientation, the guide-table noise sampler, negatives drawn once per call and
rules computed on independent parts of a batch. Each must give what the plain path gives."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import tiered

from sgjax.config import OptimizerConfig
from sgjax.gradcheck import max_errors, random_problem
from sgjax.huffman import build_huffman
from sgjax.inputs import INPUTS
from sgjax.model import ModelSpec, complete, window_bucket_slices
from sgjax.noise import NOISE_TOTAL, NoiseSampler, noise_sampler, noise_table, sample_negatives
from sgjax.optim import build_optimizer
from sgjax.outputs import REGISTRY
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


def samples(output: str) -> bool:
    """The layer draws ``negatives`` (sgjax.outputs.sampling): per pair, or shared."""
    return "negatives" in REGISTRY[output].scopes(ModelSpec(output=output))


def label(m: ModelSpec) -> str:
    s = f"{m.input}-{m.output}" + ("-shared" if m.shared_negatives else "")
    return s + ("" if m.cbow_update == "paper" else f"-{m.cbow_update}")


def _batch(B: int = 16, C: int = 4, V: int = 30, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    mask = rng.random((B, C)) < 0.7
    mask[-1] = False
    return {
        "center": jnp.asarray(rng.integers(0, V, B), jnp.int32),
        "context": jnp.asarray(np.where(mask, rng.integers(0, V, (B, C)), 0), jnp.int32),
        "mask": jnp.asarray(mask),
    }


def test_complete_shapes_of_the_variants():
    """The fields ``sgjax.model.complete`` adds for the fast variants: negatives shared per
    example (B, K) or per (hidden, output word) pair (B, H, T, K) in either skip-gram
    orientation; word2vec.c's skip-gram gets the centre's Huffman path, (B, 1, L). (Every
    layer's fields against their scopes: tests/test_pipeline.py.)"""
    vocab = _vocab(30)
    tree = build_huffman(vocab.counts)
    b = _batch()
    B, C = b["context"].shape
    key = jax.random.PRNGKey(0)

    def fields(**kw):
        model = ModelSpec(negatives=3, **kw)
        return complete(key, b, model.layer.prepare(vocab, model), model)

    shared = fields(output="negative", shared_negatives=True)
    assert shared["negatives"].shape == (B, 3)
    shared = fields(input="skipgram_context", output="negative", shared_negatives=True)
    assert shared["negatives"].shape == (B, 3)
    per_pair = fields(output="negative")
    assert per_pair["negatives"].shape == (B, 1, C, 3)
    per_pair = fields(input="skipgram_context", output="negative")
    assert per_pair["negatives"].shape == (B, C, 1, 3)
    paths = fields(input="skipgram_context", output="hierarchical")
    assert paths["points"].shape == (B, 1, tree.points.shape[1])  # the centre's path
    np.testing.assert_array_equal(paths["points"][:, 0], tree.points[np.asarray(b["center"])])
    paths = fields(output="hierarchical")  # the paper's skip-gram: each context word's
    assert paths["points"].shape == (B, C, tree.points.shape[1])
    np.testing.assert_array_equal(paths["points"], tree.points[np.asarray(b["context"])])


@functools.cache
def _sgd():
    return build_optimizer(OptimizerConfig(name="sgd", learning_rate=0.05), 100)


def _spec(model: ModelSpec, **kw) -> StepSpec:
    """The step's spec; one optimizer for all, so equal specs share compiled steps."""
    return StepSpec(model=model, optimizer=_sgd(), gradients="explicit", **kw)


#: word2vec.c's skip-gram with every layer (shared negatives where it draws them; the full
#: softmax's dense W_out gradient), and CBOW with hierarchical softmax
PART_CASES = [
    ModelSpec(input="skipgram_context", output=o, negatives=3, shared_negatives=samples(o))
    for o in REGISTRY
] + [ModelSpec(input="cbow", output="hierarchical", negatives=3)]


@pytest.mark.parametrize("model", tiered(PART_CASES), ids=label)
def test_batch_parts_give_the_same_gradient(model):
    with jax.enable_x64(True):
        params, batch, consts = random_problem(model, batch_size=12)
        one = _spec(model)
        grads = jax.jit(_grads, static_argnums=3)
        E1, g1 = grads(params, batch, consts, one)
        for parts in (2, 3):
            E, g = grads(params, batch, consts, dataclasses.replace(one, batch_parts=parts))
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


#: every input side with every layer, shared negatives where the side has several pairs
#: per example (CBOW's context slots are cut the same way either way), CBOW's word2vec update
BUCKET_CASES = [
    ModelSpec(input=i, output=o, negatives=3, shared_negatives=shared)
    for i in INPUTS
    for o in REGISTRY
    for shared in ((False, True) if samples(o) and INPUTS[i].layout(2) != (1, 1) else (False,))
] + [ModelSpec(input="cbow", output="negative", negatives=3, cbow_update="word2vec")]


@pytest.mark.parametrize("model", tiered(BUCKET_CASES), ids=label)
def test_window_buckets_give_the_same_gradient(model):
    """The rule computed per window group on its 2b slots (window_bucket_slices) equals the
    rule on the whole padded batch, for every model and record variant (float64)."""
    window = 3
    with jax.enable_x64(True):
        params, batch, consts = random_problem(model, batch_size=12, window=window)
        batch = jax.tree.map(jnp.asarray, _bucketed(batch, window))
        spec = _spec(model)
        grads = jax.jit(_grads, static_argnums=3)
        E1, g1 = grads(params, batch, consts, spec)
        E, g = grads(params, batch, consts, dataclasses.replace(spec, window_buckets=window))
        assert float(E1) > 0
        np.testing.assert_allclose(E, E1, rtol=1e-12)
        assert max_errors(densify_tree(g, params), densify_tree(g1, params))[1] <= 1e-12
        # and the slices hold every real slot: dropping a group changes the result
        slices = window_bucket_slices(batch, window, model)
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


#: negative sampling's plain step, and every layer that draws its fields with the fast
#: options (negatives shared per example, word2vec.c's skip-gram, the rule in two parts)
FAST = {"input": "skipgram_context", "shared_negatives": True}
DRAW_CASES = [(ModelSpec(output="negative", negatives=3), {})] + [
    (ModelSpec(output=o, negatives=3, **FAST), {"batch_parts": 2})
    for o in REGISTRY
    if REGISTRY[o].draws
]


@pytest.mark.parametrize(
    "model,kw",
    tiered(DRAW_CASES, model=lambda c: c[0]),
    ids=[label(m) + ("-parts" if kw else "") for m, kw in DRAW_CASES],
)
def test_negatives_do_not_depend_on_steps_per_call(model, kw):
    """Step t draws its negatives with fold_in(key, t): 8 steps in calls of 2 or of 4 give
    the same parameters."""
    V = 30
    spec = _spec(model, **kw)
    tables = model.layer.prepare(_vocab(V), model)
    finals = []
    for S in (2, 4):
        state = init_state(jax.random.PRNGKey(0), V, 8, model.output, spec.optimizer)
        state = state.replace(params=jax.tree.map(lambda x: x + 0.1, state.params))
        init = jax.tree.map(np.asarray, state.params)
        for g in _groups(8, S):
            state, m = train_step_jit(state, g, tables, spec)
            assert bool(m["finite"])
        assert int(state.step) == 8
        finals.append(jax.tree.map(np.asarray, state.params))
    for k in finals[0]:
        assert np.abs(finals[0][k] - init[k]).max() > 1e-4, k  # training moved every table
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
