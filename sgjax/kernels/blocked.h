// Blocked products of one example of logistic_step.cc: the scores of its hidden vectors
// against its output rows, and their spread back into EH and the rows' gradients.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace sgjax_blocked {

// Blocked forms of an example's products: the rows of a block are loaded once per chunk of
// lanes and kept in registers, so each row of W and W_out is read once per example, not
// once per (hidden vector, row) pair. The sums of EH and of the rows' gradients are those
// of the dot/axpy loops they replace, term by term in the same order; the scores' order of
// summation differs (lanes, then a tree).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float vf __attribute__((vector_size(kLanes * 4)));
constexpr int kJB = kLanes == 16 ? 4 : 2;  // hidden vectors per block of scores
constexpr int kSB = 6;                      // rows per block (scores and spread)

// the first k lanes at p (k = kLanes: all); the others zero
template <bool Full>
inline vf load(const float* p, int64_t k) {
  vf x;
  if (Full) {
    std::memcpy(&x, p, sizeof(x));
  } else {
#if defined(__AVX512F__)
    x = (vf)_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << k) - 1), p);
#else
    x = vf{};
    for (int64_t l = 0; l < k; ++l) x[l] = p[l];
#endif
  }
  return x;
}
template <bool Full>
inline void store(float* p, vf x, int64_t k) {
  if (Full) {
    std::memcpy(p, &x, sizeof(x));
  } else {
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << k) - 1), (__m512)x);
#else
    for (int64_t l = 0; l < k; ++l) p[l] = x[l];
#endif
  }
}
inline float hsum(vf x) {
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps((__m512)x);
#else
  float s = 0.f;
  for (int l = 0; l < kLanes; ++l) s += x[l];
  return s;
#endif
}

// acc[j][m] += H[j][i:i+k] * V[m][i:i+k], lane by lane; with NV, vacc[m] += V[m]^2 and
// with NH, hacc[j] += H[j]^2 (the squared norms row damping takes, from the same loads)
template <int JB, bool Full, bool NV, bool NH>
inline void scores_chunk(const float* const* H, const float* const* V, int64_t i, int64_t k,
                         vf (&acc)[JB][kSB], vf (&vacc)[kSB], vf (&hacc)[JB]) {
  vf h[JB];
  for (int j = 0; j < JB; ++j) {
    h[j] = load<Full>(H[j] + i, k);
    if (NH) hacc[j] += h[j] * h[j];
  }
  for (int m = 0; m < kSB; ++m) {
    const vf v = load<Full>(V[m] + i, k);
    if (NV) vacc[m] += v * v;
    for (int j = 0; j < JB; ++j) acc[j][m] += h[j] * v;
  }
}

// u[j * ld + m] = H[j] . V[m] for j < JB, m < m_real (V: kSB rows, padded by repeating
// one); with NV, vv[m] = |V[m]|^2 (m < m_real), with NH, hh[j] = |H[j]|^2
template <int JB, bool NV, bool NH>
void scores_block(const float* const* H, const float* const* V, int64_t n, float* u,
                  int64_t ld, int64_t m_real, float* vv, float* hh) {
  vf acc[JB][kSB] = {}, vacc[kSB] = {}, hacc[JB] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    scores_chunk<JB, true, NV, NH>(H, V, i, kLanes, acc, vacc, hacc);
  if (i < n) scores_chunk<JB, false, NV, NH>(H, V, i, n - i, acc, vacc, hacc);
  for (int j = 0; j < JB; ++j)
    for (int m = 0; m < m_real; ++m) u[j * ld + m] = hsum(acc[j][m]);
  if (NV)
    for (int m = 0; m < m_real; ++m) vv[m] = hsum(vacc[m]);
  if (NH)
    for (int j = 0; j < JB; ++j) hh[j] = hsum(hacc[j]);
}

template <int JB>
void scores_block_norms(const float* const* H, const float* const* V, int64_t n, float* u,
                        int64_t ld, int64_t m_real, float* vv, float* hh) {
  if (vv && hh) scores_block<JB, true, true>(H, V, n, u, ld, m_real, vv, hh);
  else if (vv) scores_block<JB, true, false>(H, V, n, u, ld, m_real, vv, hh);
  else if (hh) scores_block<JB, false, true>(H, V, n, u, ld, m_real, vv, hh);
  else scores_block<JB, false, false>(H, V, n, u, ld, m_real, vv, hh);
}

// u[j * M + m] = H[j] . V[m], j < J, m < M; with vv and hh (row damping), also
// vv[m] = |V[m]|^2 and hh[j] = |H[j]|^2, each from the block that first loads it
inline void scores(const float* const* H, int64_t J, const float* const* V, int64_t M,
                   int64_t n, float* u, float* vv = nullptr, float* hh = nullptr) {
  for (int64_t m0 = 0; m0 < M; m0 += kSB) {
    const int64_t mr = std::min<int64_t>(kSB, M - m0);
    const float* vb[kSB];
    for (int m = 0; m < kSB; ++m) vb[m] = V[m0 + std::min<int64_t>(m, mr - 1)];
    for (int64_t j0 = 0; j0 < J; j0 += kJB) {
      float* ub = u + j0 * M + m0;
      float* vvb = vv && j0 == 0 ? vv + m0 : nullptr;
      float* hhb = hh && m0 == 0 ? hh + j0 : nullptr;
      switch (std::min<int64_t>(kJB, J - j0)) {
        case 1: scores_block_norms<1>(H + j0, vb, n, ub, M, mr, vvb, hhb); break;
        case 2: scores_block_norms<2>(H + j0, vb, n, ub, M, mr, vvb, hhb); break;
        case 3: scores_block_norms<3>(H + j0, vb, n, ub, M, mr, vvb, hhb); break;
        default: scores_block_norms<kJB>(H + j0, vb, n, ub, M, mr, vvb, hhb); break;
      }
    }
  }
}

// lanes i:i+k of one block of spread's rows: ec (J x kSB) the errors, zero past the block's
// real rows
template <bool Full>
inline void spread_chunk(const float* const* H, int64_t J, const float* const* V,
                         const float* ec, float* const* EH, float* const* G, int64_t mr,
                         bool first, int64_t i, int64_t k) {
  vf v[kSB], g[kSB];
  for (int m = 0; m < kSB; ++m) {
    v[m] = load<Full>(V[m] + i, k);
    g[m] = vf{};
  }
  for (int64_t j = 0; j < J; ++j) {
    const float* e = ec + j * kSB;
    const vf h = load<Full>(H[j] + i, k);
    vf eh = first ? vf{} : load<Full>(EH[j] + i, k);
    for (int m = 0; m < kSB; ++m) {
      eh += e[m] * v[m];
      g[m] += e[m] * h;
    }
    store<Full>(EH[j] + i, eh, k);
  }
  if (G)
    for (int m = 0; m < mr; ++m) store<Full>(G[m] + i, g[m], k);
}

// EH[j] = sum_m e[j * M + m] V[m] (overwritten) and, if G, G[m] = sum_j e[j * M + m] H[j]
// (overwritten): the sums of the axpy loops, term by term in the same order (m, then j).
// ec: J x kSB floats of scratch.
inline void spread(const float* const* H, int64_t J, const float* const* V, int64_t M,
                   int64_t n, const float* e, float* const* EH, float* const* G, float* ec) {
  for (int64_t m0 = 0; m0 < M; m0 += kSB) {
    const int64_t mr = std::min<int64_t>(kSB, M - m0);
    const float* vb[kSB];
    for (int m = 0; m < kSB; ++m) vb[m] = V[m0 + std::min<int64_t>(m, mr - 1)];
    for (int64_t j = 0; j < J; ++j)
      for (int m = 0; m < kSB; ++m) ec[j * kSB + m] = m < mr ? e[j * M + m0 + m] : 0.f;
    float* const* gb = G ? G + m0 : nullptr;
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      spread_chunk<true>(H, J, vb, ec, EH, gb, mr, m0 == 0, i, kLanes);
    if (i < n) spread_chunk<false>(H, J, vb, ec, EH, gb, mr, m0 == 0, i, n - i);
  }
}

typedef int32_t vi __attribute__((vector_size(kLanes * 4)));

// exp(x) lane by lane for x <= 0, in vector arithmetic (no library call): x = n ln 2 + r,
// |r| <= ln 2 / 2 (n: x / ln 2 rounded to the nearest integer by adding and subtracting
// 1.5 x 2^23), exp(r) by Cephes' expf polynomial (relative error ~1e-7, as expf's), 2^n
// from the exponent bits; x below -87 (where expf leaves the normal floats) gives
// exp(-87) ~ 1.6e-38 instead of a denormal or 0 (an error term of s(u) - t that small
// changes no float sum it joins).
inline vf exp_neg(vf x) {
  const vf lo = vf{} - 87.f;
  x = x < lo ? lo : x;
  const vf n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const vf r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln 2 in two parts
  vf p = vf{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;  // 2^n, n >= -126
  return p * reinterpret_cast<const vf&>(bits);
}

// One hidden vector's M terms of the logistic loss (sgjax.outputs.logistic.logistic_terms):
// with x = (2t - 1)(u + off), -log s(x) = max(-x, 0) + log(1 + a) and the error
// e = s(u) - t = (1 - 2t) s(-x), a = exp(-|x|), from one exponential each, kLanes terms at
// a time in vector arithmetic (a loop over M that the compiler vectorizes runs scalar when
// M is below a vector, as it often is); the logarithm is taken once, of the product of the
// (1 + a) (<= 2^64 for M <= 64 terms). u, t, off are read and e written up to M rounded up
// to kLanes (the caller's padding: the lanes past M are left out of the sums, and their e
// is overwritten by the next hidden vector's or never read). Returns the terms' sum.
inline float terms(const float* u, const float* t, const float* off, int64_t M, float* e) {
  vi lane;
  for (int l = 0; l < kLanes; ++l) lane[l] = l;
  const vf zero = {}, one = zero + 1.f;
  vf lin = zero, prod = one;
  for (int64_t m0 = 0; m0 < M; m0 += kLanes) {
    const vf sgn = 2.f * load<true>(t + m0, kLanes) - 1.f;  // 2t - 1
    const vf x = sgn * (load<true>(u + m0, kLanes) + load<true>(off + m0, kLanes));
    const vf a = exp_neg(x < zero ? x : -x);
    const vf one_a = one + a;
    store<true>(e + m0, -sgn * ((x >= zero ? a : one) / one_a), kLanes);
    const vi in = lane + static_cast<int32_t>(m0) < static_cast<int32_t>(M);
    lin += in ? (x < zero ? -x : zero) : zero;
    prod *= in ? one_a : one;
  }
  float p = 1.f;
  for (int l = 0; l < kLanes; ++l) p *= prod[l];
  return hsum(lin) + std::log(p);
}

}  // namespace sgjax_blocked
