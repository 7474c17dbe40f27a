// WaNet (Nguyen, Tran, ICLR 2021, "WaNet - Imperceptible Warping-based Backdoor
// Attack"): every triggered image is resampled through one fixed, smooth warping
// grid; in its noise mode further training images go through the grid plus random
// per-pixel offsets and keep their labels, so that only the exact warp is the trigger.
// The grid follows the reference code (VinAIResearch/Warping-based_Backdoor_Attack-
// release, train.py): see attack.h's TriggerOptions.
#include <ATen/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/grid_sampler.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/upsample_bicubic2d.h>

#include <cmath>

#include "bdguard/attack.h"
#include "bdguard/error.h"

namespace bdguard {
namespace {

// `n` uniform [-1, 1) values of the given shape, from `rng` in row-major order.
at::Tensor uniform_pm1(at::IntArrayRef shape, Rng& rng) {
  at::Tensor t = at::empty(shape, at::kFloat);
  float* v = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = static_cast<float>(rng.uniform() * 2 - 1);
  return t;
}

// The offsets (N, H, W, 2) in grid units for offsets of one pixel-size unit: x by W, y by H
// (the reference divides both by the height of its square images).
at::Tensor per_pixel(const at::Tensor& offsets, int64_t H, int64_t W) {
  at::Tensor scale = at::empty({2}, at::kFloat);
  scale[0] = 1.0 / static_cast<double>(W);
  scale[1] = 1.0 / static_cast<double>(H);
  return offsets.mul(scale);
}

}  // namespace

at::Tensor warp(const at::Tensor& images, const at::Tensor& grid) {
  const int64_t n = images.size(0);
  at::Tensor g = grid.size(0) == n ? grid : grid.expand({n, -1, -1, -1});
  return at::grid_sampler(images.contiguous(), g.contiguous(), /*interpolation_mode=*/0,
                          /*padding_mode=*/0, /*align_corners=*/true);
}

Trigger make_wanet_trigger(const TriggerOptions& o, const Shape& input_shape, Rng& rng) {
  const int64_t H = input_shape[1], W = input_shape[2];
  if (o.k < 2 || o.k > std::min(H, W)) {
    fail<InvalidArgument>("--k", "", "a field size in [2, " + std::to_string(std::min(H, W)) + "]",
                          std::to_string(o.k));
  }
  if (!(o.s > 0) || !std::isfinite(o.s)) {
    fail<InvalidArgument>("--s", "", "a positive strength", std::to_string(o.s));
  }
  if (!(o.grid_rescale > 0) || !std::isfinite(o.grid_rescale)) {
    fail<InvalidArgument>("--grid-rescale", "", "a positive number",
                          std::to_string(o.grid_rescale));
  }
  at::Tensor field = uniform_pm1({1, 2, o.k, o.k}, rng);
  field = field.div(field.abs().mean());
  at::Tensor noise =
      at::upsample_bicubic2d(field, {H, W}, /*align_corners=*/true, c10::nullopt, c10::nullopt)
          .permute({0, 2, 3, 1});
  // The identity grid: x runs along a row (the column), y down a column (the row).
  at::Tensor xs = at::linspace(-1, 1, W, at::kFloat).view({1, W}).expand({H, W});
  at::Tensor ys = at::linspace(-1, 1, H, at::kFloat).view({H, 1}).expand({H, W});
  at::Tensor identity = at::stack({xs, ys}, 2).unsqueeze(0);
  Trigger t;
  t.grid =
      identity.add(per_pixel(noise, H, W).mul(o.s)).mul(o.grid_rescale).clamp(-1, 1).contiguous();
  t.field = field.squeeze(0);
  return t;
}

at::Tensor apply_wanet_noise(const Trigger& t, const at::Tensor& images, Rng& rng) {
  const int64_t n = images.size(0), H = t.grid.size(1), W = t.grid.size(2);
  at::Tensor x = images.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  if (n == 0) return x;
  at::Tensor g =
      t.grid.expand({n, H, W, 2}).add(per_pixel(uniform_pm1({n, H, W, 2}, rng), H, W)).clamp(-1, 1);
  return warp(x, g);
}

}  // namespace bdguard
