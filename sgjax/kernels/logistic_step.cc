// One minibatch step of a logistic output layer (negative sampling, NCE, hierarchical
// softmax) with plain SGD on the CPU, fused: the explicit rule of
// sgjax.outputs.logistic.logistic_rows for word2vec.c's skip-gram orientation and for CBOW,
// optionally row-damped (sgjax.rules.damp_rows), then the update.
//
// Every example b has S output rows rows[b, s] of W_out shared by its hidden vectors, with
// targets t[b, s] (1: the output word / a Huffman branch of code 0; 0: a negative or a
// branch of code 1), a 0/1 `used` flag (a negative equal to the output word, a padded path
// entry: 0) and a score offset (NCE's -log(K P_n(w)); 0 otherwise). Its hidden vectors:
//   mode 0: skip-gram, word2vec.c's orientation: h_c = W[context_c] for each real slot c;
//           W[context_c] gets EH_c;
//   mode 1: CBOW, h = mean of the real context rows; every context row gets EH (word2vec.c);
//   mode 2: CBOW, h = mean; every context row gets EH / C (the paper's gradient);
//   mode 3: CBOW, h = sum of the real context rows; every context row gets EH.
//
// The same step as the XLA program of sgjax.train (a minibatch: every example's gradient
// at the parameters before the step, then all added), in two phases, each split over XLA's
// intra-op thread pool:
//   1. per example (contiguous chunks of examples): scores u = h . v'_s + offset, errors
//      e = s(u) - t, EH = sum_s e_s v'_s and the output rows' gradients sum_h e_hs h into
//      per-example buffers (and, for damping, each entry's curvature along its row);
//   2. per part p of P, the rows r with r % P == p: (damping: the row's total curvature
//      x = lr sum k and the factor (1 - exp(-x)) / x;) W[r] += scale_W g and
//      W_out[r] += scale_Wout g in example order, so the result does not depend on P.
// E is summed as sgjax.outputs.logistic.logistic_terms sums it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kMaxS = 64;  // output rows per example

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline void axpy(float c, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += c * x[i];
}

// -log s(x) = max(-x, 0) + log(1 + a) and the error s(u) - t, x = (2t - 1) u,
// a = exp(-|x|), from one exponential; the logarithm is left to the caller, which takes it
// once of the product of a hidden vector's (1 + a) (at most 2^64 for its <= 64 terms).
inline float term(float u, float t, float* e, float* one_a) {
  const float x = (2.f * t - 1.f) * u;
  const float a = std::exp(-std::fabs(x));
  *one_a = 1.f + a;
  *e = (1.f - 2.f * t) * ((x >= 0.f ? a : 1.f) / *one_a);  // (1 - 2t) s(-x)
  return std::fmax(-x, 0.f);
}

// f(0), ..., f(n - 1) on XLA's thread pool and the calling thread; returns when all ran.
template <typename F>
void parallel_for(ffi::ThreadPool& pool, int64_t n, const F& f) {
  std::atomic<int64_t> left(n - 1);
  std::mutex m;
  std::condition_variable cv;
  for (int64_t i = 1; i < n; ++i) {
    pool.Schedule([&, i] {
      f(i);
      if (left.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(m);
        cv.notify_one();
      }
    });
  }
  f(0);
  for (int spin = 0; spin < 20000 && left.load() > 0; ++spin) std::this_thread::yield();
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return left.load() == 0; });
}

inline float damping(float x) {  // sgjax.rules.damp_rows
  return x > 1e-6f ? -std::expm1(-x) / x : 1.f - 0.5f * x;
}

struct Step {
  float* w;
  float* wo;
  const int32_t *ctx, *msk, *rows, *used;
  const float *t, *off;
  int64_t V, R, N, B, C, S, mode, gw_rows;
  bool damp;
  float* gW;   // (B, gw_rows, N): W's gradient rows (skip-gram: one per slot; CBOW: EH)
  float* gWo;  // (B, S, N): W_out's gradient rows
  float* kW;   // (B, gw_rows): curvature of W's entries (damping)
  float* kWo;  // (B, S): curvature of W_out's entries (damping)
  float* Eb;   // (B,): each example's E
  float* xW;   // (V,): per row of W, lr x its entries' total curvature (zero between calls)
  float* xWo;  // (R,)

  // a term's row: used and a row of W_out (an index out of range is dropped, as XLA's
  // scatter drops it); a context slot: real and a row of W
  bool use(int64_t b, int64_t s) const {
    const int32_t r = rows[b * S + s];
    return used[b * S + s] != 0 && r >= 0 && r < R;
  }
  bool real(int64_t b, int64_t j) const {
    const int32_t r = ctx[b * C + j];
    return msk[b * C + j] != 0 && r >= 0 && r < V;
  }

  // phase 1 for example b; h: N floats of scratch
  void rule(int64_t b, float* h) const {
    float* gwo = gWo + b * S * N;
    float* gw = gW + b * gw_rows * N;
    std::memset(gwo, 0, sizeof(float) * S * N);
    if (damp) {
      std::fill(kWo + b * S, kWo + (b + 1) * S, 0.f);
      std::fill(kW + b * gw_rows, kW + (b + 1) * gw_rows, 0.f);
    }
    Eb[b] = 0.f;
    float vv[kMaxS];  // |v'_s|^2 of the example's rows, once (damping)
    if (damp)
      for (int64_t s = 0; s < S; ++s) {
        const float* v = wo + static_cast<int64_t>(rows[b * S + s]) * N;
        vv[s] = use(b, s) ? dot(v, v, N) : 0.f;
      }
    const int32_t* row_ctx = ctx + b * C;
    float E = 0.f;
    if (mode == 0) {
      for (int64_t j = 0; j < C; ++j) {
        if (!real(b, j)) continue;
        const float* hj = w + static_cast<int64_t>(row_ctx[j]) * N;
        E += terms(b, hj, gw + j * N, gwo, vv, damp ? kW + b * gw_rows + j : nullptr);
      }
    } else {
      int64_t n = 0;
      std::memset(h, 0, sizeof(float) * N);
      for (int64_t j = 0; j < C; ++j) {
        if (!real(b, j)) continue;
        axpy(1.f, w + static_cast<int64_t>(row_ctx[j]) * N, h, N);
        ++n;
      }
      if (n == 0) return;
      const float inv = 1.f / static_cast<float>(n);
      if (mode != 3)
        for (int64_t i = 0; i < N; ++i) h[i] *= inv;
      E = terms(b, h, gw, gwo, vv, nullptr);  // CBOW's W rows are left undamped
      if (mode == 2)
        for (int64_t i = 0; i < N; ++i) gw[i] *= inv;
    }
    Eb[b] = E;
  }

  // One hidden vector h against the example's rows: E, EH into eh, e_s h added to gwo (and
  // the curvatures: s'(u) |h|^2 to each row's entry, sum_s s'(u) vv_s into *k_h). The S
  // scores first, then their exponentials, then the updates: the dot products and
  // exponentials are independent, so they overlap instead of each waiting on the last.
  float terms(int64_t b, const float* h, float* eh, float* gwo, const float* vv,
              float* k_h) const {
    float u[kMaxS], e[kMaxS];
    const float* v[kMaxS];
    const int32_t* r = rows + b * S;
    for (int64_t s = 0; s < S; ++s) {
      v[s] = wo + static_cast<int64_t>(r[s]) * N;
      u[s] = use(b, s) ? dot(h, v[s], N) + off[b * S + s] : 0.f;
    }
    float E = 0.f, prod = 1.f;
    for (int64_t s = 0; s < S; ++s) {
      float one_a;
      const float Es = term(u[s], t[b * S + s], &e[s], &one_a);
      if (!use(b, s)) {
        e[s] = 0.f;
        continue;
      }
      E += Es;
      prod *= one_a;
    }
    if (damp) {
      const float hh = dot(h, h, N);
      float kh = 0.f;
      for (int64_t s = 0; s < S; ++s) {
        if (!use(b, s)) continue;
        const float a = std::fabs(e[s]);
        const float ks = a * (1.f - a);  // s'(u) = s(u) (1 - s(u))
        kWo[b * S + s] += ks * hh;
        kh += ks * vv[s];
      }
      if (k_h) *k_h += kh;
    }
    std::memset(eh, 0, sizeof(float) * N);
    for (int64_t s = 0; s < S; ++s) {
      if (e[s] == 0.f) continue;
      axpy(e[s], v[s], eh, N);
      axpy(e[s], h, gwo + s * N, N);
    }
    return E + std::log(prod);
  }

  // phase 2, the rows r with r % parts == part: their damping factors, then their updates
  void apply(int64_t part, int64_t parts, float scale_w, float scale_wo, float lr) const {
    if (damp) {  // lr x the total curvature of each row's entries
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < C; ++j) {
          const int32_t r = ctx[b * C + j];
          if (real(b, j) && r % parts == part)
            xW[r] += lr * kW[b * gw_rows + (mode == 0 ? j : 0)];
        }
        for (int64_t s = 0; s < S; ++s) {
          const int32_t r = rows[b * S + s];
          if (use(b, s) && r % parts == part) xWo[r] += lr * kWo[b * S + s];
        }
      }
    }
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = 0; j < C; ++j) {
        const int32_t r = ctx[b * C + j];
        if (!real(b, j) || r % parts != part) continue;
        const float c = damp && mode == 0 ? scale_w * damping(xW[r]) : scale_w;
        axpy(c, gW + (b * gw_rows + (mode == 0 ? j : 0)) * N, w + static_cast<int64_t>(r) * N,
             N);
      }
      for (int64_t s = 0; s < S; ++s) {
        const int32_t r = rows[b * S + s];
        if (!use(b, s) || r % parts != part) continue;
        const float c = damp ? scale_wo * damping(xWo[r]) : scale_wo;
        axpy(c, gWo + (b * S + s) * N, wo + static_cast<int64_t>(r) * N, N);
      }
    }
    if (damp) {  // back to zero for the next call (padding entries' indices are not rows)
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < C; ++j)
          if (real(b, j) && ctx[b * C + j] % parts == part) xW[ctx[b * C + j]] = 0.f;
        for (int64_t s = 0; s < S; ++s)
          if (use(b, s) && rows[b * S + s] % parts == part) xWo[rows[b * S + s]] = 0.f;
      }
    }
  }
};

ffi::Error LogisticStepImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> W,
                            ffi::Buffer<ffi::F32> Wout, ffi::Buffer<ffi::S32> context,
                            ffi::Buffer<ffi::S32> mask, ffi::Buffer<ffi::S32> rows,
                            ffi::Buffer<ffi::F32> targets, ffi::Buffer<ffi::S32> used,
                            ffi::Buffer<ffi::F32> offset, ffi::Buffer<ffi::F32> scales,
                            ffi::ResultBuffer<ffi::F32> W_new,
                            ffi::ResultBuffer<ffi::F32> Wout_new,
                            ffi::ResultBuffer<ffi::F32> E_out, int64_t mode, int64_t damp) {
  Step st;
  st.V = W.dimensions()[0];
  st.N = W.dimensions()[1];
  st.R = Wout.dimensions()[0];
  st.B = context.dimensions()[0];
  st.C = context.dimensions()[1];
  st.S = rows.dimensions()[1];
  st.mode = mode;
  st.damp = damp != 0;
  st.gw_rows = mode == 0 ? st.C : 1;
  if (Wout.dimensions()[1] != st.N || mode < 0 || mode > 3 || st.S > kMaxS) {
    return ffi::Error::InvalidArgument(
        "sgjax_logistic_step: W and W_out differ in width, a bad mode, or more than 64 rows");
  }
  st.w = W_new->typed_data();
  st.wo = Wout_new->typed_data();
  if (st.w != W.typed_data()) std::memcpy(st.w, W.typed_data(), sizeof(float) * st.V * st.N);
  if (st.wo != Wout.typed_data())
    std::memcpy(st.wo, Wout.typed_data(), sizeof(float) * st.R * st.N);
  st.ctx = context.typed_data();
  st.msk = mask.typed_data();
  st.rows = rows.typed_data();
  st.t = targets.typed_data();
  st.used = used.typed_data();
  st.off = offset.typed_data();
  // scratch kept between calls, one set per calling thread (xW, xWo: zero between calls)
  thread_local std::vector<float> gW, gWo, kW, kWo, Eb, xW, xWo;
  gW.resize(st.B * st.gw_rows * st.N);
  gWo.resize(st.B * st.S * st.N);
  Eb.resize(st.B);
  if (st.damp) {
    kW.resize(st.B * st.gw_rows);
    kWo.resize(st.B * st.S);
    if (static_cast<int64_t>(xW.size()) < st.V) xW.assign(st.V, 0.f);
    if (static_cast<int64_t>(xWo.size()) < st.R) xWo.assign(st.R, 0.f);
  }
  st.gW = gW.data();
  st.gWo = gWo.data();
  st.kW = kW.data();
  st.kWo = kWo.data();
  st.Eb = Eb.data();
  st.xW = xW.data();
  st.xWo = xWo.data();

  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), st.B));
  parallel_for(pool, parts, [&](int64_t p) {
    std::vector<float> h(st.N);
    for (int64_t b = st.B * p / parts; b < st.B * (p + 1) / parts; ++b) st.rule(b, h.data());
  });
  const float* sc = scales.typed_data();
  parallel_for(pool, parts, [&](int64_t p) { st.apply(p, parts, sc[0], sc[1], sc[2]); });
  float E = 0.f;
  for (int64_t b = 0; b < st.B; ++b) E += st.Eb[b];
  E_out->typed_data()[0] = E;
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SgjaxLogisticStep, LogisticStepImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W (V, N)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W_out (R, N)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // context (B, C)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // mask (B, C)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // rows (B, S)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // targets t (B, S)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // used (B, S)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // offset (B, S)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scale_W, scale_Wout, lr
                                  .Ret<ffi::Buffer<ffi::F32>>()  // W
                                  .Ret<ffi::Buffer<ffi::F32>>()  // W_out
                                  .Ret<ffi::Buffer<ffi::F32>>()  // E ()
                                  .Attr<int64_t>("mode")
                                  .Attr<int64_t>("damp"));
