"""Where the fused CPU kernel's time goes: its two phases (the rule per example, the row
updates) timed apart, on realtext-v1's examples, with 1 or more threads.

The examples are training's own: the host batches of epoch 0 of the defaults' run
(:func:`sgjax.experiment.build`, ``Run.batches``: subsampling, windows, window buckets),
negatives drawn by :func:`sgjax.model.complete` and the kernel's rows by
``sgjax.kernels.ROWS`` (skip-gram: mode 0, batches of 320; CBOW: mode 1, 640; ``--output``
the layer, damped where its defaults damp: hierarchical softmax). A C++
driver includes ``sgjax/kernels/logistic_step.cc`` and calls ``Step::rule`` and
``Step::apply`` on them batch by batch, the threads meeting at a spinning barrier between
the phases (the kernel's own ``parallel_phases`` runs inside XLA; this isolates the phases
from XLA's ops and pool). ``--small-vocab K`` folds every row index into the first K rows
(tables that fit in L2): the arithmetic without the random reads. Prints one JSON object:
per (mode, threads) the microseconds per centre of each phase, and a checksum of the tables
(equal for every thread count: the result does not depend on the parts).

    python scripts/kernel_phases.py             # skip-gram (mode 0), CBOW (1); 1 and 2 threads
    python scripts/kernel_phases.py --small-vocab 512
    python scripts/kernel_phases.py --output hierarchical
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgjax import kernels  # noqa: E402
from sgjax.config import load_config  # noqa: E402
from sgjax.experiment import build  # noqa: E402
from sgjax.model import complete  # noqa: E402

#: kernel mode -> the architecture whose defaults make its examples
ARCHITECTURES = {0: "skipgram", 1: "cbow"}

DRIVER = r"""
#include "%(source)s"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
int main(int argc, char** argv) {
  FILE* fh = fopen(argv[1], "rb");
  int64_t hdr[5];
  if (fread(hdr, 8, 5, fh) != 5) return 2;
  const int64_t V = hdr[0], n = hdr[1], C = hdr[2], S = hdr[3], N = hdr[4];
  std::vector<int32_t> ctx(n * C), msk(n * C), rows(n * S), used(n * S);
  std::vector<float> tg(n * S), off(n * S, 0.f);
  if (fread(ctx.data(), 4, n * C, fh) + fread(msk.data(), 4, n * C, fh) +
      fread(rows.data(), 4, n * S, fh) + fread(tg.data(), 4, n * S, fh) +
      fread(used.data(), 4, n * S, fh) != static_cast<size_t>(n * (2 * C + 3 * S))) return 2;
  std::unique_ptr<bool[]> mskb(new bool[n * C]), usedb(new bool[n * S]);  // the kernel's flags
  for (int64_t i = 0; i < n * C; ++i) mskb[i] = msk[i] != 0;
  for (int64_t i = 0; i < n * S; ++i) usedb[i] = used[i] != 0;
  const int64_t B = atoi(argv[2]);
  const int threads = atoi(argv[3]), mode = atoi(argv[4]), small = atoi(argv[5]);
  const bool damp = atoi(argv[6]) != 0;
  if (small > 0) {
    for (auto& x : ctx) x %%= small;
    for (auto& x : rows) x %%= small;
  }
  std::vector<float> w(V * N), wo(V * N, 0.f);
  std::mt19937 g(0);
  std::uniform_real_distribution<float> u(-0.005f, 0.005f);
  for (auto& x : w) x = u(g);
  const int64_t gw_rows = mode == 0 ? C : 1;
  std::vector<float> gW(B * N * gw_rows), gWo(B * S * N), Eb(B), hB(B * N), eB(B * S);
  std::vector<int32_t> nB(B);
  std::vector<float> kW(B * gw_rows), kWo(B * S), xW(V, 0.f), xWo(V, 0.f);
  std::atomic<int> count{0}, gen{0};
  auto barrier = [&] {
    const int g0 = gen.load();
    if (count.fetch_add(1) == threads - 1) {
      count.store(0);
      gen.fetch_add(1);
    } else {
      while (gen.load() == g0) std::this_thread::yield();
    }
  };
  const int64_t steps = n / B;
  double t1 = 0, t2 = 0;
  auto worker = [&](int p) {
    Scratch sc(C, S);
    for (int64_t i = 0; i < steps; ++i) {
      const int64_t b0 = i * B;
      Step st{};
      st.w = w.data(); st.wo = wo.data();
      st.ctx = ctx.data() + b0 * C; st.msk = mskb.get() + b0 * C;
      st.rows = rows.data() + b0 * S; st.used = usedb.get() + b0 * S;
      st.t = tg.data() + b0 * S; st.off = off.data() + b0 * S;
      st.V = V; st.R = V; st.N = N; st.B = B; st.C = C; st.S = S; st.mode = mode;
      st.gw_rows = gw_rows; st.damp = damp;
      st.kW = kW.data(); st.kWo = kWo.data(); st.xW = xW.data(); st.xWo = xWo.data();
      st.gW = gW.data(); st.gWo = gWo.data(); st.Eb = Eb.data();
      st.hB = hB.data(); st.nB = nB.data(); st.eB = eB.data();
      const auto a = std::chrono::steady_clock::now();
      for (int64_t b = B * p / threads; b < B * (p + 1) / threads; ++b) {
        if (mode != 0) st.hidden(b);  // (in the kernel: during the step before's phase 2)
        st.rule(b, sc);
      }
      barrier();
      const auto m = std::chrono::steady_clock::now();
      st.apply(p, threads, -0.025f, -0.025f, 0.025f);
      barrier();
      const auto e = std::chrono::steady_clock::now();
      if (p == 0) {
        t1 += std::chrono::duration<double>(m - a).count();
        t2 += std::chrono::duration<double>(e - m).count();
      }
    }
  };
  std::vector<std::thread> ts;
  for (int p = 1; p < threads; ++p) ts.emplace_back(worker, p);
  worker(0);
  for (auto& t : ts) t.join();
  double sum = 0;
  for (int64_t i = 0; i < V * N; ++i) sum += w[i] + wo[i];
  const double per = 1e6 / (steps * B);
  printf("%%.4f %%.4f %%.9g\n", t1 * per, t2 * per, sum);
}
"""


def examples(mode: int, n: int, output: str = "negative") -> tuple:
    """The first >= n examples of epoch 0 of the defaults' run of ``mode``'s architecture,
    as the kernel gets them: (vocabulary size, width, batch size, the arrays (contexts,
    mask, rows, targets, used) stacked over batches, whether the run damps its rows)."""
    sets = [f"model.architecture={ARCHITECTURES[mode]}", f"model.output={output}"]
    run = build(load_config(None, sets))
    model = run.spec.model

    @jax.jit
    def fill(key, ex):
        return kernels.ROWS[model.output](complete(key, ex, run.tables, model), run.tables)[:3]

    out, total = [], 0
    for i, batch in enumerate(run.batches(0)):
        ex = {k: batch[k] for k in ("center", "context", "mask")}
        rows, t, used = fill(jax.random.fold_in(run.state.key, i), ex)
        out.append([batch["context"], batch["mask"], rows, t, used])
        total += len(batch["center"])
        if total >= n:
            break
    arrays = [np.concatenate([np.asarray(o[k]) for o in out]) for k in range(5)]
    types = (np.int32, np.int32, np.int32, np.float32, np.int32)
    arrays = [a.astype(d) for a, d in zip(arrays, types, strict=True)]
    dim = run.state.params["W"].shape[1]
    return len(run.vocab), dim, len(out[0][0]), arrays, bool(run.spec.row_damping)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=400_000)
    ap.add_argument("--modes", type=int, nargs="+", default=[0, 1], help="0 skip-gram, 1 CBOW")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--small-vocab", type=int, default=0)
    ap.add_argument("--output", choices=sorted(kernels.ROWS), default="negative")
    args = ap.parse_args()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "driver.cc", Path(tmp) / "driver"
        src.write_text(DRIVER % {"source": kernels.SOURCE})
        subprocess.run(
            [*kernels.compile_command(src, exe, shared=False), "-lpthread"],
            check=True,
            capture_output=True,
        )
        for mode in args.modes:
            V, dim, batch, arrays, damp = examples(mode, args.examples, args.output)
            n, C, S = len(arrays[0]), arrays[0].shape[1], arrays[2].shape[1]
            data = Path(tmp) / f"examples-{mode}.bin"
            with open(data, "wb") as f:
                f.write(np.array([V, n, C, S, dim], np.int64).tobytes())
                for a in arrays:
                    f.write(np.ascontiguousarray(a).tobytes())
            for threads in args.threads:
                cmd = [exe, data, batch, threads, mode, args.small_vocab, int(damp)]
                p1, p2, checksum = subprocess.run(
                    [str(c) for c in cmd], check=True, capture_output=True, text=True
                ).stdout.split()
                row = {
                    "mode": mode,
                    "examples": n,
                    "vocab": V,
                    "batch": batch,
                    "threads": threads,
                    "damped": damp,
                    "rule_us": float(p1),
                    "update_us": float(p2),
                    "total_us": float(p1) + float(p2),
                    "checksum": float(checksum),
                }
                print(row, file=sys.stderr)
                out.append(row)
    cpu = re.sub(r"\s+", " ", kernels._cpu().split("flags")[0])[:120]
    summary = {"output": args.output, "small_vocab": args.small_vocab, "cpu": cpu, "runs": out}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
