// One minibatch step of negative sampling with plain SGD on the CPU, fused: the explicit
// rule of sgjax.outputs.negative (logistic terms over shared output rows) for word2vec.c's
// skip-gram orientation with negatives shared per centre, and for CBOW, then the update.
//
// The same step as the XLA program of sgjax.train (a minibatch: every example's gradient
// is taken at the parameters before the step, then all are added), in two phases, each
// split over XLA's intra-op thread pool:
//   1. per example (examples split into contiguous chunks): scores u = h . v'_s of its rows
//      s = [centre, negatives], errors e = w (s(u) - t), EH = sum_s e_s v'_s and the
//      output rows' gradients e_s h, into per-example buffers;
//   2. the updates W[row] += scale_W g and W_out[row] += scale_Wout g, in place (the
//      outputs alias the inputs); part p of P applies the rows with row % P == p, each in
//      example order, so the result does not depend on the number of threads.
// E (the loss) is summed as in sgjax.outputs.logistic.logistic_terms.
//
// mode 0: skip-gram, word2vec.c's orientation: each real context slot c of an example
//         is a hidden vector h_c = W[context_c] scoring the rows [centre, negatives]
//         (a negative equal to the centre is skipped); W[context_c] gets EH_c.
// mode 1: CBOW, h = mean of the real context rows; every context row gets EH (word2vec.c)
// mode 2: CBOW, h = mean; every context row gets EH / C (the paper's gradient)
// mode 3: CBOW, h = sum of the real context rows; every context row gets EH
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

// -w log s(x) = max(-x, 0) + log(1 + a) and the error w (s(u) - t), x = (2t - 1) u,
// a = exp(-|x|), from one exponential (as sgjax.outputs.logistic.logistic_terms); the
// logarithm is left to the caller, which takes it once of the product of a hidden vector's
// (1 + a) (at most 2^64 for its <= 64 terms).
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

struct Step {
  float* w;
  float* wo;
  const int32_t *cen, *ctx, *msk, *neg;
  int64_t V, N, B, C, K, S, mode, gw_rows;
  float* gW;   // (B, gw_rows, N): W's gradient rows (skip-gram: one per slot; CBOW: EH)
  float* gWo;  // (B, S, N): W_out's gradient rows
  float* Eb;   // (B,): each example's E

  int32_t out_row(int64_t b, int64_t s) const { return s == 0 ? cen[b] : neg[b * K + s - 1]; }
  // a row of the example's terms: a negative equal to the centre is skipped
  bool used(int64_t b, int64_t s) const { return s == 0 || neg[b * K + s - 1] != cen[b]; }
  bool real(int64_t b) const { return cen[b] >= 0 && cen[b] < V; }

  // phase 1 for example b; h: N floats of scratch
  void rule(int64_t b, float* h) const {
    float* gwo = gWo + b * S * N;
    float* gw = gW + b * gw_rows * N;
    std::memset(gwo, 0, sizeof(float) * S * N);
    Eb[b] = 0.f;
    if (!real(b)) return;
    const int32_t* row_ctx = ctx + b * C;
    const int32_t* row_msk = msk + b * C;
    float E = 0.f;
    if (mode == 0) {
      for (int64_t j = 0; j < C; ++j) {
        if (!row_msk[j]) continue;
        const float* hj = w + static_cast<int64_t>(row_ctx[j]) * N;
        E += terms(b, hj, gw + j * N, gwo);
      }
    } else {
      int64_t n = 0;
      std::memset(h, 0, sizeof(float) * N);
      for (int64_t j = 0; j < C; ++j) {
        if (!row_msk[j]) continue;
        axpy(1.f, w + static_cast<int64_t>(row_ctx[j]) * N, h, N);
        ++n;
      }
      if (n == 0) return;
      const float inv = 1.f / static_cast<float>(n);
      if (mode != 3)
        for (int64_t i = 0; i < N; ++i) h[i] *= inv;
      E = terms(b, h, gw, gwo);
      if (mode == 2)
        for (int64_t i = 0; i < N; ++i) gw[i] *= inv;
    }
    Eb[b] = E;
  }

  // one hidden vector h against the example's rows: E, EH into eh, e_s h into gwo. The S
  // scores first, then their exponentials, then the updates: the S dot products and
  // exponentials are independent, so they overlap instead of each waiting on the last.
  float terms(int64_t b, const float* h, float* eh, float* gwo) const {
    constexpr int64_t kMaxS = 64;
    float u[kMaxS], e[kMaxS];
    const float* v[kMaxS];
    for (int64_t s = 0; s < S; ++s) {
      v[s] = wo + static_cast<int64_t>(out_row(b, s)) * N;
      u[s] = dot(h, v[s], N);
    }
    float E = 0.f, prod = 1.f;
    for (int64_t s = 0; s < S; ++s) {
      float one_a;
      const float Es = term(u[s], s == 0 ? 1.f : 0.f, &e[s], &one_a);
      if (!used(b, s)) {
        e[s] = 0.f;
        continue;
      }
      E += Es;
      prod *= one_a;
    }
    std::memset(eh, 0, sizeof(float) * N);
    for (int64_t s = 0; s < S; ++s) {
      if (e[s] == 0.f) continue;
      axpy(e[s], v[s], eh, N);
      axpy(e[s], h, gwo + s * N, N);
    }
    return E + std::log(prod);
  }

  // phase 2: the rows r with r % parts == part, in example order
  void apply(int64_t part, int64_t parts, float scale_w, float scale_wo) const {
    for (int64_t b = 0; b < B; ++b) {
      if (!real(b)) continue;
      for (int64_t j = 0; j < C; ++j) {
        const int32_t r = ctx[b * C + j];
        if (!msk[b * C + j] || r % parts != part) continue;
        const float* g = gW + (b * gw_rows + (mode == 0 ? j : 0)) * N;
        axpy(scale_w, g, w + static_cast<int64_t>(r) * N, N);
      }
      for (int64_t s = 0; s < S; ++s) {
        const int32_t r = out_row(b, s);
        if (!used(b, s) || r % parts != part) continue;
        axpy(scale_wo, gWo + (b * S + s) * N, wo + static_cast<int64_t>(r) * N, N);
      }
    }
  }
};

ffi::Error NsStepImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> W, ffi::Buffer<ffi::F32> Wout,
                      ffi::Buffer<ffi::S32> center, ffi::Buffer<ffi::S32> context,
                      ffi::Buffer<ffi::S32> mask, ffi::Buffer<ffi::S32> negatives,
                      ffi::Buffer<ffi::F32> scales, ffi::ResultBuffer<ffi::F32> W_new,
                      ffi::ResultBuffer<ffi::F32> Wout_new, ffi::ResultBuffer<ffi::F32> E_out,
                      int64_t mode) {
  const auto wd = W.dimensions();
  Step st;
  st.V = wd[0];
  st.N = wd[1];
  st.B = center.dimensions()[0];
  st.C = context.dimensions()[1];
  st.K = negatives.dimensions()[1];
  st.S = 1 + st.K;
  st.mode = mode;
  st.gw_rows = mode == 0 ? st.C : 1;
  if (Wout.dimensions()[0] != st.V || Wout.dimensions()[1] != st.N || mode < 0 || mode > 3 ||
      st.S > 64) {
    return ffi::Error::InvalidArgument("sgjax_ns_step: W and W_out differ, a bad mode or K > 63");
  }
  const int64_t VN = st.V * st.N;
  st.w = W_new->typed_data();
  st.wo = Wout_new->typed_data();
  if (st.w != W.typed_data()) std::memcpy(st.w, W.typed_data(), sizeof(float) * VN);
  if (st.wo != Wout.typed_data()) std::memcpy(st.wo, Wout.typed_data(), sizeof(float) * VN);
  st.cen = center.typed_data();
  st.ctx = context.typed_data();
  st.msk = mask.typed_data();
  st.neg = negatives.typed_data();
  // scratch kept between calls, one set per calling thread
  thread_local std::vector<float> gW, gWo, Eb;
  gW.resize(st.B * st.gw_rows * st.N);
  gWo.resize(st.B * st.S * st.N);
  Eb.resize(st.B);
  st.gW = gW.data();
  st.gWo = gWo.data();
  st.Eb = Eb.data();

  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), st.B));
  parallel_for(pool, parts, [&](int64_t p) {
    std::vector<float> h(st.N);
    for (int64_t b = st.B * p / parts; b < st.B * (p + 1) / parts; ++b) st.rule(b, h.data());
  });
  const float scale_w = scales.typed_data()[0], scale_wo = scales.typed_data()[1];
  parallel_for(pool, parts, [&](int64_t p) { st.apply(p, parts, scale_w, scale_wo); });
  float E = 0.f;
  for (int64_t b = 0; b < st.B; ++b) E += st.Eb[b];
  E_out->typed_data()[0] = E;
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SgjaxNsStep, NsStepImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W_out
                                  .Arg<ffi::Buffer<ffi::S32>>()  // center (B,)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // context (B, C)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // mask (B, C)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // negatives (B, K)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scales (2,)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // W
                                  .Ret<ffi::Buffer<ffi::F32>>()  // W_out
                                  .Ret<ffi::Buffer<ffi::F32>>()  // E ()
                                  .Attr<int64_t>("mode"));
