// The analogy solver's search (sgjax.analogy._solve) in C: for each question, the best
// word x by 3CosAdd, (cos(x, b) + cos(x, c)) - cos(x, a), or 3CosMul,
// (cos'(x, b) cos'(x, c)) / (cos'(x, a) + eps), combined from three rows of the cosine
// matrix with the same float32 operations as numpy's, the question's own words excluded,
// and the first of equal maxima taken (numpy's argmax; a NaN is the maximum, the first).
// numpy's method reads each question's three rows whole (a question set of realtext-v1
// reads its 93 MB matrix ~40 times over) and writes a row of scores; here the matrix comes
// in blocks of columns (sgjax.analogy computes it so, a few MB at a time), scanned in
// pieces small enough that every question word's piece stays in the core's cache while
// all questions are scored on it, and no scores are written. tests/test_evaluate.py
// compares both methods.
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

constexpr int64_t kBlock = 256;  // columns at a time: 1 KB of each row of the matrix
constexpr int kLanes = 16;       // independent maxima (vector lanes)

struct Best {
  float top;  // from -inf
  int64_t at;  // from 0: every score -inf gives the first column (numpy's argmax)
  bool done;   // a NaN found: its column is the answer
};

// the scores of columns [lo, lo + n), score(i) for the i-th, into v (vectorised; the
// excluded columns -inf), and the question's best so far updated with them
template <class F>
void scan(F score, int64_t lo, int64_t n, const int64_t* ex, float* v, Best& r) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) v[i] = score(i);
  for (int64_t i = n; i < kBlock; ++i) v[i] = -INFINITY;
  for (int k = 0; k < 3; ++k)
    if (ex[k] >= lo && ex[k] < lo + n) v[ex[k] - lo] = -INFINITY;
  // per lane: the maximum, and a sum that is NaN if a score is (or if -inf meets +inf)
  alignas(64) float m[kLanes], sum[kLanes];
  for (int j = 0; j < kLanes; ++j) m[j] = -INFINITY, sum[j] = 0.f;
  for (int64_t i = 0; i < kBlock; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      m[j] = v[i + j] > m[j] ? v[i + j] : m[j];
      sum[j] += v[i + j];
    }
  float top = -INFINITY, total = 0.f;
  for (int j = 0; j < kLanes; ++j) top = std::max(top, m[j]), total += sum[j];
  if (std::isnan(total)) {  // exactly, one by one
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(v[i])) {
        r.at = lo + i;
        r.done = true;
        return;
      }
      if (v[i] > r.top) r.top = v[i], r.at = lo + i;
    }
  } else if (top > r.top) {
    r.top = top;
    r.at = lo + (std::find(v, v + n, top) - v);
  }
}

}  // namespace

extern "C" {

// One block of columns [col0, col0 + n) of the scores: sims (rows, n), the cosines of the
// question words with those columns' words; where: (Q, 3) rows a, b, c of sims;
// excluded: (Q, 3) columns (of all) scored -inf; method 0: 3CosAdd, 1: 3CosMul. Each
// question's best so far (top, at, done: a NaN found) is updated; called for the blocks in
// order, at[q] ends as numpy's argmax over all columns.
void sgjax_analogy_scan(const float* sims, int64_t n, int64_t col0, const int64_t* where,
                        const int64_t* excluded, int64_t Q, int64_t method, float eps,
                        float* top, int64_t* at, uint8_t* done) {
  alignas(64) float v[kBlock];
  for (int64_t lo = 0; lo < n; lo += kBlock) {
    const int64_t m = std::min(kBlock, n - lo);
    for (int64_t q = 0; q < Q; ++q) {
      if (done[q]) continue;
      Best r{top[q], at[q], false};
      const float* a = sims + where[3 * q] * n + lo;
      const float* b = sims + where[3 * q + 1] * n + lo;
      const float* c = sims + where[3 * q + 2] * n + lo;
      const int64_t* ex = excluded + 3 * q;
      if (method == 0)
        scan([=](int64_t x) { return (b[x] + c[x]) - a[x]; }, col0 + lo, m, ex, v, r);
      else
        scan([=](int64_t x) { return (b[x] * c[x]) / (a[x] + eps); }, col0 + lo, m, ex, v, r);
      top[q] = r.top;
      at[q] = r.at;
      done[q] = r.done;
    }
  }
}

}  // extern "C"
