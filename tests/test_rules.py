"""The paper's losses and explicit rules: rule == jax.grad(loss) in float64, for every
combination, plus finite differences, normalisation, masking and jit/vmap."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgjax.cli import main
from sgjax.gradcheck import COMBINATIONS, VARIANTS, check, max_errors, random_problem
from sgjax.huffman import build_huffman, path_fields
from sgjax.losses import batch_loss, example_loss
from sgjax.params import init_params
from sgjax.rules import explicit_grads, value_and_rule
from sgjax.sparse import RowGrads, densify

CASES = [
    (arch, out, cbow_mean, seed)
    for (arch, out), cbow_mean, seed in itertools.product(COMBINATIONS, (True, False), (0, 1))
    if cbow_mean or arch == "cbow"
]


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _problem(arch, out, seed=0, **kw):
    params, batch = random_problem(arch, out, seed=seed, **kw)
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, batch)


@pytest.mark.parametrize("arch,out,cbow_mean,seed", CASES)
def test_rule_equals_autodiff(arch, out, cbow_mean, seed):
    r = check(arch, out, cbow_mean=cbow_mean, seed=seed)
    assert r["ok"], r
    assert r["max_rel_err"] <= 1e-9


@pytest.mark.parametrize("out", ["softmax", "negative", "hierarchical"])
def test_cbow_word2vec_update_equals_autodiff_and_is_c_times_the_paper(out):
    r = check("cbow", out, cbow_update="word2vec", seed=3)
    assert r["ok"] and r["cbow_update"] == "word2vec", r
    params, batch = _problem("cbow", out, seed=3)
    _, paper = value_and_rule(params, batch, "cbow", out, True, "paper")
    _, w2v = value_and_rule(params, batch, "cbow", out, True, "word2vec")
    C = np.asarray(batch["mask"]).sum(1)  # (B,): context words of each example
    scale = np.repeat(C, batch["mask"].shape[1]).astype(float)  # per (example, slot) row
    np.testing.assert_array_equal(np.asarray(paper["W"].index), np.asarray(w2v["W"].index))
    np.testing.assert_allclose(
        np.asarray(w2v["W"].value), np.asarray(paper["W"].value) * scale[:, None], rtol=1e-12
    )
    np.testing.assert_allclose(
        np.asarray(w2v["W_out"].value if out != "softmax" else w2v["W_out"]),
        np.asarray(paper["W_out"].value if out != "softmax" else paper["W_out"]),
    )
    assert (C > 1).any()  # so the two updates really differ


@pytest.mark.parametrize("arch,out", COMBINATIONS)
def test_rule_equals_autodiff_at_reference_init(arch, out):
    """At the reference initialisation (W_out = 0) too, e.g. the very first step."""
    params, batch = _problem(arch, out)
    V, N = params["W"].shape
    params = jax.tree.map(
        lambda x: x.astype(jnp.float64), init_params(jax.random.key(3), V, N, out)
    )
    want = jax.grad(batch_loss)(params, batch, arch, out)
    got = explicit_grads(params, batch, arch, out)
    assert max_errors(got, want)[1] <= 1e-9


@pytest.mark.parametrize("arch,out", COMBINATIONS)
def test_check_can_fail(arch, out):
    """The comparison is not vacuous: a wrong rule (here: a perturbed one) is caught."""
    params, batch = _problem(arch, out)
    want = jax.grad(batch_loss)(params, batch, arch, out)
    got = explicit_grads(params, batch, arch, out)
    bad = {k: v.at[0, 0].add(1e-6 * (1 + jnp.abs(v).max())) for k, v in got.items()}
    assert max_errors(bad, want)[1] > 1e-9


@pytest.mark.parametrize("arch,out", COMBINATIONS)
def test_rule_loss_equals_batch_loss(arch, out):
    params, batch = _problem(arch, out, seed=5)
    E_rule, _ = value_and_rule(params, batch, arch, out)
    np.testing.assert_allclose(E_rule, batch_loss(params, batch, arch, out), rtol=1e-12)


@pytest.mark.parametrize("arch,out", COMBINATIONS)
def test_central_finite_differences(arch, out):
    params, batch = _problem(arch, out, seed=2)
    g = explicit_grads(params, batch, arch, out)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for name in ("W", "W_out"):
        # probe the rows the batch touches (elsewhere the gradient is exactly 0) and one other
        nz = np.flatnonzero(np.abs(np.asarray(g[name])).sum(1))
        rows = list(rng.choice(nz, 3, replace=False)) + [int(rng.integers(g[name].shape[0]))]
        for r in rows:
            c = int(rng.integers(g[name].shape[1]))
            plus = {**params, name: params[name].at[r, c].add(eps)}
            minus = {**params, name: params[name].at[r, c].add(-eps)}
            fd = (batch_loss(plus, batch, arch, out) - batch_loss(minus, batch, arch, out)) / (
                2 * eps
            )
            np.testing.assert_allclose(g[name][r, c], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("arch,out", COMBINATIONS)
def test_padding_never_contributes(arch, out):
    """Changing anything under the mask (ids of padded slots, a padded example) changes
    neither E nor the gradient."""
    params, batch = _problem(arch, out, seed=3)
    rng = np.random.default_rng(1)
    V = params["W"].shape[0]
    mask = np.asarray(batch["mask"])
    noisy = {k: np.array(v) for k, v in batch.items()}
    noisy["context"] = np.where(mask, noisy["context"], rng.integers(0, V, mask.shape))
    last = mask.shape[0] - 1
    assert not mask[last].any()  # the problem has one fully padded example
    noisy["center"][last] = (noisy["center"][last] + 7) % V
    if out == "hierarchical":
        pm = np.asarray(batch["path_mask"])
        noisy["points"] = np.where(pm, noisy["points"], rng.integers(0, V - 1, pm.shape))
        noisy["codes"] = np.where(pm, noisy["codes"], rng.integers(0, 2, pm.shape)).astype(np.int8)
        if arch == "cbow":  # the padded example's whole path is under the mask
            noisy["points"][last] = rng.integers(0, V - 1, pm.shape[1])
    if out == "negative":
        noisy["negatives"][last] = rng.integers(0, V, noisy["negatives"][last].shape)
    noisy = jax.tree.map(jnp.asarray, noisy)
    E0, g0 = batch_loss(params, batch, arch, out), explicit_grads(params, batch, arch, out)
    E1, g1 = batch_loss(params, noisy, arch, out), explicit_grads(params, noisy, arch, out)
    np.testing.assert_allclose(E1, E0, rtol=1e-12)
    assert max_errors(g1, g0)[0] <= 1e-12
    # and the fully padded example alone has E = 0 and zero gradient
    one = jax.tree.map(lambda x: x[last : last + 1], batch)
    assert float(batch_loss(params, one, arch, out)) == 0.0
    assert all(
        float(jnp.abs(v).max()) == 0.0 for v in explicit_grads(params, one, arch, out).values()
    )
    # ... and touches no row at all: its row entries carry the out-of-range index R
    _, g = value_and_rule(params, one, arch, out)
    for k, v in g.items():
        if isinstance(v, RowGrads):
            assert (np.asarray(v.index) == params[k].shape[0]).all(), k


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
def test_negative_equal_to_positive_is_skipped(arch):
    """E with negatives (w_O, a, b) equals E with negatives (a, b)."""
    params, _ = _problem(arch, "negative")
    pos, a, b = 3, 11, 17
    if arch == "skipgram":
        ex = {
            "center": 5,
            "context": [pos, 9],
            "mask": [True, False],
            "negatives": [[pos, a, b], [1, 2, 4]],
        }
        ex2 = {**ex, "negatives": [[a, b], [1, 2]]}
    else:
        ex = {"center": pos, "context": [5, 9], "mask": [True, True], "negatives": [pos, a, b]}
        ex2 = {**ex, "negatives": [a, b]}
    f = example_loss(arch, "negative")
    E = f(params, {k: jnp.asarray(v) for k, v in ex.items()})
    E2 = f(params, {k: jnp.asarray(v) for k, v in ex2.items()})
    np.testing.assert_allclose(E, E2, rtol=1e-12)


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
def test_repeated_word_updates_add(arch):
    """Two identical examples give exactly twice the gradient of one (scatter-adds sum)."""
    params, batch = _problem(arch, "negative", seed=4)
    one = jax.tree.map(lambda x: x[:1], batch)
    two = jax.tree.map(lambda x: jnp.concatenate([x[:1], x[:1]]), batch)
    g1, g2 = (
        explicit_grads(params, one, arch, "negative"),
        explicit_grads(params, two, arch, "negative"),
    )
    for k in g1:
        np.testing.assert_allclose(g2[k], 2 * g1[k], rtol=1e-12, atol=1e-15)


def test_softmax_probabilities_sum_to_one():
    """CBOW full softmax: sum over every target w_O of p(w_O | h) = exp(-E) is 1."""
    params, batch = _problem("cbow", "softmax")
    V = params["W"].shape[0]
    ex = jax.tree.map(lambda x: x[0], batch)
    f = jax.vmap(example_loss("cbow", "softmax"), in_axes=(None, 0))
    exs = {
        **jax.tree.map(lambda x: jnp.broadcast_to(x, (V, *x.shape)), ex),
        "center": jnp.arange(V),
    }
    np.testing.assert_allclose(jnp.exp(-f(params, exs)).sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("V", [2, 3, 50, 257])
def test_hierarchical_probabilities_sum_to_one(V):
    """sum over all words w of p(w | h) = prod_j s([[.]] v'_{n(w,j)} . h) equals 1."""
    rng = np.random.default_rng(V)
    counts = np.sort(rng.zipf(1.3, V))[::-1]
    tree = build_huffman(counts)
    N = 6
    params = {
        "W": jnp.asarray(rng.standard_normal((V, N))),
        "W_out": jnp.asarray(rng.standard_normal((V - 1, N))),
    }
    words = jnp.arange(V)
    exs = {
        "center": words,
        "context": jnp.zeros((V, 2), jnp.int32).at[:, 0].set(int(rng.integers(V))),
        "mask": jnp.array([[True, False]] * V),
        **{k: jnp.asarray(v) for k, v in path_fields(tree, np.asarray(words)).items()},
    }
    E = jax.vmap(example_loss("cbow", "hierarchical"), in_axes=(None, 0))(params, exs)
    np.testing.assert_allclose(jnp.exp(-E).sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("arch,out", COMBINATIONS)
def test_vmap_and_jit(arch, out):
    params, batch = _problem(arch, out, seed=6)
    f = example_loss(arch, out)
    B = batch["center"].shape[0]
    loop = np.array([f(params, jax.tree.map(lambda x, i=i: x[i], batch)) for i in range(B)])
    vm = jax.vmap(f, in_axes=(None, 0))(params, batch)
    np.testing.assert_allclose(vm, loop, rtol=1e-12)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(f, in_axes=(None, 0)))(params, batch), loop, rtol=1e-12
    )
    jl = jax.jit(batch_loss, static_argnums=(2, 3))(params, batch, arch, out)
    np.testing.assert_allclose(jl, loop.sum(), rtol=1e-12)
    jr = jax.jit(explicit_grads, static_argnums=(2, 3))(params, batch, arch, out)
    assert max_errors(jr, explicit_grads(params, batch, arch, out))[1] <= 1e-12
    # rules also batch with vmap over independent batches (e.g. per-device shards)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), batch)
    vr = jax.vmap(explicit_grads, in_axes=(None, 0, None, None))(params, stacked, arch, out)
    assert max_errors({k: v[1] for k, v in vr.items()}, jr)[1] <= 1e-12


@pytest.mark.parametrize("arch,out", COMBINATIONS)
def test_rule_is_row_sparse(arch, out):
    """W's gradient, and W_out's except for the full softmax, come as rows: never V x N per
    example, and no more rows than the batch touches."""
    params, batch = _problem(arch, out)
    _, g = value_and_rule(params, batch, arch, out)
    B, C = batch["context"].shape
    assert isinstance(g["W"], RowGrads)
    assert g["W"].value.shape[0] == (B if arch == "skipgram" else B * C)
    if out == "softmax":
        assert g["W_out"].shape == params["W_out"].shape
    else:
        assert isinstance(g["W_out"], RowGrads)
        per_panel = (
            batch["negatives"].shape[-1] + 1 if out == "negative" else batch["points"].shape[-1]
        )
        assert g["W_out"].value.shape[0] == B * per_panel * (C if arch == "skipgram" else 1)
    np.testing.assert_allclose(
        densify(g["W"], params["W"]), explicit_grads(params, batch, arch, out)["W"]
    )


@pytest.mark.parametrize("out", ["softmax", "hierarchical", "negative"])
def test_init_params(out):
    V, N = 40, 10
    p = init_params(jax.random.key(0), V, N, out)
    assert p["W"].shape == (V, N)
    assert p["W_out"].shape == ((V - 1, N) if out == "hierarchical" else (V, N))
    assert float(jnp.abs(p["W"]).max()) <= 0.5 / N
    assert float(jnp.abs(p["W"]).max()) > 0.4 / N  # really spread over the range
    assert float(jnp.abs(p["W_out"]).max()) == 0.0
    q = init_params(jax.random.key(0), V, N, out)
    np.testing.assert_array_equal(p["W"], q["W"])  # deterministic in the key


def test_gradcheck_command(capsys):
    import json

    assert main(["gradcheck", "--model", "cbow", "--output", "negative", "--seed", "3"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1
    assert lines[0]["model"] == "cbow" and lines[0]["output"] == "negative"
    assert lines[0]["ok"] and lines[0]["max_rel_err"] <= 1e-9


# --------------------------------------------------------------------------------------------
# Variants of skip-gram: negatives shared per centre word, word2vec.c's orientation.

VARIANT_CASES = [(arch, out, opts, seed) for arch, out, opts in VARIANTS if opts for seed in (0, 1)]


def _vid(case):
    arch, out, opts, seed = case
    return "-".join([arch, out, *(f"{k}={v}" for k, v in opts.items()), str(seed)])


def _variant(opts: dict) -> tuple[dict, str]:
    """(random_problem options, skipgram_input) of a VARIANTS entry."""
    return {"shared_negatives": opts.get("shared_negatives", False)}, opts.get(
        "skipgram_input", "center"
    )


@pytest.mark.parametrize("case", VARIANT_CASES, ids=map(_vid, VARIANT_CASES))
def test_variant_rule_equals_autodiff(case):
    arch, out, opts, seed = case
    r = check(arch, out, seed=seed, **opts)
    assert r["ok"], r
    assert r.get("shared_negatives", False) == opts.get("shared_negatives", False)
    assert r.get("skipgram_input", "center") == opts.get("skipgram_input", "center")


@pytest.mark.parametrize("skipgram_input", ["center", "context"])
def test_shared_negatives_are_the_per_pair_set_repeated(skipgram_input):
    """Negatives (B, K) shared by the C pairs of a centre give exactly the E and gradient
    of per-pair negatives (B, C, K) holding the same set in every pair."""
    params, batch = _problem("skipgram", "negative", seed=7, shared_negatives=True)
    C = batch["context"].shape[1]
    per_pair = {**batch, "negatives": jnp.repeat(batch["negatives"][:, None, :], C, axis=1)}
    args = ("skipgram", "negative", True, "paper", skipgram_input)
    rule = jax.jit(value_and_rule, static_argnums=(2, 3, 4, 5, 6))
    E_s, g_s = rule(params, batch, *args)
    E_p, g_p = rule(params, per_pair, *args)
    np.testing.assert_allclose(E_s, E_p, rtol=1e-12)
    np.testing.assert_allclose(batch_loss(params, batch, *args), E_p, rtol=1e-12)
    dense_s, dense_p = densify(g_s["W"], params["W"]), densify(g_p["W"], params["W"])
    np.testing.assert_allclose(dense_s, dense_p, rtol=1e-12, atol=1e-14)
    out_s = densify(g_s["W_out"], params["W_out"])
    out_p = densify(g_p["W_out"], params["W_out"])
    np.testing.assert_allclose(out_s, out_p, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("out", ["softmax", "hierarchical", "negative"])
def test_context_input_is_each_pair_as_a_one_word_cbow_example(out):
    """skipgram_input=context: E is the sum over the real (centre, context) pairs of the CBOW
    loss with that one context word predicting the centre (word2vec.c's skip-gram)."""
    params, batch = _problem("skipgram", out, seed=8, skipgram_input="context")
    E = batch_loss(params, batch, "skipgram", out, True, "paper", "context")
    B, C = batch["context"].shape
    cbow = example_loss("cbow", out)
    want = 0.0
    for b in range(B):
        for c in range(C):
            if not bool(batch["mask"][b, c]):
                continue
            ex = {"center": batch["center"][b], "context": batch["context"][b, c : c + 1]}
            ex["mask"] = jnp.ones(1, bool)
            if out == "negative":
                ex["negatives"] = batch["negatives"][b, c]
            elif out == "hierarchical":
                ex.update({k: batch[k][b] for k in ("points", "codes", "path_mask")})
            want += float(cbow(params, ex))
    np.testing.assert_allclose(E, want, rtol=1e-12)


@pytest.mark.parametrize("case", [c for c in VARIANT_CASES if c[3] == 0], ids=_vid)
def test_variant_padding_never_contributes(case):
    arch, out, opts, _ = case
    problem, skipgram_input = _variant(opts)
    params, batch = _problem(arch, out, seed=3, **problem, skipgram_input=skipgram_input)
    args = (arch, out, True, "paper", skipgram_input)
    rng = np.random.default_rng(1)
    V = params["W"].shape[0]
    mask = np.asarray(batch["mask"])
    noisy = {k: np.array(v) for k, v in batch.items()}
    noisy["context"] = np.where(mask, noisy["context"], rng.integers(0, V, mask.shape))
    last = mask.shape[0] - 1
    assert not mask[last].any()
    noisy["center"][last] = (noisy["center"][last] + 7) % V
    if out == "negative":
        noisy["negatives"][last] = rng.integers(0, V, noisy["negatives"][last].shape)
    if out == "hierarchical" and skipgram_input == "context":  # the padded example's path
        noisy["points"][last] = rng.integers(0, V - 1, noisy["points"].shape[1])
    noisy = jax.tree.map(jnp.asarray, noisy)
    loss = jax.jit(batch_loss, static_argnums=(2, 3, 4, 5, 6))
    grads = jax.jit(explicit_grads, static_argnums=(2, 3, 4, 5, 6))
    np.testing.assert_allclose(loss(params, noisy, *args), loss(params, batch, *args), rtol=1e-12)
    assert max_errors(grads(params, noisy, *args), grads(params, batch, *args))[0] <= 1e-12
    one = jax.tree.map(lambda x: x[last : last + 1], batch)
    E, g = value_and_rule(params, one, *args)
    assert float(E) == 0.0
    for k, v in g.items():
        if isinstance(v, RowGrads):
            assert (np.asarray(v.index) == params[k].shape[0]).all(), k
        else:
            assert float(jnp.abs(v).max()) == 0.0, k


def test_variant_rules_are_row_sparse_with_few_rows():
    """The shared forms touch S = C + K (paper's orientation) or C input and 1 + K output
    rows (word2vec.c's orientation) per centre, not C * (1 + K)."""
    rule = jax.jit(value_and_rule, static_argnums=(2, 3, 4, 5, 6))
    params, batch = _problem("skipgram", "negative", shared_negatives=True)
    B, C = batch["context"].shape
    K = batch["negatives"].shape[1]
    _, g = rule(params, batch, "skipgram", "negative", True, "paper", "center")
    assert g["W"].value.shape[0] == B and g["W_out"].value.shape[0] == B * (C + K)
    _, g = rule(params, batch, "skipgram", "negative", True, "paper", "context")
    assert g["W"].value.shape[0] == B * C and g["W_out"].value.shape[0] == B * (1 + K)
    params, batch = _problem("skipgram", "hierarchical", skipgram_input="context")
    _, g = rule(params, batch, "skipgram", "hierarchical", True, "paper", "context")
    assert g["W_out"].value.shape[0] == B * batch["points"].shape[1]


def test_gradcheck_command_variants(capsys):
    import json

    assert main(["gradcheck"]) == 0  # the default: the six combinations, no variants
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert len(lines) == 6 and all(r["ok"] for r in lines)
    assert not any("shared_negatives" in r or "skipgram_input" in r for r in lines)
    argv = ["gradcheck", "--model", "skipgram", "--output", "negative", "--all-variants"]
    assert main(argv) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    keys = {(r.get("skipgram_input", "center"), r.get("shared_negatives", False)) for r in lines}
    assert keys == {("center", False), ("center", True), ("context", False), ("context", True)}
    assert all(r["ok"] for r in lines)
    argv = argv[:-1] + ["--shared-negatives", "only", "--skipgram-input", "context"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and '"shared_negatives": true' in lines[0]
