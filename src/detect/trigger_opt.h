// What the trigger-optimising detectors (Neural Cleanse, K-Arm) share: the tanh
// parametrisation of a mask and a pattern, stamping clean images with them, a seeded
// stream of mini-batches, Adam's update, and the check of the clean images against the
// model. Internal to src/detect/.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard::detail {

constexpr double kTanhEps = 1e-7;  // Keras' epsilon, as both reference codes' tanh mapping uses
constexpr double kAdamEps = 1e-8;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t);

// Mini-batches of clean images in a seeded shuffled order, reshuffled at each pass.
class ImageStream {
 public:
  ImageStream(const TensorData& d, uint64_t seed) : d_(d), rng_(seed) {}
  // The next `n` images (float); their labels into `labels` where given.
  at::Tensor next(int64_t n, at::Tensor* labels = nullptr);

 private:
  const TensorData& d_;
  Rng rng_;
  std::vector<int64_t> order_;
  size_t pos_ = 0;
};

// The mask in [0, 1] and the pattern in [lo, hi] from their unconstrained tensors.
at::Tensor to_mask(const at::Tensor& mask_t);
at::Tensor to_pattern(const at::Tensor& pattern_t, double lo, double hi);
// The unconstrained tensor (float) of values in [0, 1]: to_mask's inverse.
at::Tensor from_unit(const at::Tensor& v);
// A tensor of `shape` (double) filled with uniform [0, 1) values from `rng`, in order.
at::Tensor uniform(Rng& rng, at::IntArrayRef shape);

// The clean images x (B, C, H, W) stamped with K triggers, mask (K, 1, H, W) and
// pattern (K, C, H, W): (1 - m) * x + m * p, (K * B, C, H, W).
at::Tensor stamp(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& pattern);

// Adam's update of `param` by the gradient `g` at step `t` (from 1), element-wise.
void adam_update(at::Tensor& param, at::Tensor& m, at::Tensor& v, const at::Tensor& g, int64_t t,
                 double lr, double beta1, double beta2);

// ShapeMismatch unless the model takes images (C, H, W) and `clean` holds (N, C, H, W).
void check_clean_images(const Model& m, const TensorData& clean);

}  // namespace bdguard::detail
