// The pieces Neural Cleanse and K-Arm share (trigger_opt.h).
#include "detect/trigger_opt.h"

#include <cmath>
#include <string>

#include "bdguard/error.h"

namespace bdguard::detail {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

at::Tensor ImageStream::next(int64_t n, at::Tensor* labels) {
  std::vector<int64_t> ids;
  while (static_cast<int64_t>(ids.size()) < n) {
    if (pos_ >= order_.size()) {
      order_ = rng_.permutation(d_.size());
      pos_ = 0;
    }
    ids.push_back(order_[pos_++]);
  }
  const at::Tensor ix = at::tensor(ids, at::kLong);
  if (labels) *labels = d_.labels.index_select(0, ix).to(at::kLong);
  return d_.images.index_select(0, ix).to(at::kFloat);
}

at::Tensor to_mask(const at::Tensor& mask_t) { return at::tanh(mask_t) / (2 - kTanhEps) + 0.5; }

at::Tensor to_pattern(const at::Tensor& pattern_t, double lo, double hi) {
  return (at::tanh(pattern_t) / (2 - kTanhEps) + 0.5) * (hi - lo) + lo;
}

at::Tensor from_unit(const at::Tensor& v) {
  return at::atanh((v.clamp(0, 1) - 0.5) * (2 - kTanhEps)).to(at::kFloat);
}

at::Tensor uniform(Rng& rng, at::IntArrayRef shape) {
  at::Tensor t = at::empty(shape, at::kDouble);
  double* p = t.data_ptr<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform();
  return t;
}

at::Tensor stamp(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& pattern) {
  const int64_t k = mask.size(0), b = x.size(0);
  at::Tensor m = mask.unsqueeze(1);  // (K, 1, 1, H, W)
  at::Tensor y = (1 - m) * x.unsqueeze(0) + (mask * pattern).unsqueeze(1);
  return y.reshape({k * b, x.size(1), x.size(2), x.size(3)});
}

void adam_update(at::Tensor& param, at::Tensor& m, at::Tensor& v, const at::Tensor& g, int64_t t,
                 double lr, double beta1, double beta2) {
  const double c1 = 1 - std::pow(beta1, static_cast<double>(t));
  const double c2 = 1 - std::pow(beta2, static_cast<double>(t));
  m.mul_(beta1).add_(g, 1 - beta1);
  v.mul_(beta2).addcmul_(g, g, 1 - beta2);
  param.sub_(lr * (m / c1) / ((v / c2).sqrt() + kAdamEps));
}

void check_clean_images(const Model& m, const TensorData& clean) {
  const Shape s = m.input_shape();
  if (s.size() != 3) fail<ShapeMismatch>("", "model input", "images (C, H, W)", shape_str(s));
  if (clean.images.dim() != 4 || clean.images.size(1) != s[0] || clean.images.size(2) != s[1] ||
      clean.images.size(3) != s[2]) {
    fail<ShapeMismatch>("", "clean images",
                        "(N, " + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " +
                            std::to_string(s[2]) + ") for the model",
                        clean.images.defined() ? shape_str(Shape(clean.images.sizes().begin(),
                                                                 clean.images.sizes().end()))
                                               : "none");
  }
}

}  // namespace bdguard::detail
