// STRIP: entropy of the model's output on superimposed inputs (strip.h).
#include "bdguard/strip.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "bdguard/detect.h"
#include "bdguard/error.h"

namespace bdguard {
namespace {

// splitmix64: one well-mixed seed per (seed, stream, image).
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kPoolStream = 0;

}  // namespace

Strip::Strip(const Model& m, TensorData pool, const StripOptions& o)
    : m_(m), pool_(std::move(pool)), o_(o) {
  if (pool_.size() < 2) {
    fail<InvalidArgument>("", "STRIP's clean images", "at least 2 validation images",
                          std::to_string(pool_.size()));
  }
  if (o_.overlays < 1 || !(o_.frr >= 0 && o_.frr < 1) || !(o_.alpha > 0) || o_.batch < 1) {
    fail<InvalidArgument>(
        "", "STRIP options", "overlays >= 1, frr in [0, 1), alpha > 0",
        "overlays " + std::to_string(o_.overlays) + ", frr " + std::to_string(o_.frr));
  }
  const Shape s = m.input_shape();
  if (pool_.images.dim() != 4 || pool_.images.size(1) != s[0] || pool_.images.size(2) != s[1] ||
      pool_.images.size(3) != s[2]) {
    fail<ShapeMismatch>("", "STRIP's clean images", "images of the model's input " + shape_str(s),
                        "another shape");
  }
  pool_.images = pool_.images.to(at::kFloat);
  std::tie(lo_, hi_) = pixel_range(o_.pixel_min, o_.pixel_max, pool_.images);
}

std::vector<double> Strip::score_rows(const at::Tensor& images, uint64_t stream, bool in_pool,
                                      const ProgressFn& progress) const {
  at::NoGradGuard no_grad;
  const int64_t n = images.size(0), pool = pool_.size(), k = o_.overlays;
  const int64_t per_pass = std::max<int64_t>(1, o_.batch / k);  // images per forward pass
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t s = 0; s < n; s += per_pass) {
    const int64_t b = std::min(per_pass, n - s);
    std::vector<int64_t> pick;
    pick.reserve(static_cast<size_t>(b * k));
    for (int64_t i = s; i < s + b; ++i) {
      Rng rng(mix(mix(o_.seed ^ (stream << 56)) + static_cast<uint64_t>(i)));
      for (int64_t j = 0; j < k; ++j) {
        // A pool image never overlays itself.
        int64_t p =
            static_cast<int64_t>(rng.below(static_cast<uint64_t>(in_pool ? pool - 1 : pool)));
        if (in_pool && p >= i) ++p;
        pick.push_back(p);
      }
    }
    at::Tensor x = images.narrow(0, s, b).to(at::kFloat).repeat_interleave(k, 0);
    at::Tensor over = pool_.images.index_select(0, at::tensor(pick, at::kLong));
    at::Tensor blend = (x + o_.alpha * over).clamp(lo_, hi_);
    at::Tensor p = m_.probabilities(blend).to(at::kDouble);
    // Entropy in bits; 0 log 0 = 0.
    at::Tensor h = -(p * at::log2(p.clamp_min(1e-300))).sum(1);
    at::Tensor mean = h.view({b, k}).mean(1).contiguous();
    for (int64_t i = 0; i < b; ++i) out[static_cast<size_t>(s + i)] = mean[i].item<double>();
    if (progress) progress(s + b, n);
  }
  return out;
}

std::vector<double> Strip::scores(const at::Tensor& images, uint64_t stream,
                                  const ProgressFn& progress) const {
  return score_rows(images, stream, false, progress);
}

void Strip::calibrate(const ProgressFn& progress) {
  pool_scores_ = score_rows(pool_.images, kPoolStream, true, progress);
  std::vector<double> sorted = pool_scores_;
  std::sort(sorted.begin(), sorted.end());
  // The k-th smallest (k = floor(frr * n)): at most k validation images score below it.
  const auto k = static_cast<size_t>(std::floor(o_.frr * static_cast<double>(sorted.size())));
  threshold_ = sorted[std::min(k, sorted.size() - 1)];
}

double flagged_rate(const Strip& s, const std::vector<double>& scores) {
  int64_t hits = 0;
  for (double x : scores) hits += s.flagged(x);
  return percent(hits, static_cast<int64_t>(scores.size()));
}

nlohmann::json to_json(const StripOptions& o) {
  return {{"overlays", o.overlays}, {"alpha", o.alpha}, {"frr", o.frr}, {"seed", o.seed}};
}

nlohmann::json to_json(const StripReport& r) {
  return {{"threshold", r.threshold},           {"valid_frr", r.valid_frr}, {"frr", r.frr},
          {"detection_rate", r.detection_rate}, {"n_valid", r.n_valid},     {"n_test", r.n_test},
          {"n_poisoned", r.n_poisoned},         {"seconds", r.seconds}};
}

}  // namespace bdguard
