"""Checks that need a GPU (skipped without one; ``scripts/gpu_check.sh`` runs them on a
lent machine): the compiled step, the device-made examples and the Pallas kernel on the
GPU against the same computations on the host's CPU backend, in one process."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from test_train import tiny_cfg, write_toy_corpus

from sgjax.device_examples import chunk_batches
from sgjax.examples import source
from sgjax.experiment import build

pytestmark = pytest.mark.skipif(
    not any(d.platform == "gpu" for d in jax.devices()), reason="no GPU (scripts/gpu_check.sh)"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


def _on(device, fn, *args):
    with jax.default_device(device):
        args = jax.device_put(args, device)
        return jax.device_get(fn(*args))


def _calls(corpus: str, over: tuple[str, ...], device, n: int = 3) -> dict:
    """Parameters after ``n`` calls of the run's step on ``device``."""
    with jax.default_device(device):
        run = build(tiny_cfg(corpus, "train.kernel=xla", *over))
        state = jax.device_put(run.state, device)
        tables = jax.device_put(run.tables, device)
        step = source(run.cfg).step
        for _, call in zip(range(n), run.calls(0), strict=False):
            state, _ = step(state, jax.device_put(call, device), tables, run.spec)
        return jax.device_get(state.params)


@pytest.mark.parametrize(
    "over",
    [
        (),
        ("model.architecture=cbow",),
        ("model.output=hierarchical",),
        ("model.output=softmax",),
        ("data.examples=device", "data.max_line_tokens=100", "train.batch_size=16"),
        ("train.dtype=bfloat16",),
    ],
    ids=["sg-ns", "cbow-ns", "sg-hs", "sg-softmax", "device-examples", "bf16"],
)
def test_the_step_on_the_gpu_equals_the_cpus(corpus, over):
    gpu, cpu = jax.devices("gpu")[0], jax.devices("cpu")[0]
    a, b = _calls(corpus, over, gpu), _calls(corpus, over, cpu)
    tol = 2e-2 if "train.dtype=bfloat16" in over else 2e-4
    for k in a:
        np.testing.assert_allclose(
            np.asarray(a[k], np.float32), np.asarray(b[k], np.float32), rtol=tol, atol=tol * 1e-2
        )


def test_device_examples_on_the_gpu_equal_the_cpus():
    """The same key draws the same examples on both backends (threefry is exact)."""
    S, B = 8, 64
    rng = np.random.default_rng(0)
    chunk = {
        "tokens": rng.integers(0, 40, (S, B)).astype(np.int32),
        "sentence": np.repeat(np.arange(S * B // 16), 16).reshape(S, B).astype(np.int32),
        "words": np.int32(S * B),
    }
    keep = np.linspace(0.1, 1.0, 40).astype(np.float32)
    key = jax.random.PRNGKey(3)
    fn = jax.jit(functools.partial(chunk_batches, window=5))
    g = _on(jax.devices("gpu")[0], fn, key, chunk, keep)
    c = _on(jax.devices("cpu")[0], fn, key, chunk, keep)
    for k in g:
        np.testing.assert_array_equal(g[k], c[k])
