"""Sharded training (sgjax.sharding): meshes of 1-8 simulated CPU devices give the one-device
parameters; checkpoints move between device counts; two jax.distributed processes.

The multi-device checks need ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before
JAX starts, so they run in subprocesses (tests/sharding_checks.py), started together by one
module fixture; the tests here assert on their JSON. XLA's CPU backend optimisation level is
lowered in the subprocesses (compiles 2-4x faster; every comparison is between programs
compiled with the same flags).

Tolerance of the mesh-vs-one-device comparisons: a sharded step sums the same float32
terms in another order (per data shard, then across the data axis; see the sgjax.sharding
docstring), so each step may move an element by a few ulps of its magnitude, and these
errors add over the steps. We allow ``STEPS * 2 * eps32 * max|param|`` (11 steps,
eps32 = 1.19e-7: about 2.6e-6 * max|param|); a real error (a batch shard lost or counted
twice, a row update on the wrong shard) moves parameters by the order of a whole update,
``ref_change``, which is asserted to be >= 1000x larger.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import sharding_checks as sc

from sgjax import checkpoint, sharding
from sgjax.config import Config, ConfigError, MeshConfig, load_config
from sgjax.train import init_state

CHECKS = Path(__file__).with_name("sharding_checks.py")
STEPS = 11  # optimizer steps in sharding_checks.groups(): 3 calls of 4, one inactive
EPS32 = float(np.finfo(np.float32).eps)
FAST_XLA = "--xla_backend_optimization_level=0"


def tol(scale: float) -> float:
    return STEPS * 2 * EPS32 * max(1.0, scale)


# --------------------------------------------------------------------------------------------
# Pure functions (this process: one device).


def batch(i: int) -> dict:
    return {
        "center": np.full((3,), i, np.int32),
        "context": np.ones((3, 2), np.int32),
        "mask": np.ones((3, 2), bool),
        "words": np.int32(10 + i),
    }


def test_process_batches_are_strided_and_equal_in_number():
    batches = [batch(i) for i in range(5)]
    shares = [list(sharding.process_batches(iter(batches), p, 2)) for p in range(2)]
    assert [int(b["center"][0]) for b in shares[0]] == [0, 2, 4]
    assert [int(b["center"][0]) for b in shares[1][:2]] == [1, 3]
    assert len(shares[1]) == 3  # every process runs the same number of steps
    empty = shares[1][2]
    assert not empty["mask"].any() and int(empty["words"]) == 0
    assert empty["center"].shape == (3,)
    assert batches[4]["mask"].all()  # the padding batch is a copy
    assert [int(b["center"][0]) for b in sharding.process_batches(batches, 0, 1)] == list(range(5))
    three = [list(sharding.process_batches(batches, p, 3)) for p in range(3)]
    assert [len(s) for s in three] == [2, 2, 2]
    real = sorted(int(b["center"][0]) for s in three for b in s if b["mask"].any())
    assert real == [0, 1, 2, 3, 4]  # each batch exactly once
    with pytest.raises(ValueError, match="process index 2"):
        list(sharding.process_batches(batches, 2, 2))


def test_process_rows_split_every_batch_into_contiguous_shares():
    """With window buckets a batch's rows have a layout: each process keeps its rows of
    every batch, and the shares concatenated along the data axis are the batch."""
    batches = [
        {
            "center": np.arange(8) + 10 * i,
            "context": np.arange(16).reshape(8, 2) + 10 * i,
            "mask": np.ones((8, 2), bool),
            "words": np.int32(30 + i),
        }
        for i in range(3)
    ]
    shares = [list(sharding.process_rows(iter(batches), p, 2)) for p in range(2)]
    assert [len(s) for s in shares] == [3, 3]
    for i, b in enumerate(batches):
        for k in ("center", "context", "mask"):
            np.testing.assert_array_equal(np.concatenate([s[i][k] for s in shares]), b[k])
        assert int(shares[0][i]["words"]) + int(shares[1][i]["words"]) == int(b["words"])
    with pytest.raises(ValueError, match="process index 2"):
        list(sharding.process_rows(batches, 2, 2))


def test_distributed_args_from_environment_and_config():
    assert sharding.distributed_args(MeshConfig(), {}) is None
    env = {
        "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": "3",
    }
    assert sharding.distributed_args(None, env) == {
        "coordinator_address": "10.0.0.1:1234",
        "num_processes": 4,
        "process_id": 3,
    }
    # mesh.distributed: jax detects the cluster (TPU pod, SLURM, ...) by itself
    assert sharding.distributed_args(MeshConfig(distributed=True), {}) == {}
    with pytest.raises(ConfigError, match="JAX_PROCESS_ID='x'"):
        sharding.distributed_args(None, {**env, "JAX_PROCESS_ID": "x"})
    assert sharding.initialize_distributed(MeshConfig()) is False  # nothing asked: no-op


def test_mesh_needs_enough_devices():
    assert jax.device_count() == 1
    with pytest.raises(ConfigError) as e:
        sharding.make_mesh(MeshConfig(data=2, model=4))
    msg = str(e.value)
    assert "mesh.data x mesh.model = 2 x 4 = 8 devices" in msg
    assert "xla_force_host_platform_device_count=8" in msg
    mesh = sharding.make_mesh(MeshConfig())
    assert dict(mesh.shape) == {"data": 1, "model": 1}


def test_plan_for():
    assert sharding.plan_for(Config(), 37) is None  # one device: the unchanged code path
    cfg = load_config(None, ["model.output=softmax", "mesh.model=2"])
    with pytest.raises(ConfigError, match="mesh.model=2: model.output=softmax"):
        sharding.plan_for(cfg, 37)
    assert sharding.padded_rows(37, 8) == 40 and sharding.padded_rows(40, 8) == 40


def test_pad_unpad_and_shardings_of_the_state():
    spec, _ = sc.setup(sc.MODELS[-1])  # adam: mu, nu like the tables
    state = init_state(jax.random.PRNGKey(0), 37, 4, "hierarchical", spec.optimizer)
    padded = sharding.pad_state(state, 8)
    assert padded.params["W"].shape == (40, 4) and padded.params["W_out"].shape == (40, 4)
    assert padded.opt_state[0].mu["W_out"].shape == (40, 4)
    assert padded.opt_state[0].count.shape == ()
    assert not np.asarray(padded.params["W"])[37:].any()
    back = sharding.unpad_state(padded, {"W": 37, "W_out": 36})
    assert jax.tree.map(np.shape, back) == jax.tree.map(np.shape, state)
    np.testing.assert_array_equal(back.params["W"], state.params["W"])
    specs = sharding.state_shardings(state, sharding.make_mesh(MeshConfig()))
    assert specs.params["W"].spec == jax.sharding.PartitionSpec("model")
    assert specs.opt_state[0].nu["W"].spec == jax.sharding.PartitionSpec("model")
    assert specs.step.spec == jax.sharding.PartitionSpec() == specs.key.spec


# --------------------------------------------------------------------------------------------
# Multi-device and multi-process checks (subprocesses).


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} {FAST_XLA}"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _result(proc: subprocess.Popen, what: str) -> dict:
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"{what} failed (rc {proc.returncode}):\n{err[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def _toy_corpus(path: Path) -> str:
    rng = np.random.default_rng(0)
    words = [["cat", "dog", "bird", "fish", "horse"], ["eats", "sees", "likes"], ["food", "meat"]]
    lines = [
        " ".join(str(rng.choice(w)) for _ in range(int(rng.integers(1, 4))) for w in words)
        for _ in range(300)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Run the 8-device checks and the two-process run at the same time."""
    d = tmp_path_factory.mktemp("sharding")
    # a one-device checkpoint (fresh state: nothing to compile here) for the 8-device process
    spec, _ = sc.setup(sc.CKPT_MODEL)
    st1 = jax.device_get(sc.fresh(sc.CKPT_MODEL, spec, seed=5))
    ckpt1 = checkpoint.save(d / "run1", st1, {"step": 0})
    corpus = _toy_corpus(d / "toy.txt")
    cmd = [sys.executable, str(CHECKS)]
    procs = {
        "devices": subprocess.Popen(
            [*cmd, "devices", str(d), str(ckpt1), corpus],
            env=_env(8),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    }
    port = _free_port()
    for pid in (0, 1):
        procs[f"host{pid}"] = subprocess.Popen(
            [*cmd, "multihost", str(pid), str(port), str(d / "multihost"), corpus],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    out = {k: _result(p, k) for k, p in procs.items()}
    out["st1"] = st1
    out["dir"] = d
    return out


@pytest.mark.parametrize("model", ["/".join(m) for m in sc.MODELS])
def test_meshes_train_to_the_one_device_parameters(runs, model):
    assert runs["devices"]["devices"] == 8
    rec = runs["devices"]["equivalence"][model]
    bound = tol(rec["ref_max_abs"])
    assert rec["ref_change"] > 1000 * bound  # training moved the parameters far more
    assert rec["meshes"], model
    for mesh, r in rec["meshes"].items():
        assert r["shapes"] and r["key"], mesh  # unpadded shapes; the same PRNG stream
        assert r["counters"] == rec["ref_counters"], mesh  # step, epoch, batch, words
        assert r["params"] <= bound, (mesh, r["params"], bound)
        assert r["opt_state"] <= bound, (mesh, r["opt_state"], bound)
        assert r["loss_rel"] <= 1e-5, mesh
        if mesh == "1x1":  # one device through sgjax.sharding: the same program, bit-exact
            assert r["params"] == 0.0 and r["opt_state"] == 0.0
        if model.startswith("skipgram") and "/explicit/" in model:
            # row updates applied in batch order on every replica (gather_row_grads) and
            # exact gathers: bit-identical, as the sgjax.sharding docstring says
            assert r["params"] == 0.0, mesh


def test_every_mesh_shape_is_covered(runs):
    meshes = {m for rec in runs["devices"]["equivalence"].values() for m in rec["meshes"]}
    devices = {int(m.split("x")[0]) * int(m.split("x")[1]) for m in meshes}
    assert devices == {1, 2, 4, 8}
    assert {"1x1", "2x1", "2x2", "8x1", "1x8", "2x4", "4x2"} <= meshes
    grads = {m.split("/")[2] for m in runs["devices"]["equivalence"]}
    assert grads == {"explicit", "autodiff"}


def test_placement_shards_rows_and_replicates_scalars(runs):
    p = runs["devices"]["placement"]
    assert p["W_global"] == [40, 8] and p["W_shard"] == [10, 8]  # 37 rows padded, 4 shards
    assert p["W_devices"] == 8 and p["W_spec"] == ["model"]
    assert p["mu_shard"] == [10, 8] and p["step_replicated"] and p["pad_rows_zero"]
    assert p["logical_equal"] and p["placed_again_is_same"]
    assert p["init_sharded_diff"] == 0.0 and p["init_sharded_W_sharding_ok"]
    # per device: a quarter of the padded rows (and of Adam's two moments)
    assert p["bytes"]["W"] == 10 * 8 * 4 and p["bytes_1"]["W"] == 37 * 8 * 4
    assert p["bytes"]["opt_state"] <= p["bytes_1"]["opt_state"] * 10 / 37 + 16


def test_checkpoint_written_on_8_devices_restores_on_1(runs):
    c = runs["devices"]["checkpoint"]
    assert c["saved_W_shape"] == [40, 8] and c["saved_W_devices"] == 8  # 4 row shards
    assert c["pad_rows_zero_after_training"]
    spec, _ = sc.setup(sc.CKPT_MODEL)
    target = sc.fresh(sc.CKPT_MODEL, spec)
    with pytest.raises(ValueError, match=r"\(40, 8\), the target \(37, 8\).*pad_rows=True"):
        checkpoint.restore(c["path8"], target)
    got, meta = checkpoint.restore(c["path8"], target, pad_rows=True)
    assert meta == {"step": 8} and sc.counters(got) == c["counters"]
    assert got.params["W"].shape == (37, 8) and isinstance(got.params["W"], np.ndarray)
    np.testing.assert_array_equal(got.params["W"], np.asarray(c["W"], np.float32))
    np.testing.assert_array_equal(
        got.opt_state[0].sum_of_squares["W"], np.asarray(c["acc_W"], np.float32)
    )
    wrong = init_state(jax.random.PRNGKey(0), 37, 9, "negative", spec.optimizer)
    with pytest.raises(ValueError, match=r"the target \(37, 9\)"):  # not just rows: refused
        checkpoint.restore(c["path8"], wrong, pad_rows=True)
    # and on 4 devices (2 x 2: 38 rows) in the 8-device process
    assert c["restored_4_diff"] == 0.0 and c["restored_4_shape"] == [38, 8]
    assert c["restored_4_spec"] == ["model"]


def test_checkpoint_written_on_1_device_restores_on_8(runs):
    c = runs["devices"]["checkpoint"]
    assert c["from_1_shape"] == [40, 8] and c["from_1_devices"] == 8
    np.testing.assert_array_equal(np.asarray(c["from_1_W"], np.float32), runs["st1"].params["W"])
    assert c["from_1_meta"] == {"step": 0}


def test_two_processes_with_jax_distributed(runs):
    h0, h1 = runs["host0"], runs["host1"]
    for h in (h0, h1):
        assert h["started"] and h["processes"] == 2 and h["devices"] == 4
        assert h["local_devices"] == 2
    # process p keeps every other batch of batch_size / 2: together the one-device batches
    one = runs["devices"]["one_device_experiment"]
    W1 = np.asarray(one["W"], np.float32)
    assert h0["counters"] == h1["counters"] == one["counters"]  # steps, words
    bound = h0["counters"][0] * 2 * EPS32 * max(1.0, float(np.abs(W1).max()))
    for h in (h0, h1):  # every process ends with the whole (gathered, unpadded) state
        np.testing.assert_allclose(np.asarray(h["W"], np.float32), W1, rtol=0, atol=bound)
    # process 0 wrote the files, once; the checkpoint was written by both together
    assert {"vectors.bin", "metrics.jsonl", "config.yaml", "scores.json"} <= set(h0["files"])
    assert h0["metrics_lines"] == 3  # an "epoch" line per epoch and the "end" line, not per process
    from sgjax.checkpoint import load_run_state  # params only, padding rows dropped

    vocab, params, meta = load_run_state(runs["dir"] / "multihost")
    assert meta["step"] == h0["counters"][0] and len(vocab) == W1.shape[0]
    np.testing.assert_array_equal(params["W"], np.asarray(h0["W"], np.float32))
    assert list(params["W_out"].shape) == one["W_out_shape"]  # 10 rows stored, 9 real


def test_sharded_run_resumes_on_one_device(runs):
    """The two-process run's checkpoint (W_out padded from 9 to 10 rows) resumes in this
    one-device process once config.yaml names a one-device mesh: the run is complete, so
    resume restores it and returns it."""
    from sgjax.experiment import train

    run_dir = runs["dir"] / "multihost"
    text = (run_dir / "config.yaml").read_text()
    assert "model: 2" in text and "data: 2" in text
    text = text.replace("data: 2", "data: 1").replace("model: 2", "model: 1")
    (run_dir / "config.yaml").write_text(text)
    again = train(None, run_dir, resume=True, progress=False)
    np.testing.assert_array_equal(
        np.asarray(again.state.params["W"]), np.asarray(runs["host0"]["W"], np.float32)
    )
    W_out_shape = runs["devices"]["one_device_experiment"]["W_out_shape"]
    assert list(again.state.params["W_out"].shape) == W_out_shape  # unpadded: 9 rows


@pytest.mark.parametrize(
    "owners,ok",
    [
        ([[0], [0], [1], [1]], True),  # process p holds the p-th block of the data axis
        ([[0, 0], [1, 1]], True),
        ([[0], [1], [0], [1]], False),  # interleaved: its rows would land elsewhere
        ([[1], [1], [0], [0]], False),
    ],
)
def test_check_process_blocks(monkeypatch, owners, ok):
    from types import SimpleNamespace

    devices = np.empty((len(owners), len(owners[0])), object)
    for i, row in enumerate(owners):
        for j, p in enumerate(row):
            devices[i, j] = SimpleNamespace(process_index=p)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    mesh = SimpleNamespace(devices=devices)
    if ok:
        sharding.check_process_blocks(mesh)
    else:
        with pytest.raises(ConfigError, match="train.window_buckets=false"):
            sharding.check_process_blocks(mesh)
