"""Where the fused CPU kernel's time goes: its two phases (the rule per example, the row
updates) timed apart, on realtext-v1's examples, with 1 or more threads.

A C++ driver includes ``sgjax/kernels/logistic_step.cc`` and calls ``Step::rule`` and
``Step::apply`` on the examples of ``--examples`` centres (subsampled as word2vec.c does,
windows b ~ U{1..5}, 5 negatives from the unigram^0.75 distribution), B at a time, the
threads meeting at a spinning barrier between the phases (the kernel's own
``parallel_phases`` runs inside XLA; this isolates the phases from XLA's ops and pool).
``--small-vocab K`` folds every row index into the first K rows (tables that fit in L2): the
arithmetic without the random reads. Prints one JSON object: per (mode, threads) the
microseconds per centre of each phase, and a checksum of the tables (equal for every
thread count: the result does not depend on the parts).

    python scripts/kernel_phases.py             # skip-gram (mode 0), CBOW (1); 1 and 2 threads
    python scripts/kernel_phases.py --small-vocab 512
"""

from __future__ import annotations

import argparse
import collections
import json
import lzma
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgjax import kernels  # noqa: E402

DRIVER = r"""
#include "%(source)s"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
int main(int argc, char** argv) {
  FILE* fh = fopen(argv[1], "rb");
  int64_t hdr[4];
  if (fread(hdr, 8, 4, fh) != 4) return 2;
  const int64_t V = hdr[0], n = hdr[1], C = hdr[2], S = hdr[3], N = 100;
  std::vector<int32_t> ctx(n * C), msk(n * C), rows(n * S), used(n * S);
  std::vector<float> tg(n * S), off(n * S, 0.f);
  if (fread(ctx.data(), 4, n * C, fh) + fread(msk.data(), 4, n * C, fh) +
      fread(rows.data(), 4, n * S, fh) + fread(tg.data(), 4, n * S, fh) +
      fread(used.data(), 4, n * S, fh) != static_cast<size_t>(n * (2 * C + 3 * S))) return 2;
  const int64_t B = atoi(argv[2]);
  const int threads = atoi(argv[3]), mode = atoi(argv[4]), small = atoi(argv[5]);
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
      st.ctx = ctx.data() + b0 * C; st.msk = msk.data() + b0 * C;
      st.rows = rows.data() + b0 * S; st.used = used.data() + b0 * S;
      st.t = tg.data() + b0 * S; st.off = off.data() + b0 * S;
      st.V = V; st.R = V; st.N = N; st.B = B; st.C = C; st.S = S; st.mode = mode;
      st.gw_rows = gw_rows; st.damp = false;
      st.gW = gW.data(); st.gWo = gWo.data(); st.Eb = Eb.data();
      st.hB = hB.data(); st.eB = eB.data();
      const auto a = std::chrono::steady_clock::now();
      for (int64_t b = B * p / threads; b < B * (p + 1) / threads; ++b) st.rule(b, sc);
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


def examples(n: int, seed: int = 0, window: int = 5, negatives: int = 5) -> tuple:
    """realtext-v1's first n centres after subsampling (1e-3, min_count 5): contexts (n, 2w),
    their mask, the rows [centre, negatives] (n, 1 + K), targets and used flags."""
    text = lzma.open(ROOT / "sgjax" / "data" / "realtext-v1.txt.xz", "rt", encoding="utf-8")
    tokens = text.read().split()
    counts = collections.Counter(tokens)
    words = [w for w, c in counts.most_common() if c >= 5]
    index = {w: i for i, w in enumerate(words)}
    f = np.array([counts[w] for w in words], np.float64)
    ids = np.array([index.get(w, -1) for w in tokens])
    ids = ids[ids >= 0]
    rng = np.random.default_rng(seed)
    t = 1e-3 * f.sum()
    keep = np.minimum(1.0, (np.sqrt(f / t) + 1) * t / f)
    ids = ids[rng.random(ids.size) < keep[ids]]
    n = min(n, ids.size)
    C = 2 * window
    ctx = np.zeros((n, C), np.int32)
    msk = np.zeros((n, C), np.int32)
    b = rng.integers(1, window + 1, n)
    for o in range(1, window + 1):
        for sign, col in ((-1, window - o), (1, window - 1 + o)):
            j = np.arange(n) + sign * o
            ok = (j >= 0) & (j < ids.size) & (o <= b)
            ctx[ok, col] = ids[j[ok]]
            msk[ok, col] = 1
    p = f**0.75 / (f**0.75).sum()
    neg = rng.choice(len(f), size=(n, negatives), p=p)
    rows = np.concatenate([ids[:n, None], neg], 1).astype(np.int32)
    tg = np.zeros(rows.shape, np.float32)
    tg[:, 0] = 1
    used = np.ones(rows.shape, np.int32)
    used[:, 1:] = neg != ids[:n, None]
    return len(f), ctx, msk, rows, tg, used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=400_000)
    ap.add_argument("--modes", type=int, nargs="+", default=[0, 1], help="0 skip-gram, 1 CBOW")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, nargs="+", default=[320, 640], help="per mode")
    ap.add_argument("--small-vocab", type=int, default=0)
    args = ap.parse_args()
    import jax  # the FFI headers' location

    V, ctx, msk, rows, tg, used = examples(args.examples)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "examples.bin"
        with open(data, "wb") as f:
            f.write(np.array([V, len(ctx), ctx.shape[1], rows.shape[1]], np.int64).tobytes())
            for a in (ctx, msk, rows, tg, used):
                f.write(np.ascontiguousarray(a).tobytes())
        src = Path(tmp) / "driver.cc"
        src.write_text(DRIVER % {"source": kernels.SOURCE})
        exe = Path(tmp) / "driver"
        flags = [f for f in kernels._flags() if f not in ("-shared", "-fPIC")]
        cmd = ["g++", *flags, f"-I{jax.ffi.include_dir()}", str(src), "-o", str(exe), "-lpthread"]
        subprocess.run(cmd, check=True, capture_output=True)
        out = []
        for mode, batch in zip(args.modes, args.batch, strict=False):
            for threads in args.threads:
                run = [
                    str(exe),
                    str(data),
                    str(batch),
                    str(threads),
                    str(mode),
                    str(args.small_vocab),
                ]
                p1, p2, checksum = subprocess.run(
                    run, check=True, capture_output=True, text=True
                ).stdout.split()
                row = {
                    "mode": mode,
                    "batch": batch,
                    "threads": threads,
                    "rule_us": float(p1),
                    "update_us": float(p2),
                    "total_us": float(p1) + float(p2),
                    "checksum": float(checksum),
                }
                print(row, file=sys.stderr)
                out.append(row)
    print(
        json.dumps(
            {
                "examples": len(ctx),
                "vocab": V,
                "small_vocab": args.small_vocab,
                "cpu": re.sub(r"\s+", " ", kernels._cpu().split("flags")[0])[:120],
                "runs": out,
            }
        )
    )


if __name__ == "__main__":
    main()
