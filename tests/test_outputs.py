"""Output layers: the specific identities of the sampling objectives (sampled softmax against
the full softmax, accidental hits removed, NCE against negative sampling) and all-padding
batches for every registered layer. Every layer's rule against autodiff and against its
pairwise form, on every input side, is in tests/test_rules.py."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgjax.gradcheck import random_problem
from sgjax.losses import batch_loss
from sgjax.model import ModelSpec
from sgjax.outputs import REGISTRY
from sgjax.outputs import nce as nce_layer
from sgjax.outputs.sampled import masked_logsumexp
from sgjax.rules import explicit_grads, value_and_rule
from sgjax.sparse import densify, densify_tree

PROBLEM = dict(vocab_size=20, dim=4, batch_size=6, window=2)


def draws_negatives(output: str) -> bool:
    return "negatives" in REGISTRY[output].scopes(ModelSpec(output=output))


def label(m: ModelSpec) -> str:
    return f"{m.output}-{m.input}" + ("-shared" if m.shared_negatives else "")


# --------------------------------------------------------------------------------------------
# padding


def test_masked_logsumexp_all_masked_row_is_finite():
    with jax.enable_x64(True):
        u = jnp.array([[1e300, 2.0], [1.0, 2.0], [3.0, 1e300]])
        mask = jnp.array([[False, False], [True, True], [True, False]])
        lse, vjp = jax.jit(lambda u: jax.vjp(lambda u: masked_logsumexp(u, mask), u))(u)
        (grad,) = vjp(jnp.ones(3))
        assert np.isfinite(np.asarray(lse)).all() and np.isfinite(np.asarray(grad)).all()
        np.testing.assert_allclose(lse, [0.0, np.logaddexp(1.0, 2.0), 3.0], rtol=1e-15)
        np.testing.assert_array_equal(np.asarray(grad)[~np.asarray(mask)], 0.0)


def padding_variants():
    for output in REGISTRY:
        yield ModelSpec(output=output, negatives=3)
        if draws_negatives(output):
            yield ModelSpec(output=output, negatives=3, shared_negatives=True)


@pytest.mark.parametrize("model", list(padding_variants()), ids=label)
def test_padded_pairs_give_zero_loss_and_gradient(model):
    """A batch of padding only (each batch of the checks above has one padded example)."""
    with jax.enable_x64(True):
        params, batch, consts = random_problem(model, **PROBLEM)
        batch = {**batch, "mask": jnp.zeros_like(batch["mask"])}
        E, grads = jax.jit(value_and_rule, static_argnums=2)(params, batch, model, consts)
        dense = densify_tree(grads, params)
    assert float(E) == 0.0
    for k, g in dense.items():
        assert np.isfinite(np.asarray(g)).all(), k
        np.testing.assert_array_equal(g, 0.0, err_msg=k)


# --------------------------------------------------------------------------------------------
# sampled softmax


@functools.partial(jax.jit, static_argnums=(0, 6))
def one_pair_rule(output, params, h_N, w_O, negatives, consts, shared):
    """The layer's rule on a batch of one pair: (E, EH (N,), dense dE/dW_out)."""
    neg = negatives[None] if shared else negatives[None, None, None]
    model = ModelSpec(output=output, negatives=negatives.shape[0], shared_negatives=shared)
    out = REGISTRY[output].rule(
        params,
        h_N[None, None],
        jnp.reshape(w_O, (1, 1)),
        jnp.ones((1, 1, 1), bool),
        {"negatives": neg},
        consts,
        model,
    )
    return out.E, out.EH[0, 0], densify(out.grads["W_out"], params["W_out"])


@functools.partial(jax.jit, static_argnums=0)
def pair_loss_and_grads(output, params, h_N, w_O, negatives, consts):
    """One pair's E (the layer's ``loss``) and its autodiff gradient w.r.t. (W_out, h)."""
    layer = REGISTRY[output]

    def E(p, h):
        return layer.loss(p, h, w_O, {"negatives": negatives}, consts, None)

    return jax.value_and_grad(E, argnums=(0, 1))(params, h_N)


def small_params(V=7, N=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"W_out": jnp.asarray(rng.normal(size=(V, N)))}, jnp.asarray(rng.normal(size=N))


@pytest.mark.parametrize("shared", [False, True], ids=["per-pair", "shared"])
def test_sampled_softmax_over_the_whole_vocabulary_is_the_softmax(shared):
    V, w_O = 7, jnp.asarray(3)
    with jax.enable_x64(True):
        params, h = small_params(V)
        others = jnp.array([w for w in range(V) if w != int(w_O)])
        consts = {"log_kpn": jnp.full(V, -0.7)}  # a constant Q cancels
        want_E, want_g = pair_loss_and_grads("softmax", params, h, w_O, others, consts)
        got_E, got_g = pair_loss_and_grads("sampled_softmax", params, h, w_O, others, consts)
        np.testing.assert_allclose(got_E, want_E, rtol=1e-13)
        np.testing.assert_allclose(got_g[0]["W_out"], want_g[0]["W_out"], atol=1e-13)
        np.testing.assert_allclose(got_g[1], want_g[1], atol=1e-13)
        # the rule, with the output word itself among the negatives (an accidental hit)
        everyone = jnp.arange(V)
        E, EH, dW = one_pair_rule("sampled_softmax", params, h, w_O, everyone, consts, shared)
        np.testing.assert_allclose(E, want_E, rtol=1e-13)
        np.testing.assert_allclose(EH, want_g[1], atol=1e-13)
        np.testing.assert_allclose(dW, want_g[0]["W_out"], atol=1e-13)


def test_sampled_softmax_shared_batch_over_the_whole_vocabulary_is_the_softmax():
    """Several hidden vectors x output words sharing one candidate set = all V words:
    every pair's softmax is the full one (its output word's own negative removed)."""
    V, N, B, H, T = 6, 3, 2, 2, 3
    rng = np.random.default_rng(1)
    model = ModelSpec(output="sampled_softmax", negatives=V, shared_negatives=True)
    with jax.enable_x64(True):
        params = {"W_out": jnp.asarray(rng.normal(size=(V, N)))}
        h = jnp.asarray(rng.normal(size=(B, H, N)))
        targets = jnp.asarray(rng.integers(0, V, (B, T)))
        w = jnp.asarray(rng.random((B, H, T)) < 0.7).at[0, 0, 0].set(True)
        fields = {"negatives": jnp.broadcast_to(jnp.arange(V), (B, V))}
        consts = {"log_kpn": jnp.zeros(V)}
        got = jax.jit(REGISTRY["sampled_softmax"].rule, static_argnums=6)(
            params, h, targets, w, fields, consts, model
        )
        want = jax.jit(REGISTRY["softmax"].rule, static_argnums=6)(
            params, h, targets, w, {}, {}, model
        )
        np.testing.assert_allclose(got.E, want.E, rtol=1e-13)
        np.testing.assert_allclose(got.EH, want.EH, atol=1e-13)
        dW = densify(got.grads["W_out"], params["W_out"])
        np.testing.assert_allclose(dW, want.grads["W_out"], atol=1e-13)


@pytest.mark.parametrize("shared", [False, True], ids=["per-pair", "shared"])
def test_sampled_softmax_removes_a_negative_equal_to_the_output_word(shared):
    V, w_O = 9, jnp.asarray(4)
    with jax.enable_x64(True):
        params, h = small_params(V, seed=2)
        consts = {"log_kpn": jnp.asarray(np.random.default_rng(3).normal(size=V))}
        with_hit, without = jnp.array([1, 4, 7, 4]), jnp.array([1, 7])
        for args in [(), (shared,)]:  # the loss (and its autodiff gradient), the rule
            f = one_pair_rule if args else pair_loss_and_grads
            got = f("sampled_softmax", params, h, w_O, with_hit, consts, *args)
            want = f("sampled_softmax", params, h, w_O, without, consts, *args)
            for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15)
            # and E is the formula: -u~_{w_O} + log sum_{w in S} exp(u~_w), S = {w_O, 1, 7}
            u = np.asarray(params["W_out"] @ h) - np.asarray(consts["log_kpn"])
            S = [4, 1, 7]
            np.testing.assert_allclose(got[0], np.log(np.exp(u[S]).sum()) - u[4], rtol=1e-13)


# --------------------------------------------------------------------------------------------
# NCE


@pytest.mark.parametrize(
    "side,shared", [("skipgram", False), ("skipgram_context", True), ("cbow", False)]
)
def test_nce_with_k_pn_one_is_negative_sampling(side, shared):
    """log(K P_n(w)) = 0 for every w: NCE's loss and rule are negative sampling's, exactly."""
    nce = ModelSpec(input=side, output="nce", negatives=3, shared_negatives=shared)
    ns = dataclasses.replace(nce, output="negative")
    with jax.enable_x64(True):
        params, batch, consts = random_problem(nce, **PROBLEM)
        consts = {**consts, "log_kpn": jnp.zeros_like(consts["log_kpn"])}
        loss = jax.jit(batch_loss, static_argnums=2)
        rule = jax.jit(explicit_grads, static_argnums=2)
        value = jax.jit(value_and_rule, static_argnums=2)
        for f in (loss, rule, lambda *a: value(*a)[0]):
            got, want = f(params, batch, nce, consts), f(params, batch, ns, consts)
            for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                np.testing.assert_array_equal(g, w)


def test_nce_loss_is_the_formula():
    """E = -log s(Delta(w_O)) - sum_{w_j in W_neg} log s(-Delta(w_j)),
    Delta(w) = v'_w . h - log(K P_n(w)); a negative equal to w_O is skipped."""
    V, w_O = 8, 5
    negatives = [2, 5, 7, 2]
    rng = np.random.default_rng(4)
    W_out, h = rng.normal(size=(V, 3)), rng.normal(size=3)
    log_kpn = np.log(len(negatives) * rng.dirichlet(np.ones(V)))

    def log_s(x):
        return -np.log1p(np.exp(-x))

    delta = W_out @ h - log_kpn
    want = -log_s(delta[w_O]) - sum(log_s(-delta[j]) for j in negatives if j != w_O)
    with jax.enable_x64(True):
        got = jax.jit(nce_layer.LAYER.loss, static_argnums=5)(
            {"W_out": jnp.asarray(W_out)},
            jnp.asarray(h),
            jnp.asarray(w_O),
            {"negatives": jnp.asarray(negatives)},
            {"log_kpn": jnp.asarray(log_kpn)},
            None,
        )
    np.testing.assert_allclose(got, want, rtol=1e-13)
