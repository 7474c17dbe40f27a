// The inner loops of BatchNormalization and MaxPool without autograd (loops.h).
#include "loops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace bdguard::ops {

// Sanitizer builds keep one version: ifunc resolvers run before the sanitizer is set up.
#if defined(__SANITIZE_ADDRESS__)
#define BDGUARD_OPS_ONE_VERSION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define BDGUARD_OPS_ONE_VERSION
#endif
#endif
#if defined(__x86_64__) && !defined(BDGUARD_OPS_ONE_VERSION)
// x86-64-v3 (AVX2, FMA) and v4 (AVX-512): std::fma is one instruction there.
#define BDGUARD_OPS_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BDGUARD_OPS_CLONES
#endif

namespace {

// Every element is read before it is written at the same index (y may be x): no
// dependence between iterations, which `ivdep` tells the vectoriser.
template <bool kFused, bool kRelu>
inline void row(const float* x, float* y, const float* a, const float* b, int64_t n) {
#pragma GCC ivdep
  for (int64_t e = 0; e < n; ++e) {
    const float v = kFused ? std::fma(x[e], a[e], b[e]) : x[e] * a[e] + b[e];
    y[e] = kRelu ? relu_value(v) : v;
  }
}

template <bool kFused, bool kRelu>
inline void plane(const float* x, float* y, float a, float b, int64_t n) {
#pragma GCC ivdep
  for (int64_t e = 0; e < n; ++e) {
    const float v = kFused ? std::fma(x[e], a, b) : x[e] * a + b;
    y[e] = kRelu ? relu_value(v) : v;
  }
}

}  // namespace

BDGUARD_OPS_CLONES void scale_shift_rows(const float* x, float* y, const float* a, const float* b,
                                         int64_t channels, int64_t begin, int64_t end, bool fused,
                                         bool relu) {
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * channels;
    float* yr = y + r * channels;
    if (fused) {
      relu ? row<true, true>(xr, yr, a, b, channels) : row<true, false>(xr, yr, a, b, channels);
    } else {
      relu ? row<false, true>(xr, yr, a, b, channels) : row<false, false>(xr, yr, a, b, channels);
    }
  }
}

BDGUARD_OPS_CLONES void scale_shift_planes(const float* x, float* y, const float* a, const float* b,
                                           int64_t channels, int64_t inner, int64_t begin,
                                           int64_t end, bool fused, bool relu) {
  for (int64_t p = begin; p < end; ++p) {
    const float* xp = x + p * inner;
    float* yp = y + p * inner;
    const float ap = a[p % channels], bp = b[p % channels];
    if (fused) {
      relu ? plane<true, true>(xp, yp, ap, bp, inner) : plane<true, false>(xp, yp, ap, bp, inner);
    } else {
      relu ? plane<false, true>(xp, yp, ap, bp, inner) : plane<false, false>(xp, yp, ap, bp, inner);
    }
  }
}

using Floats16 = float __attribute__((vector_size(64)));
using Ints16 = int32_t __attribute__((vector_size(64)));
using Floats4 = float __attribute__((vector_size(16)));
using Ints4 = int32_t __attribute__((vector_size(16)));

// One window position into the running maxima of the channels at `out`: Relu first
// (when `relu`), then a value greater than the maximum, or NaN (v != v), replaces it,
// as in ATen.
#define BDGUARD_MAX_INTO(F, I, in, out)                                                          \
  do {                                                                                           \
    F v, m;                                                                                      \
    std::memcpy(&v, in, sizeof v);                                                               \
    std::memcpy(&m, out, sizeof m);                                                              \
    if (relu) v = reinterpret_cast<F>(~(v < F{}) & reinterpret_cast<I>(v));                      \
    const I take = (v > m) | (v != v);                                                           \
    m = reinterpret_cast<F>((take & reinterpret_cast<I>(v)) | (~take & reinterpret_cast<I>(m))); \
    std::memcpy(out, &m, sizeof m);                                                              \
  } while (0)

// The pooling loop, compiled once per instruction set below. (Not target_clones: GCC
// lowers a cloned function's vector code to the baseline instruction set, lane by
// lane, before it makes the clones.)
#define BDGUARD_MAX_POOL_BODY                                                               \
  const int64_t c = s.c;                                                                    \
  for (int64_t r = begin; r < end; ++r) {                                                   \
    const int64_t n = r / s.oh, oh = r % s.oh;                                              \
    int64_t ih0 = oh * s.sh - s.ph;                                                         \
    const int64_t ih1 = std::min(ih0 + (s.kh - 1) * s.dh + 1, s.h);                         \
    while (ih0 < 0) ih0 += s.dh;                                                            \
    for (int64_t ow = 0; ow < s.ow; ++ow) {                                                 \
      float* __restrict out = y + ((n * s.oh + oh) * s.ow + ow) * c;                        \
      for (int64_t k = 0; k < c; ++k) out[k] = -std::numeric_limits<float>::infinity();     \
      int64_t iw0 = ow * s.sw - s.pw;                                                       \
      const int64_t iw1 = std::min(iw0 + (s.kw - 1) * s.dw + 1, s.w);                       \
      while (iw0 < 0) iw0 += s.dw;                                                          \
      for (int64_t ih = ih0; ih < ih1; ih += s.dh) {                                        \
        for (int64_t iw = iw0; iw < iw1; iw += s.dw) {                                      \
          const float* __restrict in = x + ((n * s.h + ih) * s.w + iw) * c;                 \
          int64_t k = 0;                                                                    \
          for (; k + 16 <= c; k += 16) BDGUARD_MAX_INTO(Floats16, Ints16, in + k, out + k); \
          for (; k + 4 <= c; k += 4) BDGUARD_MAX_INTO(Floats4, Ints4, in + k, out + k);     \
          for (; k < c; ++k) {                                                              \
            const float v = relu ? relu_value(in[k]) : in[k];                               \
            if (v > out[k] || v != v) out[k] = v;                                           \
          }                                                                                 \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
  }

namespace {

using PoolFn = void (*)(const float* __restrict, float* __restrict, const PoolShape&, int64_t,
                        int64_t, bool);

void max_pool_baseline(const float* __restrict x, float* __restrict y, const PoolShape& s,
                       int64_t begin, int64_t end, bool relu) {
  BDGUARD_MAX_POOL_BODY
}

#if defined(__x86_64__) && !defined(BDGUARD_OPS_ONE_VERSION)
__attribute__((target("arch=x86-64-v3"))) void max_pool_v3(const float* __restrict x,
                                                           float* __restrict y, const PoolShape& s,
                                                           int64_t begin, int64_t end, bool relu) {
  BDGUARD_MAX_POOL_BODY
}
__attribute__((target("arch=x86-64-v4"))) void max_pool_v4(const float* __restrict x,
                                                           float* __restrict y, const PoolShape& s,
                                                           int64_t begin, int64_t end,
                                                           bool relu){BDGUARD_MAX_POOL_BODY}
#endif

PoolFn pick_max_pool() {
#if defined(__x86_64__) && !defined(BDGUARD_OPS_ONE_VERSION)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return max_pool_v4;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2")) {
    return max_pool_v3;
  }
#endif
  return max_pool_baseline;
}

}  // namespace

void max_pool_rows(const float* __restrict x, float* __restrict y, const PoolShape& s,
                   int64_t begin, int64_t end, bool relu) {
  static const PoolFn fn = pick_max_pool();
  fn(x, y, s, begin, end, relu);
}

#undef BDGUARD_MAX_POOL_BODY
#undef BDGUARD_MAX_INTO

}  // namespace bdguard::ops
