"""The losses and explicit rules of every model (each input side of ``sgjax.inputs.INPUTS``
with each output layer of ``sgjax.outputs.REGISTRY``): rule == jax.grad(loss) in float64
(and == the same rule pair by pair), plus finite differences, normalisation, masking and
jit/vmap.

Compiling is most of the cost, so the tests share compiled programs: they use the jitted
functions of ``gradcheck.check`` (jax caches them per model and shapes) on its default
problem, and where a test needs another batch it keeps the batch's shapes (padding rows,
which contribute nothing, fill it up).
"""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import tiered

from sgjax.cli import main
from sgjax.gradcheck import check, max_errors, random_problem, toy_vocab
from sgjax.huffman import build_huffman
from sgjax.inputs import INPUTS
from sgjax.losses import batch_loss, pair_losses
from sgjax.model import ModelSpec, complete
from sgjax.outputs import REGISTRY
from sgjax.params import init_params, table_rows
from sgjax.rules import explicit_grads, value_and_rule
from sgjax.sparse import RowGrads, densify
from sgjax.vocab import Vocab


def samples(output: str) -> bool:
    """The layer draws ``negatives`` (sgjax.outputs.sampling): per pair, or shared."""
    return "negatives" in REGISTRY[output].scopes(ModelSpec(output=output))


def label(m: ModelSpec) -> str:
    s = f"{m.input}-{m.output}"
    s += "-shared" if m.shared_negatives else ""
    s += "" if m.cbow_mean else "-sum"
    return s + ("" if m.cbow_update == "paper" else f"-{m.cbow_update}")


#: every input side with every output layer
BASE = [ModelSpec(input=i, output=o, negatives=4) for i in INPUTS for o in REGISTRY]
#: ... and with negatives shared by an example's pairs, where the layer draws negatives
VARIANTS = BASE + [dataclasses.replace(m, shared_negatives=True) for m in BASE if samples(m.output)]
#: ... and CBOW's other options: h the sum of the context vectors, word2vec.c's update
RULE_MODELS = VARIANTS + [
    dataclasses.replace(m, **opts)
    for m in BASE
    if m.input == "cbow"
    for opts in ({"cbow_mean": False}, {"cbow_update": "word2vec"})
]
SAMPLING = [m for m in VARIANTS if samples(m.output)]


def _static_signature(model: ModelSpec, seed: int) -> tuple:
    """What the compiled programs of ``random_problem(model, seed=seed)`` depend on besides
    the model: the layer's constants' structure and shapes (the noise sampler's static
    search steps, the Huffman paths' length), set by the seed's toy vocabulary."""
    consts = model.layer.prepare(toy_vocab(50, seed), model)
    leaves = jax.tree.leaves(consts)
    return jax.tree.structure(consts), tuple((x.shape, str(x.dtype)) for x in leaves)


def second_seed(model: ModelSpec) -> int:
    """The first seed after 0 whose problem compiles to the same programs as seed 0's (a
    different random problem, at no compile cost)."""
    # the input side's options do not change the layer's constants
    base = dataclasses.replace(model, input="skipgram", cbow_mean=True, cbow_update="paper")
    return _second_seed(base)


@functools.cache
def _second_seed(model: ModelSpec) -> int:
    want = _static_signature(model, 0)
    return next(s for s in range(1, 100) if _static_signature(model, s) == want)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


# the jitted functions of gradcheck.check (jax shares their compiled programs), and others
loss_jit = jax.jit(batch_loss, static_argnums=2)
dense_rule = jax.jit(explicit_grads, static_argnums=(2, 4))  # (..., True): pairwise
rule_jit = jax.jit(value_and_rule, static_argnums=2)
autodiff = jax.jit(jax.grad(batch_loss), static_argnums=2)
pair_losses_jit = jax.jit(pair_losses, static_argnums=2)
vmapped_rule = jax.jit(jax.vmap(explicit_grads, in_axes=(None, 0, None, None)), static_argnums=2)


@functools.cache
def _problem(model: ModelSpec, seed: int = 0) -> tuple[dict, dict, dict]:
    """``gradcheck.random_problem`` (float64; V=50, N=8, B=12, window 3), built once."""
    with jax.enable_x64(True):
        return random_problem(model, seed=seed)


def _only(batch: dict, rows: list[int]) -> dict:
    """A batch of the same shape holding examples ``rows`` (repeats allowed), the other
    rows copies of the problem's fully padded last example."""
    B = batch["center"].shape[0]
    assert not np.asarray(batch["mask"][B - 1]).any()
    idx = np.full(B, B - 1)
    idx[: len(rows)] = rows
    return {k: v[idx] for k, v in batch.items()}


@functools.partial(jax.jit, static_argnums=2)
def _pair_mask(W, batch, model):
    """w (B, H, T): which (hidden, output word) pairs are real."""
    _, hmask = model.side.hidden(W, batch, model)
    _, tmask = model.side.targets(batch)
    return hmask[:, :, None] & tmask[:, None, :]


# --------------------------------------------------------------------------------------------
# rule == autodiff

CASES = [(m, seed) for m in RULE_MODELS for seed in (0, second_seed(m))]


@pytest.mark.parametrize("model,seed", CASES, ids=[f"{label(m)}-{s}" for m, s in CASES])
def test_rule_equals_autodiff(model, seed):
    r = check(model, seed=seed)
    assert r["ok"], r
    assert r["max_rel_err"] <= 1e-9 and r["pairwise_rel_err"] <= 1e-9, r
    assert np.isfinite(r["loss"]) and r["loss"] > 0, r
    # the record names the model
    assert (r["model"], r["output"]) == (model.input, model.output)
    assert r.get("shared_negatives", False) == model.shared_negatives
    assert r.get("cbow_update", "paper") == model.cbow_update
    assert r.get("cbow_mean", True) == model.cbow_mean


@pytest.mark.parametrize("output", list(REGISTRY))
def test_cbow_word2vec_update_equals_autodiff_and_is_c_times_the_paper(output):
    paper = ModelSpec(input="cbow", output=output, negatives=4)
    w2v = dataclasses.replace(paper, cbow_update="word2vec")
    params, batch, consts = _problem(w2v)
    got = dense_rule(params, batch, w2v, consts)
    assert max_errors(got, autodiff(params, batch, w2v, consts))[1] <= 1e-9
    _, g_paper = rule_jit(params, batch, paper, consts)
    _, g_w2v = rule_jit(params, batch, w2v, consts)
    C = np.asarray(batch["mask"]).sum(1)  # (B,): context words of each example
    scale = np.repeat(C, batch["mask"].shape[1]).astype(float)  # per (example, slot) row
    np.testing.assert_array_equal(np.asarray(g_paper["W"].index), np.asarray(g_w2v["W"].index))
    np.testing.assert_allclose(
        np.asarray(g_w2v["W"].value), np.asarray(g_paper["W"].value) * scale[:, None], rtol=1e-12
    )
    for k in g_paper:  # the output layer's tables: the same gradient
        if k == "W":
            continue
        a, b = g_w2v[k], g_paper[k]
        if isinstance(b, RowGrads):
            np.testing.assert_array_equal(np.asarray(a.index), np.asarray(b.index))
            a, b = a.value, b.value
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))
    assert (C > 1).any()  # so the two updates really differ


@pytest.mark.parametrize("model", BASE, ids=label)
def test_rule_equals_autodiff_at_reference_init(model):
    """At the reference initialisation (output tables = 0) too, e.g. the very first step."""
    params, batch, consts = _problem(model)
    V, N = params["W"].shape
    params = init_params(jax.random.key(3), V, N, model.output, jnp.float64)
    assert all(not np.asarray(v).any() for k, v in params.items() if k != "W")
    want = autodiff(params, batch, model, consts)
    got = dense_rule(params, batch, model, consts)
    assert max_errors(got, want)[1] <= 1e-9


@pytest.mark.parametrize("model", BASE, ids=label)
def test_check_can_fail(model):
    """The comparison is not vacuous: a wrong rule (here: a perturbed one) is caught."""
    params, batch, consts = _problem(model)
    want = autodiff(params, batch, model, consts)
    got = dense_rule(params, batch, model, consts)
    bad = {}
    for k, v in got.items():
        v = np.array(v)
        v[0, 0] += 1e-6 * (1 + np.abs(v).max())
        bad[k] = v
    assert max_errors(bad, want)[1] > 1e-9


@pytest.mark.parametrize("model", BASE, ids=label)
def test_rule_loss_equals_batch_loss(model):
    params, batch, consts = _problem(model, second_seed(model))
    E_rule, _ = rule_jit(params, batch, model, consts)
    np.testing.assert_allclose(E_rule, loss_jit(params, batch, model, consts), rtol=1e-12)


@pytest.mark.parametrize("model", tiered(BASE), ids=label)
def test_central_finite_differences(model):
    """Fourth-order central differences, (8 (E(+h) - E(-h)) - (E(+2h) - E(-2h))) / 12h with
    h = 1e-3: truncation O(h^4) and rounding O(ulp(E) / h), both far below the tolerance
    (the two-point form's rounding error, ulp(E) / 1e-6 for E ~ 300, is not)."""
    params, batch, consts = _problem(model)
    g = dense_rule(params, batch, model, consts)
    rng = np.random.default_rng(0)
    h = 1e-3
    for name in params:
        # probe the rows the batch touches (elsewhere the gradient is exactly 0) and one other
        nz = np.flatnonzero(np.abs(np.asarray(g[name])).sum(1))
        rows = list(rng.choice(nz, 3, replace=False)) + [int(rng.integers(g[name].shape[0]))]
        for r in rows:
            c = int(rng.integers(g[name].shape[1]))

            def E(step, name=name, r=r, c=c):
                x = np.array(params[name])
                x[r, c] += step
                return float(loss_jit({**params, name: jnp.asarray(x)}, batch, model, consts))

            fd = (8 * (E(h) - E(-h)) - (E(2 * h) - E(-2 * h))) / (12 * h)
            np.testing.assert_allclose(g[name][r, c], fd, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------------------------
# padding


def _scramble_under_mask(params, batch, model, rng):
    """``batch`` with everything no real pair uses replaced: the ids of masked context
    slots, the centre of the fully padded (last) example, and every entry of the layer's
    fields that only masked pairs use (a field's scope says which pairs use an entry); the
    entries beyond a Huffman path's length too. Field entries are replaced by entries of
    the same field from another example (valid values of any layer's field)."""
    V = params["W"].shape[0]
    w = np.asarray(_pair_mask(params["W"], batch, model))  # (B, H, T)
    mask = np.asarray(batch["mask"])
    noisy = {k: np.array(v) for k, v in batch.items()}
    noisy["context"] = np.where(mask, noisy["context"], rng.integers(0, V, mask.shape))
    last = mask.shape[0] - 1
    assert not mask[last].any()  # the problem has one fully padded example
    noisy["center"][last] = (noisy["center"][last] + 7) % V
    unused = {"example": ~w.any((1, 2)), "target": ~w.any(1), "pair": ~w}
    changed = 0
    for name, scope in model.layer.scopes(model).items():
        x, u = noisy[name], unused[scope]
        under = u.reshape(u.shape + (1,) * (x.ndim - u.ndim))
        noisy[name] = np.where(under, np.roll(x, 1, axis=0), x)
        changed += int((noisy[name] != x).sum())
    if "path_mask" in noisy:  # the Huffman layer: entries past each path's length
        pm = np.asarray(batch["path_mask"])
        noisy["points"] = np.where(pm, noisy["points"], rng.integers(0, V - 1, pm.shape))
        codes = np.where(pm, noisy["codes"], rng.integers(0, 2, pm.shape))
        noisy["codes"] = codes.astype(batch["codes"].dtype)
    if model.layer.scopes(model):
        assert changed > 0  # the fields really were changed under the mask
    return jax.tree.map(jnp.asarray, noisy)


@pytest.mark.parametrize("model", VARIANTS, ids=label)
def test_padding_never_contributes(model):
    """Changing anything under the mask (ids of padded slots, a padded example, the
    layer's fields of padded pairs) changes neither E nor the gradient."""
    params, batch, consts = _problem(model)
    noisy = _scramble_under_mask(params, batch, model, np.random.default_rng(1))
    E0, g0 = loss_jit(params, batch, model, consts), dense_rule(params, batch, model, consts)
    E1, g1 = loss_jit(params, noisy, model, consts), dense_rule(params, noisy, model, consts)
    np.testing.assert_allclose(E1, E0, rtol=1e-12)
    assert max_errors(g1, g0)[0] <= 1e-12
    # and the fully padded example alone has E = 0 and zero gradient
    pad = _only(batch, [])
    assert float(loss_jit(params, pad, model, consts)) == 0.0
    dense = dense_rule(params, pad, model, consts)
    assert all(float(jnp.abs(v).max()) == 0.0 for v in dense.values())
    # ... and touches no row at all: its row entries carry the out-of-range index R
    E, g = rule_jit(params, pad, model, consts)
    assert float(E) == 0.0
    for k, v in g.items():
        if isinstance(v, RowGrads):
            assert (np.asarray(v.index) == params[k].shape[0]).all(), k
        else:
            assert float(jnp.abs(v).max()) == 0.0, k


# --------------------------------------------------------------------------------------------
# negatives


def _one_example(side, pos: int) -> dict:
    """A one-example batch (C = 2) whose real pairs all have output word ``pos``."""
    for center, context, mask in [(5, [pos, 9], [True, False]), (pos, [5, 9], [True, True])]:
        batch = {
            "center": np.array([center], np.int32),
            "context": np.array([context], np.int32),
            "mask": np.array([mask]),
        }
        targets, tmask = (np.asarray(x) for x in side.targets(batch))
        if (targets[tmask] == pos).all():
            return batch
    raise AssertionError("no one-example batch with output word pos")


@pytest.mark.parametrize("model", SAMPLING, ids=label)
def test_negative_equal_to_positive_is_skipped(model):
    """E with negatives (w_O, a, b) equals E with negatives (a, b) (the rule's skip is
    checked against autodiff: gradcheck plants such negatives)."""
    params, _, consts = _problem(model)
    pos, a, b = 3, 11, 17
    batch = _one_example(model.side, pos)
    H, T = model.side.layout(2)
    shape = (1,) if model.shared_negatives else (1, H, T)
    with_hit = {**batch, "negatives": np.broadcast_to(np.int32([pos, a, b]), shape + (3,))}
    without = {**batch, "negatives": np.broadcast_to(np.int32([a, b]), shape + (2,))}
    E = loss_jit(params, with_hit, model, consts)
    assert float(E) > 0
    np.testing.assert_allclose(E, loss_jit(params, without, model, consts), rtol=1e-12)


@pytest.mark.parametrize("model", [m for m in SAMPLING if m.shared_negatives], ids=label)
def test_shared_negatives_are_the_per_pair_set_repeated(model):
    """Negatives (B, K) shared by the H x T pairs of an example give exactly the E and
    gradient of per-pair negatives (B, H, T, K) holding the same set in every pair."""
    params, batch, consts = _problem(model)
    per_pair_model = dataclasses.replace(model, shared_negatives=False)
    B, C = batch["context"].shape
    H, T = model.side.layout(C)
    K = batch["negatives"].shape[1]
    neg = jnp.broadcast_to(batch["negatives"][:, None, None, :], (B, H, T, K))
    per_pair = {**batch, "negatives": neg}
    E_s, g_s = rule_jit(params, batch, model, consts)
    E_p, g_p = rule_jit(params, per_pair, per_pair_model, consts)
    np.testing.assert_allclose(E_s, E_p, rtol=1e-12)
    np.testing.assert_allclose(loss_jit(params, batch, model, consts), E_p, rtol=1e-12)
    np.testing.assert_allclose(loss_jit(params, per_pair, per_pair_model, consts), E_p, rtol=1e-12)
    for k in params:
        np.testing.assert_allclose(
            densify(g_s[k], params[k]), densify(g_p[k], params[k]), rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize("model", BASE, ids=label)
def test_repeated_word_updates_add(model):
    """Two identical examples give exactly twice the gradient of one (scatter-adds sum)."""
    params, batch, consts = _problem(model)
    g1 = dense_rule(params, _only(batch, [0]), model, consts)
    g2 = dense_rule(params, _only(batch, [0, 0]), model, consts)
    assert float(jnp.abs(g1["W"]).max()) > 0
    for k in g1:
        np.testing.assert_allclose(g2[k], 2 * g1[k], rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# normalisation


def test_softmax_probabilities_sum_to_one():
    """CBOW full softmax: sum over every target w_O of p(w_O | h) = exp(-E) is 1."""
    model = ModelSpec(input="cbow", output="softmax")
    params, batch, consts = _problem(model)
    V = params["W"].shape[0]
    exs = {k: jnp.broadcast_to(v[0], (V, *v.shape[1:])) for k, v in batch.items()}
    exs["center"] = jnp.arange(V)
    E, w = pair_losses_jit(params, exs, model, consts)
    assert bool(w.all())
    np.testing.assert_allclose(jnp.exp(-E[:, 0, 0]).sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("V", [2, 3, 50, 257])
def test_hierarchical_probabilities_sum_to_one(V):
    """sum over all words w of p(w | h) = prod_j s([[.]] v'_{n(w,j)} . h) equals 1."""
    rng = np.random.default_rng(V)
    counts = np.sort(rng.zipf(1.3, V))[::-1]
    model = ModelSpec(input="cbow", output="hierarchical")
    consts = model.layer.prepare(Vocab(tuple(f"w{i}" for i in range(V)), counts), model)
    np.testing.assert_array_equal(consts["tree"].points, build_huffman(counts).points)
    N = 6
    params = {
        "W": jnp.asarray(rng.standard_normal((V, N))),
        "W_out": jnp.asarray(rng.standard_normal((V - 1, N))),
    }
    exs = {
        "center": jnp.arange(V),
        "context": jnp.zeros((V, 2), jnp.int32).at[:, 0].set(int(rng.integers(V))),
        "mask": jnp.array([[True, False]] * V),
    }
    exs = complete(jax.random.PRNGKey(0), exs, consts, model)
    E, w = pair_losses_jit(params, exs, model, consts)
    assert bool(w.all())
    np.testing.assert_allclose(jnp.exp(-E[:, 0, 0]).sum(), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# jit, vmap and the form of the gradients


@pytest.mark.parametrize("model", tiered(BASE, keep=lambda m: m.output == "negative"), ids=label)
def test_vmap_and_jit(model):
    params, batch, consts = _problem(model)
    B = batch["center"].shape[0]
    # each example alone (the only real one of its batch) against the pairs' losses, which
    # vmap the layer's one-pair loss over the pairs and the batch
    loop = np.array([float(loss_jit(params, _only(batch, [i]), model, consts)) for i in range(B)])
    assert (loop[:-1] > 0).all() and loop[-1] == 0.0
    E, w = pair_losses_jit(params, batch, model, consts)
    np.testing.assert_allclose((E * w).sum((1, 2)), loop, rtol=1e-12)
    np.testing.assert_allclose(loss_jit(params, batch, model, consts), loop.sum(), rtol=1e-12)
    jr = dense_rule(params, batch, model, consts)  # jitted and not
    assert max_errors(jr, explicit_grads(params, batch, model, consts))[1] <= 1e-12
    # rules also batch with vmap over independent batches (e.g. per-device shards)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), batch)
    vr = vmapped_rule(params, stacked, model, consts)
    assert max_errors({k: v[1] for k, v in vr.items()}, jr)[1] <= 1e-12
    assert max_errors({k: v[0] for k, v in vr.items()}, jr)[1] <= 1e-12


@pytest.mark.parametrize("model", VARIANTS, ids=label)
def test_rule_is_row_sparse(model):
    """W's gradient, and every output table's except where the layer scores all V rows
    (no fields: the full softmax), come as rows: never V x N per example, no more entries
    than the batch names rows, and no row the batch does not name."""
    params, batch, consts = _problem(model)
    _, g = rule_jit(params, batch, model, consts)
    B, C = batch["context"].shape
    H, T = model.side.layout(C)
    V = params["W"].shape[0]
    assert isinstance(g["W"], RowGrads)
    assert g["W"].value.shape[0] <= B * C
    n_W = {"skipgram": B, "skipgram_context": B * C, "cbow": B * C}
    if model.input in n_W:  # one entry per example (its centre) or per context slot
        assert g["W"].value.shape[0] == n_W[model.input]
    words = set(np.asarray(batch["center"]).tolist())
    words |= set(np.asarray(batch["context"]).ravel().tolist())
    assert set(np.asarray(g["W"].index).tolist()) <= words | {V}
    scopes = model.layer.scopes(model)
    targets = np.asarray(model.side.targets(batch)[0])
    named = set(targets.ravel().tolist())  # rows the batch names: output words, fields
    int_fields = [np.asarray(batch[f]) for f in scopes if np.asarray(batch[f]).dtype.kind in "iu"]
    for x in int_fields:
        named |= set(x.ravel().tolist())
    for k in model.layer.tables(V):
        if not scopes:  # scores every row: one dense product over the batch
            assert not isinstance(g[k], RowGrads) and g[k].shape == params[k].shape
            continue
        assert isinstance(g[k], RowGrads), k
        n = g[k].value.shape[0]
        assert n <= B * H * T + sum(x.size for x in int_fields), k
        if "negatives" in scopes:  # a group's output words and negatives (candidates)
            K = model.negatives
            assert n == (B * (T + K) if model.shared_negatives else B * H * T * (1 + K)), k
        if "points" in scopes:  # each output word's path, shared by the H hidden vectors
            assert n == B * T * batch["points"].shape[-1], k
        R = params[k].shape[0]
        assert set(np.asarray(g[k].index).tolist()) <= named | {R}, k
    np.testing.assert_allclose(
        densify(g["W"], params["W"]), dense_rule(params, batch, model, consts)["W"]
    )


@pytest.mark.parametrize("output", list(REGISTRY))
def test_init_params(output):
    V, N = 40, 10
    p = init_params(jax.random.key(0), V, N, output)
    rows = table_rows(V, output)
    assert set(p) == set(rows) == {"W", *REGISTRY[output].tables(V)}
    for k, r in rows.items():
        assert p[k].shape == (r, N), k
    assert rows["W"] == V
    expected = {"hierarchical": V - 1, "softmax": V, "negative": V}
    if output in expected:
        assert rows["W_out"] == expected[output]
    assert float(jnp.abs(p["W"]).max()) <= 0.5 / N
    assert float(jnp.abs(p["W"]).max()) > 0.4 / N  # really spread over the range
    for k in rows:
        if k != "W":
            assert float(jnp.abs(p[k]).max()) == 0.0, k
    q = init_params(jax.random.key(0), V, N, output)
    np.testing.assert_array_equal(p["W"], q["W"])  # deterministic in the key


# --------------------------------------------------------------------------------------------
# Skip-gram in word2vec.c's orientation: each (centre, context) pair a one-word CBOW example.


@pytest.mark.parametrize("model", [m for m in VARIANTS if m.input == "skipgram_context"], ids=label)
def test_context_input_is_each_pair_as_a_one_word_cbow_example(model):
    """skipgram_context: E is the sum over the real (centre, context) pairs of the CBOW
    loss with that one context word predicting the centre (word2vec.c's skip-gram), and
    so is the gradient. The CBOW examples go in batches of the problem's shape: one real
    slot each, padding rows after the last pair."""
    params, batch, consts = _problem(model)
    cbow = dataclasses.replace(model, input="cbow")
    B, C = batch["context"].shape
    b, c = np.nonzero(np.asarray(batch["mask"]))  # the real pairs
    P = b.size
    n = -(-P // B) * B
    real = np.arange(n) < P
    b, c = np.resize(b, n), np.resize(c, n)
    ex = {
        "center": np.asarray(batch["center"])[b],
        "context": np.zeros((n, C), batch["context"].dtype),
        "mask": np.zeros((n, C), bool),
    }
    ex["context"][:, 0] = np.asarray(batch["context"])[b, c]
    ex["mask"][:, 0] = real
    for name, scope in model.layer.scopes(model).items():
        x = np.asarray(batch[name])  # pair: (B, C, 1, ...) -> (P, 1, 1, ...); else (P, ...)
        ex[name] = x[b, c][:, None] if scope == "pair" else x[b]
    want_E, want_g = 0.0, None
    for i in range(0, n, B):
        part = {k: jnp.asarray(v[i : i + B]) for k, v in ex.items()}
        want_E += float(loss_jit(params, part, cbow, consts))
        g = dense_rule(params, part, cbow, consts)
        want_g = g if want_g is None else {k: want_g[k] + g[k] for k in g}
    assert want_E > 0
    np.testing.assert_allclose(loss_jit(params, batch, model, consts), want_E, rtol=1e-12)
    assert max_errors(dense_rule(params, batch, model, consts), want_g)[1] <= 1e-12


# --------------------------------------------------------------------------------------------
# the command (its checks are those above: the compiled programs are shared)


def test_gradcheck_command(capsys):
    assert main(["gradcheck", "--model", "cbow", "--output", "negative", "--seed", "3"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1
    assert lines[0]["model"] == "cbow" and lines[0]["output"] == "negative"
    assert lines[0]["ok"] and lines[0]["max_rel_err"] <= 1e-9
    assert lines[0]["pairwise_rel_err"] <= 1e-9


def test_gradcheck_command_variants(capsys):
    assert main(["gradcheck"]) == 0  # the default: the paper's two sides x every layer
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [(r["model"], r["output"]) for r in lines] == [
        (i, o) for i in ("skipgram", "cbow") for o in REGISTRY
    ]
    assert all(r["ok"] for r in lines)
    assert not any("shared_negatives" in r or "cbow_update" in r for r in lines)
    argv = ["gradcheck", "--output", "negative", "--all-variants"]
    argv += ["--model", "skipgram", "--model", "skipgram_context", "--model", "cbow"]
    assert main(argv) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    keys = {
        (r["model"], r.get("shared_negatives", False), r.get("cbow_update", "paper")) for r in lines
    }
    assert len(lines) == len(keys) == 6
    assert keys == {
        ("skipgram", False, "paper"),
        ("skipgram", True, "paper"),
        ("skipgram_context", False, "paper"),
        ("skipgram_context", True, "paper"),
        ("cbow", False, "paper"),
        ("cbow", False, "word2vec"),
    }
    assert all(r["ok"] and r["output"] == "negative" for r in lines)
