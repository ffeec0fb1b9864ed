"""Multi-device checks of sgjax.sharding, run by tests/test_sharding.py in subprocesses:
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before JAX starts, so
they cannot share the pytest process (one device). Each prints ``RESULT {json}``.

    python tests/sharding_checks.py devices DIR CKPT1 CORPUS   # meshes vs one device;
                                            # checkpoints; the multihost run on one device
    python tests/sharding_checks.py multihost PID PORT DIR CORPUS  # one of two
                                               # jax.distributed CPU processes (2 devices each)

The training data are random batches over a 37-word vocabulary (37 divides by none of 2, 4,
8, so every model-sharded table is padded), dim 8, batch 16, 4 steps per call, 3 calls
(the last one with an inactive step): 11 optimizer steps.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from sgjax import checkpoint, sharding
from sgjax.config import MeshConfig, OptimizerConfig, load_config
from sgjax.model import ModelSpec
from sgjax.optim import build_optimizer
from sgjax.outputs import REGISTRY
from sgjax.params import table_rows
from sgjax.train import StepSpec, init_state, train_step_jit
from sgjax.vocab import Vocab

V, N, B, C, S, CALLS = 37, 8, 16, 4, 4, 3
ALL = [(1, 1), (2, 1), (2, 2), (8, 1), (1, 8), (2, 4)]  # 4 x 2: on the HS models
# (architecture, output, gradients, optimizer, sparse) -> meshes (data, model) compared with
# the plain one-device step: every mesh on the base model, spot checks on the others
CHECKS = {
    ("skipgram", "negative", "explicit", "sgd", "lazy"): ALL,
    ("skipgram", "negative", "autodiff", "sgd", "lazy"): [(2, 4)],
    ("skipgram", "hierarchical", "explicit", "sgd", "lazy"): [(4, 2)],
    ("cbow", "negative", "explicit", "adagrad", "lazy"): [(2, 4)],
}
# every other registered output layer whose gradient is row-sparse (its rule scores the rows
# its fields name), on the 2 x 4 mesh. The full softmax is left out: padding rows of W_out
# would join its softmax (sgjax.sharding.plan_for refuses a model axis that does not divide
# V) and its dense gradient is summed over the data shards, so not bit-identical.
CHECKS.update(
    {
        ("skipgram", output, "explicit", "sgd", "lazy"): [(2, 4)]
        for output, layer in REGISTRY.items()
        if layer.scopes(ModelSpec(output=output)) and output not in {m[1] for m in CHECKS}
    }
)
CHECKS[("cbow", "hierarchical", "autodiff", "adam", "dense")] = [(4, 2)]  # last: MODELS[-1]
MODELS = list(CHECKS)
CKPT_MODEL = MODELS[3]  # adagrad: optimizer state shaped like the tables
EXPERIMENT = [  # a tiny run of the Python API (multihost); test_sharding.py runs it on 1 device
    "data.min_count=1",
    "data.sample=0",
    "model.dim=8",
    "model.window=2",
    "model.negatives=3",
    "model.output=hierarchical",
    "train.epochs=2",
    "train.batch_size=64",
    "train.steps_per_call=8",
    "optimizer.name=adagrad",
    "optimizer.learning_rate=0.2",
    "eval.analogies=false",
    "eval.similarity=false",
]


def vocab() -> Vocab:
    counts = np.sort(np.random.default_rng(1).integers(1, 500, V))[::-1]
    return Vocab(tuple(f"w{i}" for i in range(V)), counts)


def groups(seed: int = 0, batch: int = B, calls: int = CALLS) -> list[dict]:
    """Host batch groups (S stacked steps) of random examples; the last step inactive."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(calls):
        mask = rng.random((S, batch, C)) < 0.7
        mask[:, -2:] = False  # padding examples, as at the end of an epoch
        out.append(
            {
                "center": rng.integers(0, V, (S, batch)).astype(np.int32),
                "context": np.where(mask, rng.integers(0, V, (S, batch, C)), 0).astype(np.int32),
                "mask": mask,
                "words": rng.integers(5, 20, S).astype(np.int32),
                "active": np.arange(S) < (S - 1 if i == calls - 1 else S),
            }
        )
    return out


@functools.cache
def setup(model: tuple) -> tuple[StepSpec, dict]:
    arch, output, grads, opt_name, sparse = model
    lr = {"sgd": 0.5, "adam": 0.05, "adagrad": 0.5}[opt_name]
    opt = build_optimizer(OptimizerConfig(name=opt_name, learning_rate=lr, sparse=sparse), 12)
    model = ModelSpec(input=arch, output=output, negatives=3)
    tables = model.layer.prepare(vocab(), model)  # noise sampler, Huffman tree, ...
    return StepSpec(model=model, optimizer=opt, gradients=grads), tables


def fresh(model: tuple, spec: StepSpec, seed: int = 0):
    return init_state(jax.random.PRNGKey(seed), V, N, model[1], spec.optimizer)


@functools.cache  # one plan (so one compiled step) per mesh and output layer
def plan_of(mesh: tuple[int, int], output: str) -> sharding.Plan:
    return sharding.Plan(sharding.make_mesh(MeshConfig(*mesh)), table_rows(V, output))


def run(model: tuple, mesh: tuple[int, int] | None, batches: list[dict]) -> tuple:
    """Train ``model`` on ``batches``: the plain jitted step (mesh None) or on a mesh."""
    spec, tables = setup(model)
    state = fresh(model, spec)
    step = train_step_jit
    if mesh is not None:
        plan = plan_of(mesh, model[1])
        state, step = plan.place(state), plan.step()
    for g in batches:
        state, m = step(state, g, tables, spec)
    if mesh is not None:
        state = plan.logical(state)
    return jax.device_get(state), float(m["loss"])


def max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def counters(st) -> list[int]:
    return [int(st.step), int(st.epoch), int(st.batch_in_epoch), int(st.words)]


def equivalence() -> dict:
    out: dict = {}
    batches = groups(0)
    for model, meshes in CHECKS.items():
        t0 = time.perf_counter()
        spec, _ = setup(model)
        init = jax.device_get(fresh(model, spec))
        ref, ref_loss = run(model, None, batches)
        rec: dict = {
            "ref_max_abs": max(float(np.abs(x).max()) for x in jax.tree.leaves(ref.params)),
            "ref_change": max_diff(ref.params, init.params),  # how far training moved them
            "ref_counters": counters(ref),
            "meshes": {},
        }
        for mesh in meshes:
            st, loss = run(model, mesh, batches)
            rec["meshes"][f"{mesh[0]}x{mesh[1]}"] = {
                "params": max_diff(st.params, ref.params),
                "opt_state": max_diff(st.opt_state, ref.opt_state),
                "shapes": jax.tree.map(np.shape, st) == jax.tree.map(np.shape, ref),
                "counters": counters(st),
                "key": bool(np.array_equal(st.key, ref.key)),
                "loss_rel": abs(loss - ref_loss) / abs(ref_loss),
            }
        rec["time_s"] = time.perf_counter() - t0
        out["/".join(model)] = rec
    return out


def placement() -> dict:
    """Shard shapes and bytes per device of a placed state (37 rows -> 40 on 4 shards)."""
    model = MODELS[-1]  # adam: mu and nu shaped like the tables
    spec, _ = setup(model)
    state = fresh(("", "negative"), spec)
    plan = plan_of((2, 4), "negative")
    placed = plan.place(state)
    W, mu = placed.params["W"], placed.opt_state[0].mu["W"]
    return {
        "W_global": list(W.shape),
        "W_shard": list(W.addressable_shards[0].data.shape),
        "W_devices": len(W.sharding.device_set),
        "W_spec": list(W.sharding.spec),
        "mu_shard": list(mu.addressable_shards[0].data.shape),
        "step_replicated": bool(placed.step.sharding.is_fully_replicated),
        "pad_rows_zero": bool(np.all(np.asarray(W)[V:] == 0) and np.all(np.asarray(mu)[V:] == 0)),
        "bytes": sharding.bytes_per_device(placed),
        "bytes_1": sharding.bytes_per_device(state),
        "logical_equal": max_diff(plan.logical(placed), state) == 0.0,
        "placed_again_is_same": plan.place(placed) is placed,
        # created on the mesh, row by row: the same values as placing init_state's
        "init_sharded_diff": max_diff(
            plan.logical(
                sharding.init_sharded_state(
                    jax.random.PRNGKey(0), V, N, "negative", spec.optimizer, plan
                )
            ),
            state,
        ),
        "init_sharded_W_sharding_ok": sharding.init_sharded_state(
            jax.random.PRNGKey(0), V, N, "negative", spec.optimizer, plan
        )
        .params["W"]
        .sharding
        == W.sharding,
    }


def checkpoints(out_dir: Path, ckpt1: Path) -> dict:
    """Write a checkpoint of a state trained on 8 devices (2 x 4: 40 padded rows) for the
    pytest process to restore on one device; restore it here on a 2 x 2 mesh (38 rows);
    restore the one-device checkpoint ``ckpt1`` onto 1 x 8 (40 rows)."""
    spec, tables = setup(CKPT_MODEL)
    state = fresh(CKPT_MODEL, spec, seed=3)
    plan8 = plan_of((2, 4), CKPT_MODEL[1])  # compiled already by equivalence()
    st8, step8 = plan8.place(state), plan8.step()
    for g in groups(3)[:2]:
        st8, _ = step8(st8, g, tables, spec)
    logical = jax.device_get(plan8.logical(st8))
    path = checkpoint.save(out_dir / "run8", st8, {"step": int(st8.step)})
    plan4 = plan_of((2, 2), CKPT_MODEL[1])
    got4, _ = checkpoint.restore(path, plan4.abstract(state), pad_rows=True)
    plan18 = plan_of((1, 8), CKPT_MODEL[1])
    got18, meta1 = checkpoint.restore(ckpt1, plan18.abstract(state), pad_rows=True)
    return {
        "path8": str(path),
        "saved_W_shape": list(st8.params["W"].shape),
        "saved_W_devices": len(st8.params["W"].sharding.device_set),
        # training never touched the padding rows (37..39) of the tables and their state
        "pad_rows_zero_after_training": all(
            not np.asarray(x)[V:].any()
            for x in (
                st8.params["W"],
                st8.params["W_out"],
                *jax.tree.leaves(st8.opt_state[0].sum_of_squares),
            )
        ),
        "W": np.asarray(logical.params["W"]).tolist(),
        "acc_W": np.asarray(logical.opt_state[0].sum_of_squares["W"]).tolist(),
        "counters": counters(logical),
        "restored_4_diff": max_diff(plan4.logical(got4), logical),
        "restored_4_shape": list(got4.params["W"].shape),
        "restored_4_spec": list(got4.params["W"].sharding.spec),
        "from_1_W": np.asarray(plan18.logical(got18).params["W"]).tolist(),
        "from_1_shape": list(got18.params["W"].shape),
        "from_1_devices": len(got18.params["W"].sharding.device_set),
        "from_1_meta": meta1,
    }


def one_device_experiment(corpus: str) -> dict:
    """``sgjax.experiment.train`` of the multihost config on one device (mesh 1 x 1)."""
    from sgjax.experiment import train

    result = train(load_config(None, [*EXPERIMENT, f"data.corpus={corpus}"]), progress=False)
    return {
        "W": result.state.params["W"].tolist(),
        "W_out_shape": list(result.state.params["W_out"].shape),
        "counters": counters(result.state),
    }


def multihost(pid: int, port: int, out_dir: Path, corpus: str) -> dict:
    """One of two jax.distributed processes with 2 CPU devices each, running
    ``sgjax.experiment.train`` on a 2 x 2 mesh (data across the processes, model inside
    each): the test compares it with :func:`one_device_experiment`."""
    os.environ.update(
        JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid)
    )
    started = sharding.initialize_distributed(None)
    from sgjax.experiment import train

    cfg = load_config(None, [*EXPERIMENT, f"data.corpus={corpus}", "mesh.data=2", "mesh.model=2"])
    result = train(cfg, out_dir, progress=False)
    return {
        "started": started,
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "W": result.state.params["W"].tolist(),
        "counters": counters(result.state),
        "files": sorted(p.name for p in out_dir.iterdir()),
        "metrics_lines": len((out_dir / "metrics.jsonl").read_text().splitlines()),
        "ckpt": str(checkpoint.latest(out_dir)),
    }


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "devices":
        t0 = time.perf_counter()
        result = {
            "devices": jax.device_count(),
            "equivalence": equivalence(),
            "placement": placement(),
            "checkpoint": checkpoints(Path(sys.argv[2]), Path(sys.argv[3])),
            "one_device_experiment": one_device_experiment(sys.argv[4]),
        }
        result["time_s"] = time.perf_counter() - t0
    elif what == "multihost":
        result = multihost(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
    else:
        raise SystemExit(f"unknown check {what!r}")
    print("RESULT " + json.dumps(result), flush=True)
