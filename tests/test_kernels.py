"""The fused CPU kernel (sgjax.kernels) against the XLA step: the same update, call by call,
for every model it computes (negative sampling, NCE, hierarchical softmax; skip-gram and
CBOW; row damping); where it applies; train.kernel's choices."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

from sgjax import kernels
from sgjax.config import ConfigError, load_config
from sgjax.experiment import _batches, build
from sgjax.loop import group_batches
from sgjax.outputs.sampling import pair_terms
from sgjax.train import train_step_jit

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "cpu" or not kernels.available(),
    reason=f"the fused CPU kernel is not built here: {kernels.why()}",
)

#: the models the kernel computes: (overrides, its mode)
MODELS = [
    (["model.architecture=skipgram"], 0),  # the default: context orientation, shared
    (["model.architecture=skipgram", "train.window_buckets=false"], 0),
    (["model.architecture=cbow"], 1),  # word2vec.c's update, mean
    (["model.architecture=cbow", "model.cbow_update=paper"], 2),
    (["model.architecture=cbow", "model.cbow_mean=false"], 3),
    (["model.architecture=cbow", "model.cbow_mean=false", "model.cbow_update=paper"], 3),
    (["model.output=hierarchical"], 0),  # row damping: the layer's default
    (["model.output=hierarchical", "train.row_damping=false"], 0),
    (["model.architecture=cbow", "model.output=hierarchical"], 1),  # W 3x: a default
    (["model.architecture=cbow", "optimizer.table_scales={W: 0.5, W_out: 3}"], 1),
    (["optimizer.table_scales.W_out=2"], 0),
    (["model.architecture=cbow", "model.output=hierarchical", "model.cbow_update=paper"], 2),
    (["model.output=nce"], 0),  # the scores shifted by -log(K P_n(w))
    (["model.architecture=cbow", "model.output=nce"], 1),
    (["train.row_damping=true"], 0),
    (["model.architecture=cbow", "train.row_damping=true", "train.row_damping_inputs=false"], 1),
    # rows in two blocks (S = 9 > 6), a width in no vector's multiple (a partial chunk)
    (["model.dim=37", "model.negatives=8"], 0),
    (["model.architecture=cbow", "model.dim=37", "model.negatives=8"], 1),
    (["model.output=hierarchical", "model.dim=37"], 0),
]


def _cfg(corpus, *sets):
    base = [
        f"data.corpus={corpus}",
        "data.min_count=1",
        "data.sample=0",
        "model.dim=16",
        "model.negatives=4",
        "train.batch_size=30",
        "train.steps_per_call=4",
        "eval.analogies=false",
        "eval.similarity=false",
    ]
    return load_config(None, [*base, *sets])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from test_train import write_toy_corpus  # tests/ is on sys.path (rootdir-less modules)

    return write_toy_corpus(tmp_path_factory.mktemp("kcorpus"))


def _copy(state):
    return jax.tree.map(lambda x: x.copy(), state)


@pytest.mark.parametrize(
    "sets, mode", MODELS, ids=lambda x: "-".join(x) if isinstance(x, list) else str(x)
)
def test_kernel_step_equals_xla_step(corpus, sets, mode):
    cfg = _cfg(corpus, *sets)
    run = build(cfg)
    assert run.spec.kernel == mode
    xla = dataclasses.replace(run.spec, kernel=-1)
    groups = group_batches(_batches(cfg, run.vocab, run.encoded, 0), cfg.train.steps_per_call)
    a, b = _copy(run.state), _copy(run.state)
    for _ in range(3):  # three calls: the parameters move away from their start
        group = next(groups)
        a, ma = train_step_jit(a, group, run.tables, run.spec)
        b, mb = train_step_jit(b, group, run.tables, xla)
        for k in ("W", "W_out"):
            np.testing.assert_allclose(a.params[k], b.params[k], rtol=2e-5, atol=2e-7)
        assert float(ma["terms"]) == float(mb["terms"]) > 0
        np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=2e-5)
        assert float(ma["lr"]) == float(mb["lr"]) and bool(ma["finite"])
        assert int(a.step) == int(b.step) and int(a.words) == int(b.words)
        for x, y in zip(jax.tree.leaves(a.opt_state), jax.tree.leaves(b.opt_state), strict=True):
            np.testing.assert_array_equal(x, y)
    assert np.abs(np.asarray(a.params["W_out"])).max() > 0  # it trained


def test_kernel_is_deterministic(corpus):
    cfg = _cfg(corpus, "model.architecture=skipgram")
    run = build(cfg)
    group = next(group_batches(_batches(cfg, run.vocab, run.encoded, 0), 4))
    one, _ = train_step_jit(_copy(run.state), group, run.tables, run.spec)
    two, _ = train_step_jit(_copy(run.state), group, run.tables, run.spec)
    for k in ("W", "W_out"):
        np.testing.assert_array_equal(one.params[k], two.params[k])


def _random_step(rng, mode, *, V=300, R=299, N=37, B=1500, C=6, S=7):
    """Inputs of one kernel call with colliding rows (a small table, Zipf-like rows), padded
    slots, unused and out-of-range entries; N not a multiple of any vector width."""
    zipf = lambda *shape, n: np.minimum(rng.zipf(1.3, shape) - 1, n - 1).astype(np.int32)  # noqa: E731
    batch = {"context": zipf(B, C, n=V), "mask": (rng.random((B, C)) < 0.8).astype(np.int32)}
    rows = zipf(B, S, n=R)
    rows[rng.random((B, S)) < 0.03] = R + 5  # out of range: dropped, as XLA's scatter drops it
    t = (rng.random((B, S)) < 0.3).astype(np.float32)
    used = (rng.random((B, S)) < 0.9).astype(np.int32)
    offset = rng.normal(0, 0.5, (B, S)).astype(np.float32)
    W = rng.normal(0, 0.3, (V, N)).astype(np.float32)
    W_out = rng.normal(0, 0.3, (R, N)).astype(np.float32)
    return W, W_out, batch, rows, t, used, offset, np.array([-0.05, -0.05, 0.05], np.float32)


@pytest.mark.parametrize("damp", [False, True])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_kernel_result_does_not_depend_on_its_parts(mode, damp):
    """Phase 1 splits the examples and phase 2 the rows (one table per core) among the
    parts: every part count gives the same bits (the rows' updates in example order)."""
    args = _random_step(np.random.default_rng(mode), mode)
    step = jax.jit(kernels.logistic_step, static_argnames=("mode", "damp", "parts"))
    outs = [step(*args, mode=mode, damp=damp, parts=p) for p in (1, 2, 3, 4, 7)]
    W0 = args[0]
    assert np.abs(np.asarray(outs[0][0]) - W0).max() > 1e-4  # it updated W ...
    assert np.abs(np.asarray(outs[0][1]) - args[1]).max() > 1e-4  # ... and W_out
    for out in outs[1:]:
        for x, y in zip(outs[0], out, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


#: (overrides, kernel chosen by auto): -1 = the XLA step
WHERE = [
    (["model.output=softmax"], -1),
    (["model.output=sampled_softmax"], -1),
    (["model.skipgram_input=center"], -1),  # the paper's orientation
    (["model.skipgram_input=center", "model.output=hierarchical"], -1),
    (["model.shared_negatives=false"], -1),  # per-pair negatives
    (["optimizer.name=adam"], -1),  # not plain SGD
    (["train.gradients=autodiff"], -1),
    (["train.row_update_cap=4"], -1),
    (["train.dtype=bfloat16"], -1),
    (["train.kernel=xla"], -1),
    (["model.architecture=cbow", "train.kernel=xla"], -1),
    (["optimizer.schedule=constant"], 0),
    # damped: the kernel damps skip-gram's input rows and leaves CBOW's undamped
    (["model.architecture=cbow", "train.row_damping=true"], -1),
    (["train.row_damping=true", "train.row_damping_inputs=false"], -1),
    (["optimizer.name=sgd", "optimizer.kwargs={momentum: 0.9}"], -1),
]


@pytest.mark.parametrize(
    "sets, kernel", WHERE, ids=lambda x: "-".join(x) if isinstance(x, list) else str(x)
)
def test_where_the_kernel_runs(corpus, sets, kernel):
    assert build(_cfg(corpus, *sets)).spec.kernel == kernel


def test_kernel_cpu_refuses_a_step_it_cannot_run(corpus):
    with pytest.raises(ValueError, match="train.kernel=cpu"):
        build(_cfg(corpus, "model.output=softmax", "train.kernel=cpu"))
    assert build(_cfg(corpus, "train.kernel=cpu")).spec.kernel == 0
    with pytest.raises(ConfigError, match="train.kernel"):
        _cfg(corpus, "train.kernel=gpu")


def test_kernel_phases_script(tmp_path):
    """scripts/kernel_phases.py (BENCHMARKS.md's phase figures) builds its driver against
    the kernel's source and times both phases; every thread count gives the same tables."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "kernel_phases.py"
    cmd = [sys.executable, str(script), "--examples", "6000", "--threads", "1", "2", "3"]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    runs = out["runs"]
    assert [(r["mode"], r["threads"]) for r in runs] == [(m, t) for m in (0, 1) for t in (1, 2, 3)]
    for mode in (0, 1):
        sums = {r["checksum"] for r in runs if r["mode"] == mode}
        assert len(sums) == 1 and sums != {0.0}
    assert all(r["rule_us"] > 0 and r["update_us"] > 0 for r in runs)


def _damping(x):
    return np.where(x > 1e-6, -np.expm1(-x) / np.where(x > 0, x, 1), 1 - 0.5 * x)


def _reference_step(W, Wo, ctx, msk, rows, t, used, off, sc, mode, damp, rare=(0, 1.0)):
    """logistic_step.cc's update in float64, example by example: the rows' gradients and
    (damped) curvatures summed, then applied, W's rows from ``rare[0]`` on times ``rare[1]``
    (an independent reading of the kernel's comment; out-of-range or unused entries
    dropped)."""
    W, Wo = W.astype(np.float64), Wo.astype(np.float64)
    (V, N), R = W.shape, Wo.shape[0]
    gW, gWo, xW, xWo, E = np.zeros_like(W), np.zeros_like(Wo), np.zeros(V), np.zeros(R), 0.0
    for b in range(ctx.shape[0]):
        real = [j for j in range(ctx.shape[1]) if msk[b, j] and 0 <= ctx[b, j] < V]
        use = [s for s in range(rows.shape[1]) if used[b, s] and 0 <= rows[b, s] < R]
        if mode == 0:
            hidden = [(W[ctx[b, j]], [j]) for j in real]
        elif real:
            h = sum(W[ctx[b, j]] for j in real)
            hidden = [(h if mode == 3 else h / len(real), real)]
        else:
            hidden = []
        for h, js in hidden:
            EH, kh = np.zeros(N), 0.0
            for s in use:
                v, u = Wo[rows[b, s]], h @ Wo[rows[b, s]] + off[b, s]
                E += np.logaddexp(0, -(2 * t[b, s] - 1) * u)
                sig = 1 / (1 + np.exp(-u))
                EH += (sig - t[b, s]) * v
                gWo[rows[b, s]] += (sig - t[b, s]) * h
                xWo[rows[b, s]] += sc[2] * sig * (1 - sig) * (h @ h)
                kh += sig * (1 - sig) * (v @ v)
            for j in js:
                gW[ctx[b, j]] += EH / len(real) if mode == 2 else EH
                xW[ctx[b, j]] += sc[2] * kh if mode == 0 else 0.0
    fW = _damping(xW) if damp and mode == 0 else np.ones(V)
    fW = fW * np.where(np.arange(V) >= rare[0], rare[1], 1.0)
    fWo = _damping(xWo) if damp else np.ones(R)
    return W + sc[0] * fW[:, None] * gW, Wo + sc[1] * fWo[:, None] * gWo, E


@pytest.mark.parametrize("damp", [False, True])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize(
    "B, C, S, N, rare",
    [
        (1, 1, 1, 1, (0, 1.0)),
        (7, 5, 7, 15, (0, 1.0)),
        (7, 5, 7, 15, (20, 0.3)),  # W's rows 20.. at 0.3 x its rate (scale_rare_rows)
        (20, 6, 64, 37, (0, 1.0)),
        (11, 13, 5, 100, (0, 1.0)),
        (11, 13, 5, 100, (1, 2.5)),
    ],
)
def test_kernel_equals_a_float64_reference(B, C, S, N, rare, mode, damp):
    """Adversarial inputs: indices past either end of the tables, an example without real
    contexts, one without used rows, one whose used rows are all out of range, widths
    below, at and past a vector; W's rare rows at another rate; a second call checks the
    damping scratch was reset."""
    rng = np.random.default_rng(B * 1000 + N)
    V, R = 40, 30
    ctx = rng.integers(0, V, (B, C)).astype(np.int32)
    msk = (rng.random((B, C)) < 0.7).astype(np.int32)
    rows = rng.integers(0, R, (B, S)).astype(np.int32)
    ctx[rng.random((B, C)) < 0.05], ctx[rng.random((B, C)) < 0.05] = V + 3, -2
    rows[rng.random((B, S)) < 0.05], rows[rng.random((B, S)) < 0.05] = R + 7, -1
    used = (rng.random((B, S)) < 0.85).astype(np.int32)
    if B > 2:
        msk[0], used[1], rows[2], used[2] = 0, 0, R + 1, 1
    t = (rng.random((B, S)) < 0.3).astype(np.float32)
    off = rng.normal(0, 0.5, (B, S)).astype(np.float32)
    W = rng.normal(0, 0.3, (V, N)).astype(np.float32)
    Wo = rng.normal(0, 0.3, (R, N)).astype(np.float32)
    sc = np.array([-0.05, -0.05, 0.5 if damp else 0.05], np.float32)
    names = ("mode", "damp", "parts", "rare_from", "rare_scale")
    step = jax.jit(kernels.logistic_step, static_argnames=names)
    batch = {"context": ctx, "mask": msk}
    kw = dict(mode=mode, damp=damp, parts=3, rare_from=rare[0], rare_scale=rare[1])
    for _ in range(2):  # the second call starts from the first's tables
        out = [np.asarray(x) for x in step(W, Wo, batch, rows, t, used, off, sc, **kw)]
        rW, rWo, rE = _reference_step(
            W, Wo, ctx, msk, rows, t, used, off, sc.astype(np.float64), mode, damp, rare
        )
        np.testing.assert_allclose(out[0], rW, rtol=0, atol=2e-5 * max(1.0, np.abs(rW).max()))
        np.testing.assert_allclose(out[1], rWo, rtol=0, atol=2e-5 * max(1.0, np.abs(rWo).max()))
        assert abs(float(out[2]) - rE) <= 2e-5 * max(1.0, abs(rE))
        W, Wo = out[0], out[1]


@pytest.mark.parametrize("parts", [0, 1, 3, 7])
@pytest.mark.parametrize("damp", [False, True])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_kernel_call_equals_its_steps_one_at_a_time(mode, damp, parts):
    """One call of S steps (logistic_steps, what train_step runs) equals its active steps
    made one call each, bit for bit; an inactive step changes nothing and has E = 0. (In a
    call, CBOW's hidden vectors of a step are made during the step before's row updates,
    into one of two buffers: parts 0 (the pool's), 1, 3 and 7 (two and four of them update
    W).)"""
    rng = np.random.default_rng(10 + mode)
    inputs = [_random_step(rng, mode, B=200) for _ in range(5)]
    W, W_out = inputs[0][0], inputs[0][1]
    stack = lambda i: np.stack([p[i] for p in inputs])  # noqa: E731
    batch = {k: np.stack([p[2][k] for p in inputs]) for k in ("context", "mask")}
    scales = np.array([[-0.05, -0.04, 0.05 + 0.1 * s] for s in range(5)], np.float32)
    active = np.array([1, 1, 0, 1, 0], np.int32)
    call = jax.jit(kernels.logistic_steps, static_argnames=("mode", "damp", "parts"))
    one = jax.jit(kernels.logistic_step, static_argnames=("mode", "damp", "parts"))
    A, A_out, E = call(W, W_out, batch, stack(3), stack(4), stack(5), stack(6), scales, active,
                       mode=mode, damp=damp, parts=parts)  # fmt: skip
    B, B_out = W, W_out
    for s in np.flatnonzero(active):
        b = {k: batch[k][s] for k in batch}
        B, B_out, e = one(B, B_out, b, *(p[s] for p in (stack(3), stack(4), stack(5), stack(6))),
                          scales[s], mode=mode, damp=damp, parts=parts)  # fmt: skip
        assert float(E[s]) == float(e) != 0
    np.testing.assert_array_equal(np.asarray(A), np.asarray(B))
    np.testing.assert_array_equal(np.asarray(A_out), np.asarray(B_out))
    assert float(E[2]) == float(E[4]) == 0 and np.abs(np.asarray(A) - W).max() > 1e-4


@pytest.mark.parametrize("offset", [False, True])
@pytest.mark.parametrize("damp", [False, True])
@pytest.mark.parametrize("mode", [0, 1])
def test_derived_targets_equal_given_ones(mode, damp, offset):
    """A sampled layer's t and used (kernels.DERIVED), made by the kernel from the rows
    [w_O, negatives] (t=None, used=None), equal pair_terms' passed in, bit for bit: negatives
    equal to w_O (skipped), out-of-range rows (dropped)."""
    rng = np.random.default_rng(20 + mode)
    W, W_out, batch, rows, _, _, off, _ = _random_step(rng, mode, B=300)
    rows[:, 1:][rng.random(rows[:, 1:].shape) < 0.2] = 0  # collisions with w_O below
    rows[rng.random(rows.shape[0]) < 0.3, 0] = 0
    _, t, used = jax.vmap(pair_terms)(jnp.asarray(rows[:, 0]), jnp.asarray(rows[:, 1:]))
    assert (~np.asarray(used)).sum() > 20  # some negatives equal w_O
    st = lambda x: None if x is None else np.asarray(x)[None]  # noqa: E731
    b = {k: st(v) for k, v in batch.items()}
    sc = np.array([[-0.05, -0.04, 0.05]], np.float32)
    call = jax.jit(kernels.logistic_steps, static_argnames=("mode", "damp", "parts"))
    o = st(off) if offset else None
    given = call(W, W_out, b, st(rows), st(t), st(used), o, sc, np.ones(1, np.int32),
                 mode=mode, damp=damp)  # fmt: skip
    derived = call(W, W_out, b, st(rows), None, None, o, sc, np.ones(1, np.int32),
                   mode=mode, damp=damp)  # fmt: skip
    assert float(given[2][0]) != 0
    for x, y in zip(given, derived, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match="both"):  # one given, one derived: no such call
        kernels.logistic_steps(W, W_out, b, st(rows), st(t), None, o, sc, np.ones(1, np.int32),
                               mode=mode, damp=damp)  # fmt: skip


def test_padded_call_equals_xla_step(corpus):
    """An epoch's last call, padded with inactive steps: the fused call (one custom call)
    and the XLA scan agree on the tables, the step and word counts, the optimizer state
    and the metrics."""
    cfg = _cfg(corpus, "model.architecture=cbow", "train.steps_per_call=8")
    run = build(cfg)
    xla = dataclasses.replace(run.spec, kernel=-1)
    batches = list(_batches(cfg, run.vocab, run.encoded, 0))[:11]  # 8 + 3 active, 5 padding
    *_, group = group_batches(batches, 8)
    assert group["active"].sum() == 3
    (a, ma), (b, mb) = (
        train_step_jit(_copy(run.state), group, run.tables, s) for s in (run.spec, xla)
    )
    for k in ("W", "W_out"):
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=2e-5, atol=2e-7)
    assert int(a.step) == int(b.step) == 3 and int(a.words) == int(b.words) > 0
    assert int(a.batch_in_epoch) == int(b.batch_in_epoch) == 3
    for x, y in zip(jax.tree.leaves(a.opt_state), jax.tree.leaves(b.opt_state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert float(ma["terms"]) == float(mb["terms"]) > 0 and float(ma["lr"]) == float(mb["lr"])
    np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=2e-5)


def test_kernel_sigmoid_and_loss_across_the_float_range():
    """blocked.h's exp_neg through the kernel: each score's error s(u) - t and loss
    -log s((2t - 1) u) against float64, for u from -120 to 120 (past exp_neg's clamp at
    exp(-87)) and around 0. Step s scores offset u_s with h = 1 against row s (zero), so
    W_out[s] becomes -(s(u_s) - t_s) and E[s] the loss."""
    u = np.concatenate([np.linspace(-120, 120, 481), [-1e-6, 0, 1e-6, 86.9, 87.1, -88]])
    u, n = u.astype(np.float32), len(u)
    t = (np.arange(n) % 2).astype(np.float32)
    batch = {"context": np.zeros((n, 1, 1), np.int32), "mask": np.ones((n, 1, 1), np.int32)}
    rows = np.arange(n, dtype=np.int32).reshape(n, 1, 1)
    scales = np.tile(np.array([0.0, -1.0, 0.0], np.float32), (n, 1))
    _, W_out, E = kernels.logistic_steps(
        np.ones((1, 1), np.float32), np.zeros((n, 1), np.float32), batch, rows,
        t.reshape(n, 1, 1), np.ones((n, 1, 1), np.int32), u.reshape(n, 1, 1), scales,
        np.ones(n, np.int32), mode=0, damp=False,
    )  # fmt: skip
    u64, t64 = u.astype(np.float64), t.astype(np.float64)
    err = (1 - 2 * t64) * expit(-(2 * t64 - 1) * u64)  # s(u) - t, without cancellation
    np.testing.assert_allclose(-np.asarray(W_out)[:, 0], err, rtol=2e-6, atol=1e-37)
    loss = np.logaddexp(0, -(2 * t64 - 1) * u64)
    np.testing.assert_allclose(np.asarray(E), loss, rtol=2e-6, atol=1.2e-7)


def test_call_with_a_gap_equals_xla_step(corpus):
    """Inactive steps between active ones (the scan skips them, and counts the steps it
    takes): the fused call gives the damped steps the same learning rates."""
    # row damping: the lr enters the update; one epoch, so that it moves ~1.5 % a step
    cfg = _cfg(corpus, "model.output=hierarchical", "train.epochs=1")
    run = build(cfg)
    assert run.spec.row_damping
    xla = dataclasses.replace(run.spec, kernel=-1)
    group = next(group_batches(_batches(cfg, run.vocab, run.encoded, 0), 4))
    group["active"] = np.array([True, False, True, True])
    (a, ma), (b, mb) = (
        train_step_jit(_copy(run.state), group, run.tables, s) for s in (run.spec, xla)
    )
    for k in ("W", "W_out"):
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=2e-5, atol=2e-7)
    assert int(a.step) == int(b.step) == 3 and int(a.words) == int(b.words)
    assert float(ma["lr"]) == float(mb["lr"]) and float(ma["terms"]) == float(mb["terms"])
    np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=2e-5)


def test_non_finite_tables_leave_no_trace_in_later_calls():
    """A damped call on a table with a NaN row gives NaN there; the damping scratch it leaves
    (kept per calling thread between calls) must not reach the next call's finite tables.
    XLA picks the thread of each call, so the bad and good calls alternate six times: a
    good call after a bad one on the same thread is what would show a leak."""
    rng = np.random.default_rng(7)
    W, W_out, batch, rows, t, used, offset, scales = _random_step(rng, 0, B=300)
    step = jax.jit(kernels.logistic_step, static_argnames=("mode", "damp", "parts"))
    bad = W.copy()
    bad[batch["context"][0, 0]] = np.nan
    rW, rWo, _ = _reference_step(
        W, W_out, batch["context"], batch["mask"], rows, t, used, offset,
        scales.astype(np.float64), 0, True,
    )  # fmt: skip
    for _ in range(6):
        out = step(bad, W_out, batch, rows, t, used, offset, scales, mode=0, damp=True)
        assert not np.isfinite(np.asarray(out[1])).all()
        W1, Wo1, _ = step(W, W_out, batch, rows, t, used, offset, scales, mode=0, damp=True)
        np.testing.assert_allclose(np.asarray(W1), rW, rtol=0, atol=2e-5 * np.abs(rW).max())
        np.testing.assert_allclose(np.asarray(Wo1), rWo, rtol=0, atol=2e-5 * np.abs(rWo).max())
