// The pruning sweep's inner loops (see kernels.h).
#include "kernels.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace bdguard::sweep {

// The sweep's inner loops, compiled for AVX-512, AVX2 and plain x86-64 and picked at
// load time. Each element is computed the same way in every version (no reordered
// sums; this file is built with -ffp-contract=off), so results do not depend on the CPU.
// Sanitizer builds keep one version: ifunc resolvers run before the sanitizer is set up.
#if defined(__SANITIZE_ADDRESS__)
#define BDGUARD_ONE_VERSION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define BDGUARD_ONE_VERSION
#endif
#endif
#if defined(__x86_64__) && !defined(BDGUARD_ONE_VERSION)
#define BDGUARD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BDGUARD_CLONES
#endif

// z[e] -= d * w[e]
BDGUARD_CLONES void sub_scaled(double* __restrict z, const double* __restrict w, double d,
                               int64_t n) {
  for (int64_t e = 0; e < n; ++e) z[e] -= d * w[e];
}

// z[e] += dz[e] for every e; returns how many entries' activate(relu, float(z)) (ReLU or
// linear) changed, NaN always counting, with their index and the change (after -
// before, in float64). `before`, `after` and `flag` are scratch space of n (flag: n
// rounded up to 8).
BDGUARD_CLONES int64_t apply_change(double* __restrict z, const double* __restrict dz, int64_t n,
                                    bool relu, float* __restrict before, float* __restrict after,
                                    unsigned char* __restrict flag, int64_t* __restrict index,
                                    double* __restrict diff) {
  for (int64_t e = 0; e < n; ++e) {
    const double old = z[e], now = old + dz[e];
    z[e] = now;
    before[e] = activate(relu, static_cast<float>(old));
    after[e] = activate(relu, static_cast<float>(now));
    flag[e] = !(before[e] == after[e]);
  }
  const int64_t words = (n + 7) / 8;
  for (int64_t e = n; e < words * 8; ++e) flag[e] = 0;
  int64_t k = 0;
  for (int64_t w = 0; w < words; ++w) {  // eight flags at a time: most words hold none
    uint64_t bits;
    std::memcpy(&bits, flag + 8 * w, sizeof bits);
    for (; bits != 0; bits &= bits - 1) {
      const int64_t e = 8 * w + __builtin_ctzll(bits) / 8;
      index[k] = e;
      diff[k++] = static_cast<double>(after[e]) - static_cast<double>(before[e]);
    }
  }
  return k;
}

// z[u] += sum over j of diff[j] * w[index[j] * units + u], in order of j for each u;
// 32 units at a time, in four vectors of 8 (independent sums in flight).
using Doubles8 = double __attribute__((vector_size(64)));
using Floats8 = float __attribute__((vector_size(32)));

BDGUARD_CLONES void add_rows(double* __restrict z, const float* __restrict w, int64_t units,
                             const int64_t* __restrict index, const double* __restrict diff,
                             int64_t count) {
  int64_t u0 = 0;
  for (; u0 + 32 <= units; u0 += 32) {
    Doubles8 acc[4];
    std::memcpy(acc, z + u0, sizeof acc);
    for (int64_t j = 0; j < count; ++j) {
      const float* row = w + index[j] * units + u0;
      Doubles8 d = {};
      d += diff[j];
      for (int v = 0; v < 4; ++v) {
        Floats8 f;
        std::memcpy(&f, row + 8 * v, sizeof f);
        acc[v] += d * __builtin_convertvector(f, Doubles8);
      }
    }
    std::memcpy(z + u0, acc, sizeof acc);
  }
  for (; u0 < units; ++u0) {
    double acc = z[u0];
    for (int64_t j = 0; j < count; ++j)
      acc += diff[j] * static_cast<double>(w[index[j] * units + u0]);
    z[u0] = acc;
  }
}

// The scores of one image from the output Dense's input h (after ReLU, mostly zeros):
// out = bias + sum over the non-zero h[u] of h[u] * w[u, :], for each class in order
// of u; 128 classes at a time, in registers. Returns false (writing nothing) when over
// half of h is non-zero: a matrix product is faster then. NaN counts as non-zero.
using Floats16 = float __attribute__((vector_size(64)));

BDGUARD_CLONES bool sparse_scores(const float* __restrict h, int64_t in, const float* __restrict w,
                                  const float* __restrict bias, int64_t classes,
                                  float* __restrict out, int64_t* __restrict nz) {
  int64_t k = 0;
  for (int64_t u = 0; u < in; ++u) {
    nz[k] = u;
    k += !(h[u] == 0);
  }
  if (2 * k > in) return false;
  int64_t c0 = 0;
  for (; c0 + 128 <= classes; c0 += 128) {
    Floats16 acc[8] = {};
    if (bias != nullptr) std::memcpy(acc, bias + c0, sizeof acc);
    for (int64_t j = 0; j < k; ++j) {
      const float* row = w + nz[j] * classes + c0;
      Floats16 hv = {};
      hv += h[nz[j]];
      for (int v = 0; v < 8; ++v) {
        Floats16 wv;
        std::memcpy(&wv, row + 16 * v, sizeof wv);
        acc[v] += hv * wv;
      }
    }
    std::memcpy(out + c0, acc, sizeof acc);
  }
  for (; c0 < classes; ++c0) {
    float acc = bias != nullptr ? bias[c0] : 0.0f;
    for (int64_t j = 0; j < k; ++j) acc += h[nz[j]] * w[nz[j] * classes + c0];
    out[c0] = acc;
  }
  return true;
}

// The top score of a row, its index (the first on equality, like argmax), and the
// largest of the others (equal to the top on a tie). Returns false if the row holds
// NaN. Sixteen lanes keep their own top two and first index, merged at the end.
using Ints16 = int32_t __attribute__((vector_size(64)));
#define BDGUARD_SELECT(mask, a, b) ((decltype(a))(((mask) & (Ints16)(a)) | (~(mask) & (Ints16)(b))))

BDGUARD_CLONES bool top_two(const float* __restrict row, int64_t classes, int64_t* arg,
                            float* best_out, float* second_out) {
  float best = -std::numeric_limits<float>::infinity(), second = best;
  int64_t at = 0, q = 0;
  bool nan = false;
  if (classes >= 16 && classes <= INT32_MAX) {
    Floats16 b = {}, s = {};
    b += best;
    s += best;
    Ints16 index = {}, lane = {}, bad = {};
    for (int l = 0; l < 16; ++l) lane[l] = l;
    for (; q + 16 <= classes; q += 16) {
      Floats16 v;
      std::memcpy(&v, row + q, sizeof v);
      bad |= (v != v);
      const Ints16 up = v > b;  // strict: a lane keeps its first index
      const Floats16 low = BDGUARD_SELECT(up, b, v);
      s = BDGUARD_SELECT(s > low, s, low);
      b = BDGUARD_SELECT(up, v, b);
      index = BDGUARD_SELECT(up, lane + static_cast<int32_t>(q), index);
    }
    int top = 0;
    for (int l = 0; l < 16; ++l) {
      nan |= bad[l] != 0;
      if (b[l] > b[top] || (b[l] == b[top] && index[l] < index[top])) top = l;
    }
    best = b[top];
    at = index[top];
    for (int l = 0; l < 16; ++l) {
      second = std::max(second, s[l]);
      if (l != top) second = std::max(second, b[l]);
    }
  }
  for (; q < classes; ++q) {
    const float v = row[q];
    nan |= std::isnan(v);
    if (v > best || (q == 0)) {
      if (q > 0) second = best;
      best = v;
      at = q;
    } else if (v > second) {
      second = v;
    }
  }
  *arg = at;
  *best_out = best;
  *second_out = second;
  return !nan;
}

// The top score's index (the first on equality, like argmax) of each row and its
// margin over the next, and the rows whose margin is below kTieMargin (or NaN).
void top_scores(const float* ps, int64_t rows, int64_t classes, int64_t* labels, double* margin,
                std::vector<int64_t>& ties) {
  for (int64_t j = 0; j < rows; ++j) {
    float best = 0, second = 0;
    int64_t arg = 0;
    const bool nan = !top_two(ps + j * classes, classes, &arg, &best, &second);
    labels[j] = arg;
    const double gap = static_cast<double>(best) - static_cast<double>(second);
    margin[j] = nan ? 0.0 : gap;
    if (nan || !(gap >= kTieMargin)) ties.push_back(j);
  }
}

}  // namespace bdguard::sweep
