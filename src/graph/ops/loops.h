// The inner loops of the ops that bdguard runs itself without autograd (ops.h:
// BatchNormalization, MaxPool), for float tensors in NCHW or channels-last order. Each
// computes, element for element, what ATen's CPU kernel for the same op computes:
// built with -ffp-contract=off, every multiply-add is fused or not as asked, never by
// the compiler's choice. Compiled for AVX-512, AVX2 and plain x86-64 (target_clones).
#pragma once

#include <cstdint>

namespace bdguard::ops {

// Relu as at::relu computes it (NaN stays NaN, -0 stays -0).
inline float relu_value(float v) { return v < 0 ? 0.0f : v; }

// y = x * a[c] + b[c] (one fused multiply-add when `fused`), then Relu when `relu`, over
// rows [begin, end): channels-last rows of `channels` values (channel = position in
// the row), or NCHW planes of `inner` values (channel = plane % channels). y may be x.
void scale_shift_rows(const float* x, float* y, const float* a, const float* b, int64_t channels,
                      int64_t begin, int64_t end, bool fused, bool relu);
void scale_shift_planes(const float* x, float* y, const float* a, const float* b, int64_t channels,
                        int64_t inner, int64_t begin, int64_t end, bool fused, bool relu);

// 2-D max pooling of a channels-last (N, H, W, C) input into (N, OH, OW, C), for the
// output rows (n, oh) in [begin, end) of N * OH: ATen's windows (start oh * sh - ph,
// clipped to the input, stepping by the dilation), each value replacing the maximum
// when greater or NaN, from -inf. `relu` applies Relu to every value read.
struct PoolShape {
  int64_t n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
};
void max_pool_rows(const float* x, float* y, const PoolShape& s, int64_t begin, int64_t end,
                   bool relu);

}  // namespace bdguard::ops
