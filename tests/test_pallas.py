"""The Pallas step (sgjax.kernels.pallas_step, interpret mode) against the XLA step: one SGD
step from the same state and batch, for each input mode (skip-gram, CBOW mean/paper/sum)
and logistic layer (negative sampling, NCE, hierarchical softmax), with and without row
damping; colliding rows, padded batches, a width N that is not a power of two; and the
kernels' lowering to Triton IR (cross-platform, no GPU needed)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# the fused CPU kernel's harness: its config of a small run, its state copy (importing it
# does not need the C++ kernel: its tests are skipped without it, its helpers are not)
from test_kernels import _cfg, _copy  # tests/ is on sys.path (rootdir-less modules)

from sgjax import kernels
from sgjax.experiment import _batches, build
from sgjax.kernels.pallas_step import pallas_logistic_step
from sgjax.loop import group_batches
from sgjax.train import _draw_fields, _one_step

ARCH = {
    0: ["model.architecture=skipgram"],
    1: ["model.architecture=cbow"],
    2: ["model.architecture=cbow", "model.cbow_update=paper"],
    3: ["model.architecture=cbow", "model.cbow_mean=false"],
}
LAYERS = {
    "negative": ["model.output=negative"],
    "nce": ["model.output=nce"],
    "hierarchical": ["model.output=hierarchical"],
}
O0 = {"xla_backend_optimization_level": 0}
#: every mode with every layer, each mode and each layer with and without damping
CASES = [(m, layer, (m + i) % 2 == 1) for m in ARCH for i, layer in enumerate(LAYERS)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from test_train import write_toy_corpus

    return write_toy_corpus(tmp_path_factory.mktemp("pcorpus"))


def _setup(corpus, mode, layer, damp, *sets, dup=False):
    """The run (its state's W_out random: word2vec's zeros would leave W's EH zero), a
    step's batch (its layer's fields drawn as train_step draws them) and the specs of the
    XLA step and the fused step of ``mode``. ``dup``: every word id mod 3, so rows collide
    across the batch (W_out's: also with the negatives)."""
    # the kernels damp skip-gram's input rows, not CBOW's (train.row_damping_inputs)
    cfg = _cfg(corpus, *ARCH[mode], *LAYERS[layer], f"train.row_damping={damp}",
               f"train.row_damping_inputs={mode == 0}", "train.kernel=xla", *sets)  # fmt: skip
    run = build(cfg)
    params = run.state.params
    W_out = jax.random.normal(jax.random.key(1), params["W_out"].shape) * 0.3
    run = dataclasses.replace(run, state=run.state.replace(params={**params, "W_out": W_out}))
    xla = run.spec
    assert kernels.mode_for(xla, jnp.float32, "cpu") == mode
    group = next(group_batches(_batches(cfg, run.vocab, run.encoded, 0), 1))
    if dup:
        group = {**group, "center": group["center"] % 3, "context": group["context"] % 3}
    if xla.model.layer.draws:
        group = {**group, **_draw_fields(run.state, group, run.tables, xla)}
    batch = jax.tree.map(lambda x: x[0], group)
    return run, batch, xla, dataclasses.replace(xla, kernel=mode, fused="pallas")


def _steps(monkeypatch, run, batch, xla, fused, wrong=None, **kw):
    """One step from the run's state by the fused step of ``sgjax.kernels.steps.fused_step`` (its
    optimizer probe and scales) with the Pallas kernel, and by the XLA step: one program
    (one compilation, at XLA's optimization level 0: half the time). ``wrong``: factors of
    the kernel's scales (a test that a wrong step is caught)."""

    def kernel(*args, **kwargs):
        if wrong is not None:
            args = (*args[:7], args[7] * jnp.asarray(wrong, jnp.float32), *args[8:])
        return pallas_logistic_step(*args, **kwargs, interpret=True, **kw)

    monkeypatch.setitem(kernels.FUSED, "pallas", kernel)  # what fused_step calls

    def both(a, b, ex):  # a fresh function: no trace cached under another kernel is reused
        return _one_step(a, ex, run.tables, fused), _one_step(b, ex, run.tables, xla)

    return jax.jit(both, compiler_options=O0)(_copy(run.state), _copy(run.state), batch)


def _check(steps, before, rtol=2e-5, atol=1e-6):
    (sa, (Ea, ta)), (sb, (Eb, tb)) = steps
    for k in ("W", "W_out"):
        x, y = np.asarray(sa.params[k]), np.asarray(sb.params[k])
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=k)
        moved = np.abs(y - np.asarray(before[k])).max()
        assert moved > 100 * atol, f"{k} moved by {moved}: a step that changes nothing"
    np.testing.assert_allclose(float(Ea), float(Eb), rtol=rtol)
    assert float(Eb) > 0 and float(ta) == float(tb) > 0


@pytest.mark.parametrize("mode, layer, damp", CASES, ids=lambda x: str(x))
def test_pallas_step_equals_xla_step(corpus, monkeypatch, mode, layer, damp):
    run, batch, xla, fused = _setup(corpus, mode, layer, damp)
    _check(_steps(monkeypatch, run, batch, xla, fused), run.state.params)


@pytest.mark.parametrize("mode", [0, 1])
def test_rare_rows_at_their_own_rate(corpus, monkeypatch, mode):
    """optimizer.table_scales_min_count: W's rows of the rarer half of the words take 1 /
    W's factor (sgjax.rules.scale_rare_rows), in the scatter as in the XLA step."""
    run, *_ = _setup(corpus, mode, "hierarchical", False)
    m = int(run.vocab.counts[len(run.vocab) // 2])
    sets = ("optimizer.table_scales.W=3", f"optimizer.table_scales_min_count={m}")
    run, batch, xla, fused = _setup(corpus, mode, "hierarchical", False, *sets)
    assert 0 < xla.rare_from < len(run.vocab) and xla.rare_scale == pytest.approx(1 / 3)
    rare = np.asarray(batch["context"])[np.asarray(batch["mask"])] >= xla.rare_from
    assert rare.any() and not rare.all()
    _check(_steps(monkeypatch, run, batch, xla, fused), run.state.params)


@pytest.mark.parametrize("mode", [0, 1])
def test_colliding_rows_and_padded_blocks(corpus, monkeypatch, mode):
    """Word ids mod 3: each row of W and W_out gets many of the batch's entries, added
    by one atomic_add each; block 8 pads the 30 examples to 4 programs of 8."""
    run, batch, xla, fused = _setup(corpus, mode, "negative", True, dup=True)
    idx = np.asarray(batch["context"])[np.asarray(batch["mask"])]
    assert np.bincount(idx).max() > 20  # the scatter's adds collide
    _check(_steps(monkeypatch, run, batch, xla, fused, block=8), run.state.params)


def test_width_not_a_power_of_two(corpus, monkeypatch):
    """N = 12 (padded to 16 in the rule kernel's blocks), B = 30 padded to 32 with block 16."""
    run, batch, xla, fused = _setup(corpus, 0, "nce", False, "model.dim=12")
    _check(_steps(monkeypatch, run, batch, xla, fused, block=16), run.state.params)


def test_a_wrong_step_is_caught(corpus, monkeypatch):
    """W_out's scale 0.1 % off: the comparison above must fail (so it can)."""
    run, batch, xla, fused = _setup(corpus, 0, "negative", False)
    steps = _steps(monkeypatch, run, batch, xla, fused, wrong=[1.0, 1.001, 1.0])
    with pytest.raises(AssertionError, match="W_out"):
        _check(steps, run.state.params)


@pytest.mark.parametrize("mode, damp", [(0, True), (1, True), (2, False)])
def test_matches_the_cpu_kernel_on_random_tables(mode, damp):
    """Arbitrary tables, out-of-range and masked entries, words repeated in a context,
    C, S and N not powers of two: straight against logistic_step.cc where it is built."""
    if not kernels.available():
        pytest.skip(f"the fused CPU kernel is not built here: {kernels.why()}")
    rng = np.random.default_rng(0)
    V, R, N, B, C, S = 20, 19, 12, 30, 6, 5
    W = jnp.asarray(rng.normal(size=(V, N)) * 0.5, jnp.float32)
    W_out = jnp.asarray(rng.normal(size=(R, N)) * 0.5, jnp.float32)
    ctx = rng.integers(0, V + 2, (B, C))  # V, V + 1: out of range (dropped)
    batch = {"context": jnp.asarray(ctx, jnp.int32), "mask": jnp.asarray(rng.random((B, C)) < 0.8)}
    rows = jnp.asarray(rng.integers(0, R + 1, (B, S)), jnp.int32)
    t = jnp.asarray(rng.random((B, S)) < 0.3, jnp.float32)
    used = jnp.asarray(rng.random((B, S)) < 0.9, jnp.int32)
    offset = jnp.asarray(rng.normal(size=(B, S)), jnp.float32)
    scales = jnp.asarray([-0.1, -0.2, 0.1], jnp.float32)
    args = (batch, rows, t, used, offset, scales, mode, damp)
    step = functools.partial(pallas_logistic_step, interpret=True, block=16)
    a = jax.jit(step, static_argnums=(8, 9), compiler_options=O0)(W, W_out, *args)
    b = kernels.logistic_step(W.copy(), W_out.copy(), *args)
    for x, y, k in zip(a, b, ("W", "W_out", "E"), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6, err_msg=k)
    assert np.abs(np.asarray(a[0] - W)).max() > 1e-2  # it moved


@pytest.mark.parametrize("mode, damp", [(0, True), (1, False), (2, True)])
def test_lowers_to_triton(mode, damp):
    """The GPU path (interpret=False: masked columns, the GPU's default block) lowers to
    two Triton calls: every block a power of two, every op one that Pallas' Triton lowering
    has. (Lowering only: compiling for and running on a GPU are not checked here.)"""
    V, R, N, B, C, S = 20, 19, 12, 30, 6, 5
    sd = jax.ShapeDtypeStruct
    i32, f32 = jnp.int32, jnp.float32
    args = (
        sd((V, N), f32),
        sd((R, N), f32),
        {"context": sd((B, C), i32), "mask": sd((B, C), jnp.bool_)},
        *(sd((B, S), d) for d in (i32, f32, i32, f32)),
        sd((3,), f32),
    )
    f = functools.partial(pallas_logistic_step, mode=mode, damp=damp, interpret=False)
    text = jax.jit(f).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    assert text.count("__gpu$xla.gpu.triton") == 2


def test_train_kernel_pallas_runs_the_step(corpus):
    """``train.kernel=pallas`` selects it (sgjax.kernels.FUSED); a run's calls equal the
    XLA step's to float32 rounding; a step it cannot compute is a config-time error."""
    from sgjax.train import train_step_jit

    params = {}
    for kernel in ("pallas", "xla"):
        run = build(_cfg(corpus, f"train.kernel={kernel}"))
        assert (run.spec.fused, run.spec.kernel >= 0) == (
            ("pallas", True) if kernel == "pallas" else ("cpu", False)
        )
        state = run.state
        for _, call in zip(range(2), run.calls(0), strict=False):
            state, _ = train_step_jit(state, call, run.tables, run.spec)
        params[kernel] = jax.device_get(state.params)
    for k in params["xla"]:
        np.testing.assert_allclose(params["pallas"][k], params["xla"][k], rtol=2e-5, atol=1e-6)
    with pytest.raises(ValueError, match="train.kernel=pallas"):
        build(_cfg(corpus, "train.kernel=pallas", "model.output=softmax"))
