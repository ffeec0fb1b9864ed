// The text of a float32 matrix's rows, every value as Python's "%.9g" % value writes it,
// for the values it prints in fixed notation: sgjax.textfloat's numpy method (whose
// docstring says why it is exact), one value at a time in C instead of ~100 passes of
// numpy over each chunk. A row with another value (exponent notation, inf, nan) is left to
// Python (ok[i] = 0, no bytes). tests/test_textfloat.py compares both with Python's
// formatting across the float32 range.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

constexpr int kLow = -4, kHigh = 8;  // decimal exponents printed in fixed notation
constexpr int kFraction = 12;        // digit columns after the point: 1e-12
constexpr double kPow10[] = {1e0, 1e1, 1e2, 1e3, 1e4,  1e5,  1e6,
                             1e7, 1e8, 1e9, 1e10, 1e11, 1e12};
constexpr double kExponents[] = {1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2,
                                 1e3,  1e4,  1e5,  1e6,  1e7, 1e8, 1e9};

// the decimal digits "00" .. "99"
struct Pairs {
  char c[200];
  constexpr Pairs() : c() {
    for (int i = 0; i < 100; ++i) {
      c[2 * i] = static_cast<char>('0' + i / 10);
      c[2 * i + 1] = static_cast<char>('0' + i % 10);
    }
  }
};
constexpr Pairs kPairs;

// the 6 digits of x < 1e6 into d
inline void six(uint32_t x, char* d) {
  const uint32_t a = x / 10000, b = x % 10000;
  std::memcpy(d, kPairs.c + 2 * a, 2);
  std::memcpy(d + 2, kPairs.c + 2 * (b / 100), 2);
  std::memcpy(d + 4, kPairs.c + 2 * (b % 100), 2);
}

// "%.9g" of x into p if x is printed in fixed notation; returns the end, or null if not
char* format(float x, char* p) {
  const double a = std::fabs(static_cast<double>(x));
  if (std::signbit(x)) *p++ = '-';
  if (a == 0) {
    *p++ = '0';
    return p;
  }
  // the decimal exponent: -5 + how many of 1e-4 .. 1e9 are <= a (nan: not fixed)
  int e = kLow - 1;
  for (const double p10 : kExponents) e += p10 <= a;
  if (!(e >= kLow && e <= kHigh)) return nullptr;
  const int k = kHigh - e;  // digits after the point, 0..12
  const double scale = kPow10[k];
  const double m = std::nearbyint(a * scale);  // the 9 significant digits, half to even
  const double whole = std::floor(m / scale);
  const double frac = (m - whole * scale) * kPow10[kFraction - k];
  char digits[24];
  int n = 0;
  for (uint64_t w = static_cast<uint64_t>(whole); n == 0 || w > 0; w /= 10)
    digits[n++] = static_cast<char>('0' + w % 10);
  while (n > 0) *p++ = digits[--n];
  if (frac > 0) {  // 12 digits after the point, as two halves of 6, trailing zeros cut
    const double high = std::floor(frac / 1e6);
    char d[kFraction];
    six(static_cast<uint32_t>(high), d);
    six(static_cast<uint32_t>(frac - high * 1e6), d + 6);
    int last = kFraction;
    while (d[last - 1] == '0') --last;  // (frac > 0: a digit is not 0)
    *p++ = '.';
    std::memcpy(p, d, last);
    p += last;
  }
  return p;
}

}  // namespace

// rows x cols values of m (row-major) into out (at least 16 bytes a value), each row's
// values joined by spaces; ends[i]: the end of row i's bytes; ok[i]: 0 where row i has a
// value that is not printed in fixed notation (it has no bytes). Returns the bytes written.
extern "C" int64_t sgjax_format_rows(const float* m, int64_t rows, int64_t cols, char* out,
                                     int64_t* ends, uint8_t* ok) {
  char* p = out;
  for (int64_t i = 0; i < rows; ++i) {
    char* const start = p;
    ok[i] = 1;
    for (int64_t j = 0; j < cols; ++j) {
      if (j > 0) *p++ = ' ';
      char* q = format(m[i * cols + j], p);
      if (!q) {
        ok[i] = 0;
        p = start;
        break;
      }
      p = q;
    }
    ends[i] = p - out;
  }
  return p - out;
}
