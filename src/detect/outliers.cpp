// The MAD outlier test of Neural Cleanse, and its results as JSON and images.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "bdguard/detect.h"

namespace bdguard {
namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

OutlierTest mad_outliers(const std::vector<double>& norms, const std::vector<size_t>& reference,
                         double threshold) {
  std::vector<double> ref;
  if (reference.empty()) {
    ref = norms;
  } else {
    for (size_t p : reference) ref.push_back(norms[p]);
  }
  OutlierTest t;
  t.median = median_of(ref);
  std::vector<double> dev;
  for (double x : ref) dev.push_back(std::fabs(x - t.median));
  // 1.4826: the consistency constant that makes the MAD estimate a normal's sigma.
  t.mad = 1.4826 * median_of(dev);
  for (size_t i = 0; i < norms.size(); ++i) {
    const double d = std::fabs(norms[i] - t.median);
    t.index.push_back(t.mad > 0 ? d / t.mad
                                : (d == 0 ? 0.0 : std::numeric_limits<double>::infinity()));
  }
  std::vector<size_t> flagged;
  for (size_t i = 0; i < norms.size(); ++i) {
    if (norms[i] < t.median && t.index[i] > threshold) flagged.push_back(i);
  }
  std::stable_sort(flagged.begin(), flagged.end(),
                   [&](size_t a, size_t b) { return norms[a] < norms[b]; });
  t.flagged = flagged;
  return t;
}

nlohmann::json to_json(const NeuralCleanseOptions& o) {
  return {{"labels", o.labels.empty() ? nlohmann::json("all") : nlohmann::json(o.labels)},
          {"seed", o.seed},
          {"batch", o.batch},
          {"batches_per_step", o.batches_per_step},
          {"max_steps", o.max_steps},
          {"lr", o.lr},
          {"betas", {o.beta1, o.beta2}},
          {"init_cost", o.init_cost},
          {"attack_success_threshold", o.attack_success},
          {"patience", o.patience},
          {"cost_multiplier_up", o.cost_multiplier},
          {"cost_multiplier_down", std::pow(o.cost_multiplier, 1.5)},
          {"early_stop", o.early_stop},
          {"early_stop_threshold", o.early_stop_threshold},
          {"early_stop_patience", o.early_stop_patience},
          {"label_batch", o.label_batch},
          {"full_below", o.full_below},
          {"screen_steps", o.screen_steps},
          {"screen_batches", o.screen_batches},
          {"screen_lr", o.screen_lr},
          {"refine", o.refine},
          {"reference", o.reference},
          {"eval_images", o.eval_images},
          {"anomaly_threshold", o.anomaly_threshold}};
}

nlohmann::json to_json(const NeuralCleanseResult& r) {
  nlohmann::json labels = nlohmann::json::array();
  for (const auto& l : r.labels) {
    nlohmann::json e = {
        {"label", l.label},
        {"mask_l1", l.mask_l1},
        {"attack_success",
         l.refined ? nlohmann::json(100.0 * l.attack_success) : nlohmann::json(nullptr)},
        {"anomaly_index",
         std::isfinite(l.anomaly_index) ? nlohmann::json(l.anomaly_index) : nlohmann::json("inf")},
        {"below_median", l.mask_l1 < r.median},
        {"reached_threshold", l.reached},
        {"steps", l.steps},
        {"final_cost", l.cost},
        {"refined", l.refined}};
    if (r.screened) e["reference"] = l.reference;
    labels.push_back(e);
  }
  return {{"method", "neural-cleanse"},
          {"labels", labels},
          {"median", r.median},
          {"mad", r.mad},
          {"flagged", r.flagged},
          {"backdoored", r.backdoored},
          {"screened", r.screened},
          {"n_clean", r.n_clean},
          {"pixel_range", {r.pixel_min, r.pixel_max}}};
}

at::Tensor mask_image(const LabelTrigger& t) { return (t.mask.to(at::kFloat) * 255).unsqueeze(0); }

at::Tensor pattern_image(const LabelTrigger& t, double lo, double hi) {
  return (t.pattern.to(at::kFloat) - lo) * (255.0 / (hi - lo));
}

at::Tensor trigger_image(const LabelTrigger& t, double lo, double hi) {
  return pattern_image(t, lo, hi) * t.mask.to(at::kFloat).unsqueeze(0);
}

}  // namespace bdguard
