"""Memory of sharded training (sgjax.sharding) on simulated CPU devices; prints JSON.

Two phases, each in its own process (so each peak RSS is its own), both with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``:

1. ``bytes``: for a vocabulary of V words x dim N, the bytes each device holds of W, W_out
   and the optimizer state on meshes ``1 x m`` for m = 1, 2, 4, 8 (the model axis growing),
   measured on the placed arrays (``addressable_shards``). They fall as 1/m.
2. ``train``: trains skip-gram with negative sampling on that vocabulary on a ``1 x 8`` mesh
   for ``--steps`` steps of synthetic batches (token ids drawn from a Zipf law over the
   vocabulary; the point is memory, not vectors) and reports peak RSS, steps/s and the loss.
   The state is created sharded (:func:`sgjax.sharding.init_sharded_state`): no device and
   not the host ever holds a whole table.

    python scripts/bench_memory.py              # 1,000,000 x 300, adagrad, 300 steps of 256
    python scripts/bench_memory.py --vocab 100000 --steps 50    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DEVICES = 8


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _setup(args: argparse.Namespace):
    import jax

    from sgjax.config import OptimizerConfig
    from sgjax.optim import build_optimizer

    opt = build_optimizer(
        OptimizerConfig(name=args.optimizer, learning_rate=args.lr, schedule="constant"),
        args.steps,
    )
    return jax, opt


def phase_bytes(args: argparse.Namespace) -> dict:
    jax, opt = _setup(args)
    from sgjax import sharding
    from sgjax.config import MeshConfig

    rows = []
    for m in (1, 2, 4, 8):
        plan = sharding.Plan(
            sharding.make_mesh(MeshConfig(1, m)), {"W": args.vocab, "W_out": args.vocab}
        )
        t = time.perf_counter()
        state = sharding.init_sharded_state(
            jax.random.PRNGKey(0), args.vocab, args.dim, "negative", opt, plan
        )
        jax.block_until_ready(state)
        b = sharding.bytes_per_device(state)
        rows.append(
            {
                "model_axis": m,
                "W_bytes": b["W"],
                "W_out_bytes": b["W_out"],
                "opt_state_bytes": b["opt_state"],
                "total_bytes": b["W"] + b["W_out"] + b["opt_state"],
                "padded_rows": int(state.params["W"].shape[0]),
                "init_s": round(time.perf_counter() - t, 2),
                "rss_gb": round(rss_gb(), 2),
            }
        )
        del state
    return {"per_device": rows, "peak_rss_gb": round(peak_rss_gb(), 2)}


def synthetic_groups(args: argparse.Namespace, seed: int):
    """Host batch groups (S steps) with Zipf-distributed token ids."""
    import numpy as np

    rng = np.random.default_rng(seed)
    S, B, C = args.steps_per_call, args.batch, 2 * args.window

    def ids(shape):
        return (np.minimum(rng.zipf(1.1, shape), args.vocab) - 1).astype(np.int32)

    while True:
        mask = rng.random((S, B, C)) < 0.8
        yield {
            "center": ids((S, B)),
            "context": np.where(mask, ids((S, B, C)), 0).astype(np.int32),
            "mask": mask,
            "words": np.full(S, B, np.int32),
            "active": np.ones(S, bool),
        }


def phase_train(args: argparse.Namespace) -> dict:
    jax, opt = _setup(args)
    import numpy as np

    from sgjax import sharding
    from sgjax.config import MeshConfig
    from sgjax.train import StepSpec
    from sgjax.vocab import Vocab

    d, m = (int(x) for x in args.mesh.split("x"))
    plan = sharding.Plan(
        sharding.make_mesh(MeshConfig(d, m)), {"W": args.vocab, "W_out": args.vocab}
    )
    state = sharding.init_sharded_state(
        jax.random.PRNGKey(0), args.vocab, args.dim, "negative", opt, plan
    )
    from sgjax.noise import noise_table

    counts = np.maximum(1e7 / np.arange(1, args.vocab + 1) ** 1.1, 1).astype(np.int64)
    vocab = Vocab(tuple(str(i) for i in range(args.vocab)), counts)
    tables = {"noise": noise_table(vocab)}
    spec = StepSpec("skipgram", "negative", args.negatives, True, "explicit", opt)
    step = plan.step()
    rss_start = rss_gb()
    calls = max(1, args.steps // args.steps_per_call)
    groups = synthetic_groups(args, 0)
    losses, times = [], []
    for _ in range(calls):
        g = next(groups)
        t = time.perf_counter()
        state, metrics = step(state, g, tables, spec)
        metrics = jax.device_get(metrics)
        times.append(time.perf_counter() - t)
        losses.append(float(metrics["loss"]) / max(float(metrics["terms"]), 1.0))
    b = sharding.bytes_per_device(state)
    steady = times[1:] or times
    return {
        "mesh": args.mesh,
        "steps": int(state.step),
        "batch": args.batch,
        "first_call_s": round(times[0], 2),
        "steps_per_s": round(args.steps_per_call * len(steady) / sum(steady), 2),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "finite": bool(metrics["finite"]),
        "W_rows_per_device": int(state.params["W"].addressable_shards[0].data.shape[0]),
        "bytes_per_device": b,
        "rss_after_init_gb": round(rss_start, 2),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vocab", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=300)
    p.add_argument("--optimizer", default="adagrad", help="optax name (lazy row-sparse path)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--steps-per-call", type=int, default=50)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negatives", type=int, default=5)
    p.add_argument("--mesh", default="1x8", help="data x model mesh of the train phase")
    p.add_argument("--phase", choices=["bytes", "train"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        out = phase_bytes(args) if args.phase == "bytes" else phase_train(args)
        print(json.dumps(out))
        return
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={DEVICES}"
    ).strip()
    result = {k: v for k, v in vars(args).items() if k != "phase"}
    result["devices"] = DEVICES
    for phase in ("bytes", "train"):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--phase", phase],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            sys.exit(f"phase {phase} failed:\n{proc.stderr[-4000:]}")
        result[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
        result[phase]["wall_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
