"""Where a train step's time goes: the XLA ops of a few compiled calls, from a jax.profiler
trace, summed by op and by kind.

Builds the run of ``--config`` (+ ``--set`` overrides) on its corpus (default realtext-v1),
takes the first ``--calls`` + 1 calls of epoch 0, runs the first to compile, then times the
rest twice: plainly (``wall_s_per_step``, the honest figure) and under
``jax.profiler.trace`` (``profiled_s_per_step``: the tracer slows every op, so read the
shares, not the absolute times). Each XLA op's trace events (``ThunkExecutor`` children:
fusions, scatters, gathers, YNNPACK dot fusions) are summed per name over all threads and
grouped into kinds by name:

- ``matmul``: ``ynn_fusion*`` (dots, run by YNNPACK on XLA's CPU backend);
- ``scatter``: ``*scatter*`` (the row updates of W and W_out);
- ``gather``: ``gather*`` (reading the rows of W and W_out);
- ``transcendental``: ``*exponential*``, ``*log*`` (sigmoid and the loss);
- ``other``: the rest (elementwise fusions, copies, the scan's control flow).

``busy_share`` is the ops' summed time over (profiled wall time x devices' threads): how
much of the two cores the step keeps busy. The last line printed is one JSON object.

    python scripts/profile_step.py                                    # sg_ns (the defaults)
    python scripts/profile_step.py --set train.window_buckets=false --set train.batch_size=256
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

KINDS = (
    ("matmul", lambda n: n.startswith("ynn_fusion")),
    ("scatter", lambda n: "scatter" in n),
    ("gather", lambda n: n.startswith("gather")),
    ("transcendental", lambda n: "exponential" in n or "log" in n),
)
NOT_OPS = ("ThunkExecutor", "ThreadpoolListener", "$", "end: ", "PjitFunction", "Transpose")


def kind_of(name: str) -> str:
    return next((k for k, test in KINDS if test(name)), "other")


def op_times(trace_dir: str) -> tuple[dict[str, float], dict[str, int]]:
    """Per-op summed durations (s) and counts."""
    (path,) = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1:]
    with gzip.open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    total: dict[str, float] = collections.Counter()
    count: dict[str, int] = collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") != "X" or name.startswith(NOT_OPS) or name.startswith(("cond", "while")):
            continue  # control flow nests its body's ops: count those, not it
        total[name] += e.get("dur", 0) / 1e6
        count[name] += 1
    return dict(total), dict(count)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default=None, help="YAML config (default: the defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--calls", type=int, default=4, help="calls timed (after one compiling)")
    p.add_argument("--top", type=int, default=15, help="ops listed by name")
    args = p.parse_args(argv)

    import jax

    from sgjax.config import load_config
    from sgjax.experiment import _batches, build
    from sgjax.loop import group_batches
    from sgjax.train import train_step_jit

    cfg = load_config(args.config, args.set)
    if cfg.data.examples != "host":  # its figures are per step of host batches
        raise SystemExit("profile_step.py: data.examples=host only (device chunks: gpu_check.py)")
    run = build(cfg, None)
    groups = []
    for g in group_batches(_batches(cfg, run.vocab, run.encoded, 0), cfg.train.steps_per_call):
        groups.append(g)
        if len(groups) == args.calls + 1:
            break
    steps = sum(int(g["active"].sum()) for g in groups[1:])
    state = run.state
    t0 = time.perf_counter()
    state, m = train_step_jit(state, groups[0], run.tables, run.spec)
    jax.block_until_ready(m)
    first = time.perf_counter() - t0

    def timed(state):
        t0 = time.perf_counter()
        for g in groups[1:]:
            state, m = train_step_jit(state, g, run.tables, run.spec)
        jax.block_until_ready(m)
        return state, time.perf_counter() - t0

    state, wall = timed(state)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            state, profiled = timed(state)
        total, count = op_times(trace_dir)
    busy = sum(total.values())
    kinds: dict[str, float] = collections.Counter()
    for name, t in total.items():
        kinds[kind_of(name)] += t
    threads = os.cpu_count() or 1
    report = {
        "config": args.config,
        "overrides": args.set,
        "batch_size": cfg.train.batch_size,
        "steps_timed": steps,
        "first_call_s": round(first, 3),
        "wall_s_per_step": round(wall / steps, 6),
        "profiled_s_per_step": round(profiled / steps, 6),
        "busy_share": round(busy / (profiled * threads), 3),
        "kinds": {k: round(v / busy, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "ops": [
            {
                "name": name,
                "kind": kind_of(name),
                "share": round(t / busy, 3),
                "us_per_step": round(1e6 * t / steps, 1),
                "calls_per_step": round(count[name] / steps, 2),
            }
            for name, t in sorted(total.items(), key=lambda kv: -kv[1])[: args.top]
        ],
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }
    for k, v in report["kinds"].items():
        print(f"{k:15s} {100 * v:5.1f} %", file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
