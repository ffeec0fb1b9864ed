// One minibatch step of a logistic output layer (negative sampling, NCE, hierarchical
// softmax) with plain SGD on the CPU, fused: the explicit rule of
// sgjax.outputs.logistic.logistic_rows for word2vec.c's skip-gram orientation and for CBOW,
// optionally row-damped (sgjax.rules.damp_rows), then the update.
//
// Every example b has S output rows rows[b, s] of W_out shared by its hidden vectors, with
// targets t[b, s] (1: the output word / a Huffman branch of code 0; 0: a negative or a
// branch of code 1), a 0/1 `used` flag (a negative equal to the output word, a padded path
// entry: 0) and a score offset (NCE's -log(K P_n(w)); 0 otherwise). Sampled layers (t and
// used given as (1,): derived) have rows [output word, negatives...]: t = 1 for slot 0 and
// 0 after it, used = slot 0 and the negatives that differ from it (sgjax.outputs.sampling.
// pair_terms), which XLA then neither makes nor stores. Its hidden vectors:
//   mode 0: skip-gram, word2vec.c's orientation: h_c = W[context_c] for each real slot c;
//           W[context_c] gets EH_c;
//   mode 1: CBOW, h = mean of the real context rows; every context row gets EH (word2vec.c);
//   mode 2: CBOW, h = mean; every context row gets EH / C (the paper's gradient);
//   mode 3: CBOW, h = sum of the real context rows; every context row gets EH.
//
// The same step as the XLA program of sgjax.train (a minibatch: every example's gradient
// at the parameters before the step, then all added), for each of a call's steps in turn
// (sgjax.train's scan of train.steps_per_call steps, in one custom call), in two phases, on
// XLA's intra-op thread pool (parallel_steps: one wake-up of its threads per call):
//   1. per example (contiguous chunks of examples): scores u = h . v'_s + offset, errors
//      e = s(u) - t, EH = sum_s e_s v'_s and (skip-gram) the output rows' gradients
//      sum_h e_hs h into per-example buffers, or (CBOW) e, whose products with h phase 2
//      forms (and, for damping, each entry's curvature along its row); the products are
//      blocked (scores, spread) so that each row is read once per example;
//   2. per part p of P, the rows p owns (Step::owns: one table per core): (damping: the
//      row's total curvature x = lr sum k and the factor (1 - exp(-x)) / x;)
//      W[r] += scale_W g (rows r >= rare_from: x rare_scale, sgjax.rules.scale_rare_rows)
//      and W_out[r] += scale_Wout g in example order, so the result does
//      not depend on P. CBOW's h of the next step (Step::hidden: it reads W alone) are made
//      here too, by the parts that are done, once W's rows are (parallel_steps' pre): the
//      core that finishes first (hierarchical softmax: W's, with the fewer updates) would
//      otherwise wait for the other.
// E is summed as sgjax.outputs.logistic.logistic_terms sums it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>


#include "blocked.h"
#include "parallel.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using sgjax_blocked::kLanes;
using sgjax_blocked::kSB;
using sgjax_blocked::scores;
using sgjax_blocked::spread;
using sgjax_blocked::terms;
using sgjax_parallel::parallel_steps;

namespace {

constexpr int64_t kMaxS = 64;  // output rows per example

inline void axpy(float c, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += c * x[i];
}

inline float damping(float x) {  // sgjax.rules.damp_rows
  return x > 1e-6f ? -std::expm1(-x) / x : 1.f - 0.5f * x;
}

// Per-thread scratch of phase 1: an example's used rows (sr: their slots; V: W_out's rows;
// G: their gradient rows), hidden vectors (jr: their slots; H; EH: their EH rows), |v'|^2,
// scores u and errors e (J x M).
struct Scratch {
  std::vector<int64_t> sr, jr;
  std::vector<const float*> H, V;
  std::vector<float*> EH, G;
  std::vector<float> vv, hh, tm, om, u, e, ec;
  // tm, om, u, e: padded by a vector for terms()
  Scratch(int64_t C, int64_t S)
      : sr(S), jr(std::max<int64_t>(C, 1)), H(std::max<int64_t>(C, 1)), V(S),
        EH(std::max<int64_t>(C, 1)), G(S), vv(S), hh(std::max<int64_t>(C, 1)), tm(S + kLanes),
        om(S + kLanes),
        u(std::max<int64_t>(C, 1) * S + kLanes), e(std::max<int64_t>(C, 1) * S + kLanes),
        ec(std::max<int64_t>(C, 1) * kSB) {}
};

// One row update of phase 2: dst += c src (damped: c x the row's factor, from its slot x).
struct Update {
  float* dst;
  const float* src;
  float c;
  float* x;
};
constexpr int64_t kPrefetch = 8;  // updates ahead (measured: 4 to 16 within noise, 0 slower)

struct Step {
  float* w;
  float* wo;
  const int32_t *ctx, *rows;
  const bool *msk, *used;
  const float *t, *off;  // off: null for no offsets; t, used: null for derived (sampled)
  int64_t V, R, N, B, C, S, mode, gw_rows;
  bool damp;
  int64_t rare_from;  // W's rows from here on (rarer words) update with scale_w x rare_scale
  float rare_scale;
  float* gW;   // (B, gw_rows, N): W's gradient rows (skip-gram: one per slot; CBOW: EH)
  float* gWo;  // (B, S, N): W_out's gradient rows
  float* kW;   // (B, gw_rows): curvature of W's entries (damping)
  float* kWo;  // (B, S): curvature of W_out's entries (damping)
  float* Eb;   // (B,): each example's E
  float* hB;   // (B, N): CBOW's hidden vector h of each example (Step::hidden)
  int32_t* nB;  // (B,): CBOW: each example's count of real context rows
  float* eB;   // (B, S): CBOW's errors e_s of each example (W_out's gradient rows: e_s h)
  float* xW;   // (V,): per row of W, lr x its entries' total curvature (zero between calls)
  float* xWo;  // (R,)

  // a term's row: used and a row of W_out (an index out of range is dropped, as XLA's
  // scatter drops it); a context slot: real and a row of W
  bool use(int64_t b, int64_t s) const {
    const int32_t r = rows[b * S + s];
    const bool u = used ? used[b * S + s] : s == 0 || r != rows[b * S];
    return u && r >= 0 && r < R;
  }
  bool real(int64_t b, int64_t j) const {
    const int32_t r = ctx[b * C + j];
    return msk[b * C + j] && r >= 0 && r < V;
  }

  // CBOW's phase 1a for example b (it reads W alone): h, the mean (mode 3: sum) of its
  // real context rows, and their count
  void hidden(int64_t b) const {
    float* h = hB + b * N;
    std::memset(h, 0, sizeof(float) * N);
    const int32_t* row_ctx = ctx + b * C;
    int32_t n = 0;
    for (int64_t j = 0; j < C; ++j) {
      if (!real(b, j)) continue;
      axpy(1.f, w + static_cast<int64_t>(row_ctx[j]) * N, h, N);
      ++n;
    }
    nB[b] = n;
    if (n > 0 && mode != 3) {
      const float inv_n = 1.f / static_cast<float>(n);
      for (int64_t i = 0; i < N; ++i) h[i] *= inv_n;
    }
  }

  // phase 1 for example b (CBOW: after hidden(b)); sc: scratch of the calling thread
  void rule(int64_t b, Scratch& sc) const {
    float* gwo = gWo + b * S * N;
    float* gw = gW + b * gw_rows * N;
    if (damp) {
      std::fill(kWo + b * S, kWo + (b + 1) * S, 0.f);
      std::fill(kW + b * gw_rows, kW + (b + 1) * gw_rows, 0.f);
    }
    Eb[b] = 0.f;
    // the example's used rows, compacted: M of them, row sr[m] of the example
    int64_t M = 0;
    for (int64_t s = 0; s < S; ++s)
      if (use(b, s)) {
        sc.sr[M] = s;
        sc.V[M] = wo + static_cast<int64_t>(rows[b * S + s]) * N;
        sc.G[M] = gwo + s * N;
        ++M;
      }
    const int32_t* row_ctx = ctx + b * C;
    int64_t J = 0;
    float inv_n = 1.f;  // CBOW: 1 / its real context rows
    if (mode == 0) {  // the hidden vectors: the real context rows
      for (int64_t j = 0; j < C; ++j) {
        if (!real(b, j)) continue;
        sc.jr[J] = j;
        sc.H[J] = w + static_cast<int64_t>(row_ctx[j]) * N;
        sc.EH[J] = gw + j * N;
        ++J;
      }
      if (J == 0) {  // nothing to learn; phase 2 adds these zeros
        std::memset(gwo, 0, sizeof(float) * S * N);
        return;
      }
    } else {  // one hidden vector, made by hidden(b)
      float* h = hB + b * N;
      std::fill(eB + b * S, eB + (b + 1) * S, 0.f);
      const int32_t n = nB[b];
      if (n == 0) {
        std::memset(gw, 0, sizeof(float) * N);
        return;
      }
      inv_n = 1.f / static_cast<float>(n);
      sc.H[0] = h;
      sc.EH[0] = gw;
      J = 1;
    }
    if (M == 0) {
      for (int64_t j = 0; j < J; ++j) std::memset(sc.EH[j], 0, sizeof(float) * N);
      return;
    }
    float* u = sc.u.data();
    float* e = sc.e.data();
    // (damped: with |v'_s|^2 and |h|^2)
    scores(sc.H.data(), J, sc.V.data(), M, N, u, damp ? sc.vv.data() : nullptr,
           damp ? sc.hh.data() : nullptr);
    for (int64_t m = 0; m < M; ++m) {
      sc.tm[m] = t ? t[b * S + sc.sr[m]] : static_cast<float>(sc.sr[m] == 0);
      sc.om[m] = off ? off[b * S + sc.sr[m]] : 0.f;
    }
    float E = 0.f;
    for (int64_t j = 0; j < J; ++j) {
      E += terms(u + j * M, sc.tm.data(), sc.om.data(), M, e + j * M);
      if (damp) {  // s'(u) |h|^2 to each row's entry, sum_s s'(u) |v'_s|^2 to h's row
        const float hh = sc.hh[j];
        float kh = 0.f;
        for (int64_t m = 0; m < M; ++m) {
          const float a = std::fabs(e[j * M + m]);
          const float ks = a * (1.f - a);  // s'(u) = s(u) (1 - s(u))
          kWo[b * S + sc.sr[m]] += ks * hh;
          kh += ks * sc.vv[m];
        }
        if (mode == 0) kW[b * gw_rows + sc.jr[j]] += kh;  // CBOW's W rows: undamped
      }
    }
    // skip-gram: the rows' gradients too; CBOW keeps e (phase 2 forms e_s h)
    float* const* G = mode == 0 ? sc.G.data() : nullptr;
    spread(sc.H.data(), J, sc.V.data(), M, N, e, sc.EH.data(), G, sc.ec.data());
    if (mode != 0)
      for (int64_t m = 0; m < M; ++m) eB[b * S + sc.sr[m]] = e[m];
    if (mode == 2)
      for (int64_t i = 0; i < N; ++i) gw[i] *= inv_n;
    Eb[b] = E;
  }

  // Whether part `part` of `parts` updates row r of W (table 0) or W_out (table 1): with
  // two parts or more, the even parts update W and the odd ones W_out, each table's rows
  // split by r % (its parts). Measured: splitting both tables by r % 2 made each thread
  // as slow on its half as one thread on all (the rows were written by both cores in
  // turn); one table per core halves the phase. Hierarchical softmax gives W_out about
  // twice W's updates (a path against a window), but moving a share of W_out's rows (by a
  // hash of the row, sized per step from the counts) to W's parts made both phases slower
  // (skip-gram 0.37 -> 0.43 us per centre in the update phase, scripts/kernel_phases.py).
  static bool owns(int table, int32_t r, int64_t part, int64_t parts) {
    if (parts == 1) return true;
    if (part % 2 != table) return false;
    const int64_t n = table == 0 ? (parts + 1) / 2 : parts / 2;
    return r % n == part / 2;
  }

  // phase 2, the rows this part owns: their damping factors, then their updates
  void apply(int64_t part, int64_t parts, float scale_w, float scale_wo, float lr) const {
    // this part's updates in example order (damped: with the slot of lr x the total
    // curvature of the row's entries, summed as they are listed)
    thread_local std::vector<Update> todo;
    if (static_cast<int64_t>(todo.size()) < B * (C + S)) todo.resize(B * (C + S));
    int64_t T = 0;  // (indexed writes: push_back was ~5 % of perf's samples of the kernel)
    const bool damp_w = damp && mode == 0;  // CBOW's W rows: undamped
    // the tables this part updates (with two parts or more, one each: the other's entries
    // are not even looked at, as checking them all was a fixed cost that each part paid)
    const bool any_w = parts == 1 || part % 2 == 0, any_wo = parts == 1 || part % 2 == 1;
    const int64_t rare = rare_from;  // (locals: the loop's stores cannot alias them)
    const float scale_rare = scale_w * rare_scale;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = 0; any_w && j < C; ++j) {
        const int32_t r = ctx[b * C + j];
        if (!real(b, j) || !owns(0, r, part, parts)) continue;
        const int64_t g = b * gw_rows + (mode == 0 ? j : 0);
        float* x = damp_w ? xW + r : nullptr;
        if (x) *x += lr * kW[g];
        const float c = r >= rare ? scale_rare : scale_w;
        todo[T++] = {w + static_cast<int64_t>(r) * N, gW + g * N, c, x};
      }
      for (int64_t s = 0; any_wo && s < S; ++s) {
        const int32_t r = rows[b * S + s];
        if (!use(b, s) || !owns(1, r, part, parts)) continue;
        float* x = damp ? xWo + r : nullptr;
        if (x) *x += lr * kWo[b * S + s];
        if (mode == 0)  // the row's gradient sum_c e_cs h_c
          todo[T++] = {wo + static_cast<int64_t>(r) * N, gWo + (b * S + s) * N, scale_wo, x};
        else  // CBOW: e_s h
          todo[T++] = {wo + static_cast<int64_t>(r) * N, hB + b * N, scale_wo * eB[b * S + s], x};
      }
    }
    // damping: each row's factor (1 - exp(-x)) / x once, at its first update, kept in its
    // slot as -factor (x >= 0: the sign bit marks it done; a NaN x, from non-finite tables,
    // is recomputed and listed each time, so that its slot is reset too); the slots back to
    // zero after
    thread_local std::vector<float*> rows_seen;
    rows_seen.clear();
    if (damp)
      for (int64_t i = 0; i < T; ++i) {
        Update& u = todo[i];
        if (!u.x) continue;
        if (std::isnan(*u.x) || !std::signbit(*u.x)) {
          *u.x = -damping(*u.x);
          rows_seen.push_back(u.x);
        }
        u.c *= -*u.x;
      }
    // applied with the destination rows of the update kPrefetch ahead requested: the rows
    // are read at random from a table larger than the caches, so their loads overlap
    // instead of each waiting on the last
    for (int64_t i = 0; i < T; ++i) {
      if (i + kPrefetch < T) {
        const char* p = reinterpret_cast<const char*>(todo[i + kPrefetch].dst);
        for (int64_t k = 0; k < N * 4; k += 64) __builtin_prefetch(p + k, 1, 3);
      }
      axpy(todo[i].c, todo[i].src, todo[i].dst, N);
    }
    for (float* x : rows_seen) *x = 0.f;  // zero between calls
  }
};

// The call: `steps` minibatch steps in order (a leading axis of every per-step input),
// those with active[s] == 0 skipped (E[s] = 0), on the same tables.
ffi::Error LogisticStepImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> W,
                            ffi::Buffer<ffi::F32> Wout, ffi::Buffer<ffi::S32> context,
                            ffi::Buffer<ffi::PRED> mask, ffi::Buffer<ffi::S32> rows,
                            ffi::Buffer<ffi::F32> targets, ffi::Buffer<ffi::PRED> used,
                            ffi::Buffer<ffi::F32> offset, ffi::Buffer<ffi::F32> scales,
                            ffi::Buffer<ffi::S32> active, ffi::ResultBuffer<ffi::F32> W_new,
                            ffi::ResultBuffer<ffi::F32> Wout_new,
                            ffi::ResultBuffer<ffi::F32> E_out, int64_t mode, int64_t damp,
                            int64_t parts_wanted, int64_t rare_from, float rare_scale) {
  Step st;
  const auto cd = context.dimensions(), rd = rows.dimensions();
  const int64_t steps = cd.size() == 3 ? cd[0] : 0;
  st.V = W.dimensions()[0];
  st.N = W.dimensions()[1];
  st.R = Wout.dimensions()[0];
  st.B = steps ? cd[1] : 0;
  st.C = steps ? cd[2] : 0;
  st.S = rd.size() == 3 ? rd[2] : 0;
  st.mode = mode;
  st.damp = damp != 0;
  st.rare_from = rare_from;
  st.rare_scale = rare_scale;
  st.gw_rows = mode == 0 ? st.C : 1;
  // t and used of shape (1,): derived from the rows (a sampled layer's [w_O, negatives])
  const bool derived = targets.dimensions().size() == 1;
  if (Wout.dimensions()[1] != st.N || mode < 0 || mode > 3 || st.S > kMaxS || steps == 0 ||
      rd.size() != 3 || rd[0] != steps || rd[1] != st.B || active.element_count() != steps ||
      scales.element_count() != 3 * steps || mask.element_count() != steps * st.B * st.C ||
      !(derived ? targets.element_count() == 1 && used.dimensions().size() == 1 &&
                      used.element_count() == 1
                : targets.element_count() == steps * st.B * st.S &&
                      used.dimensions().size() == 3 &&
                      used.element_count() == steps * st.B * st.S) ||
      !(offset.dimensions().size() == 3 ? offset.element_count() == steps * st.B * st.S
                                        : offset.dimensions().size() == 1 &&
                                              offset.element_count() == 1)) {
    return ffi::Error::InvalidArgument(
        "sgjax_logistic_step: W and W_out differ in width, a bad mode, more than 64 rows, or "
        "inputs whose shapes disagree");
  }
  const bool has_offset = offset.dimensions().size() == 3;  // else (1,): none
  st.w = W_new->typed_data();
  st.wo = Wout_new->typed_data();
  if (st.w != W.typed_data()) std::memcpy(st.w, W.typed_data(), sizeof(float) * st.V * st.N);
  if (st.wo != Wout.typed_data())
    std::memcpy(st.wo, Wout.typed_data(), sizeof(float) * st.R * st.N);
  // scratch kept between calls, one set per calling thread (xW, xWo: zero between calls)
  thread_local std::vector<float> gW, gWo, kW, kWo, Eb, xW, xWo, hB, eB;
  thread_local std::vector<int32_t> nB;
  gW.resize(st.B * st.gw_rows * st.N);
  if (mode == 0) {
    gWo.resize(st.B * st.S * st.N);
  } else {
    hB.resize(2 * st.B * st.N);  // two: the next step's h are made during this one's phase 2
    nB.resize(st.B);
    eB.resize(st.B * st.S);
  }
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
  st.nB = nB.data();
  st.eB = eB.data();
  st.xW = xW.data();
  st.xWo = xWo.data();
  // step s's examples (the k-th active step): the same scratch, its slice of every
  // per-step input, the k-th of CBOW's two buffers of h
  float* const h2 = hB.data();  // (not hB in the lambda: a pool thread's is its own)
  const auto at = [&](int64_t k, int64_t s) {
    Step x = st;
    x.hB = mode == 0 ? nullptr : h2 + (k % 2) * st.B * st.N;  // (skip-gram: none)
    x.ctx = context.typed_data() + s * st.B * st.C;
    x.msk = mask.typed_data() + s * st.B * st.C;
    x.rows = rows.typed_data() + s * st.B * st.S;
    x.t = derived ? nullptr : targets.typed_data() + s * st.B * st.S;
    x.used = derived ? nullptr : used.typed_data() + s * st.B * st.S;
    x.off = has_offset ? offset.typed_data() + s * st.B * st.S : nullptr;
    return x;
  };

  // parts: the pool's threads, or as asked (tests: the result must not depend on it)
  const int64_t parts = parts_wanted > 0
                            ? std::min<int64_t>(parts_wanted, 64)
                            : std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), st.B));
  const float* sc = scales.typed_data();
  float* E = E_out->typed_data();
  std::fill(E, E + steps, 0.f);
  std::vector<Scratch> scratch(parts, Scratch(st.C, st.S));
  constexpr int64_t kChunk = 32;  // examples per chunk of CBOW's phase 1a
  const int64_t chunks = mode == 0 ? 0 : (st.B + kChunk - 1) / kChunk;
  parallel_steps(
      pool, parts, steps, active.typed_data(), chunks,
      [&](int64_t k, int64_t s, int64_t j) {
        const Step x = at(k, s);
        for (int64_t b = j * kChunk; b < std::min(st.B, (j + 1) * kChunk); ++b) x.hidden(b);
      },
      [&](int64_t k, int64_t s, int64_t p) {
        const Step x = at(k, s);
        for (int64_t b = st.B * p / parts; b < st.B * (p + 1) / parts; ++b)
          x.rule(b, scratch[p]);
      },
      [&](int64_t k, int64_t s, int64_t p) {
        at(k, s).apply(p, parts, sc[3 * s], sc[3 * s + 1], sc[3 * s + 2]);
        if (p == 0)  // the step's E, before the next step's phase 1 overwrites Eb
          for (int64_t b = 0; b < st.B; ++b) E[s] += st.Eb[b];
      });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SgjaxLogisticStep, LogisticStepImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W (V, N)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W_out (R, N)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // context (steps, B, C)
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask (steps, B, C)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // rows (steps, B, S)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // targets t (steps, B, S) or (1,)
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // used (steps, B, S) or (1,)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // offset (steps, B, S) or (1,): none
                                  .Arg<ffi::Buffer<ffi::F32>>()  // (steps, 3): scale_W, scale_Wout, lr
                                  .Arg<ffi::Buffer<ffi::S32>>()  // active (steps,)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // W
                                  .Ret<ffi::Buffer<ffi::F32>>()  // W_out
                                  .Ret<ffi::Buffer<ffi::F32>>()  // E (steps,)
                                  .Attr<int64_t>("mode")
                                  .Attr<int64_t>("damp")
                                  .Attr<int64_t>("parts")
                                  .Attr<int64_t>("rare_from")
                                  .Attr<float>("rare_scale"));
