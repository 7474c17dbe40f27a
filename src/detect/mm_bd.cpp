// MM-BD: the maximum margin of every class from random starts, and the Gamma test of
// the largest (bdguard/mm_bd.h).
#include "bdguard/mm_bd.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "bdguard/error.h"

namespace bdguard {
namespace {

constexpr double kAdamEps = 1e-8, kBeta1 = 0.9, kBeta2 = 0.999;

std::pair<double, double> range_of(const MmBdOptions& o) {
  if (!std::isnan(o.pixel_min) && !std::isnan(o.pixel_max)) return {o.pixel_min, o.pixel_max};
  return {0.0, 255.0};
}

// Per start (rows of `z`, grouped by class `targets`): logit of the class minus the
// largest other logit.
at::Tensor margins_of(const at::Tensor& z, const at::Tensor& targets) {
  at::Tensor own = z.gather(1, targets.unsqueeze(1)).squeeze(1);
  at::Tensor others = z.scatter(1, targets.unsqueeze(1), -std::numeric_limits<float>::infinity());
  return own - std::get<0>(others.max(1));
}

// Optimises the starts of `classes` together; a class whose own loss settles stops, and
// its rows leave the batch (so a class's result does not depend on its batch, and the
// later steps cost only the classes still moving).
void optimize(const Model& m, const std::vector<int64_t>& classes, const MmBdOptions& o, double lo,
              double hi, MmBdResult& r) {
  const Shape s = m.input_shape();
  const int64_t n = o.starts;
  const int logits = m.logits_index();
  std::vector<at::Tensor> rows;
  for (int64_t c : classes) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed * 0x9e3779b97f4a7c15ULL +
                                                        static_cast<uint64_t>(c) + 1);
    Shape dims{n};
    dims.insert(dims.end(), s.begin(), s.end());
    rows.push_back(at::rand(dims, gen) * (hi - lo) + lo);
  }
  at::Tensor x = at::cat(rows);
  at::Tensor m1 = at::zeros_like(x), m2 = at::zeros_like(x);
  // live[j]: the index in `classes` of the j-th class in the batch.
  std::vector<size_t> live(classes.size());
  for (size_t i = 0; i < live.size(); ++i) live[i] = i;
  std::vector<double> last(classes.size(), 0), best(classes.size(), -INFINITY);
  std::vector<int> steps(classes.size(), 0);
  const double lr = o.lr * (hi - lo);
  auto targets_of = [&] {
    std::vector<int64_t> t;
    for (size_t i : live) t.push_back(classes[i]);
    return at::tensor(t, at::kLong).repeat_interleave(n);
  };
  auto record = [&](const at::Tensor& margin) {
    const auto b = static_cast<int64_t>(live.size());
    at::Tensor per = std::get<0>(margin.detach().to(at::kDouble).view({b, n}).max(1));
    for (int64_t j = 0; j < b; ++j) {
      double& v = best[live[static_cast<size_t>(j)]];
      v = std::max(v, per[j].item<double>());
    }
  };
  at::Tensor targets = targets_of();
  for (int step = 0; step < o.steps && !live.empty(); ++step) {
    const auto b = static_cast<int64_t>(live.size());
    at::Tensor xt = x.detach().requires_grad_(true);
    at::Tensor margin = margins_of(m.run(xt, {logits})[0], targets);
    at::Tensor loss = -margin.view({b, n}).sum(1);
    auto grad = torch::autograd::grad({loss.sum()}, {xt})[0];
    at::NoGradGuard no_grad;
    record(margin);
    at::Tensor loss_d = loss.detach().to(at::kDouble);
    std::vector<int64_t> keep;  // batch positions of the classes that move on
    for (int64_t j = 0; j < b; ++j) {
      const size_t k = live[static_cast<size_t>(j)];
      const double l = loss_d[j].item<double>();
      if (step > 0 && std::abs(last[k] - l) <= o.tolerance * std::abs(last[k])) continue;
      last[k] = l;
      steps[k] = step + 1;
      keep.push_back(j);
    }
    if (static_cast<int64_t>(keep.size()) < b) {
      // The settled classes' starts stay as they are: their best margin is recorded.
      std::vector<int64_t> keep_rows;
      std::vector<size_t> still;
      for (int64_t j : keep) {
        still.push_back(live[static_cast<size_t>(j)]);
        for (int64_t q = 0; q < n; ++q) keep_rows.push_back(j * n + q);
      }
      live = still;
      if (live.empty()) break;
      const at::Tensor idx = at::tensor(keep_rows, at::kLong);
      x = x.index_select(0, idx);
      m1 = m1.index_select(0, idx);
      m2 = m2.index_select(0, idx);
      grad = grad.index_select(0, idx);
      targets = targets_of();
    }
    const double t = step + 1;
    m1 = m1 * kBeta1 + grad * (1 - kBeta1);
    m2 = m2 * kBeta2 + grad * grad * (1 - kBeta2);
    at::Tensor update =
        (m1 / (1 - std::pow(kBeta1, t))) / ((m2 / (1 - std::pow(kBeta2, t))).sqrt() + kAdamEps);
    // Gradient ascent on the margin: the loss is its negative.
    x = (x - lr * update).clamp(lo, hi);
  }
  if (!live.empty()) {
    at::NoGradGuard no_grad;
    record(margins_of(m.run(x, {logits})[0], targets));
  }
  for (size_t i = 0; i < classes.size(); ++i) {
    r.margins[static_cast<size_t>(classes[i])] = best[i];
    r.steps[static_cast<size_t>(classes[i])] = steps[i];
  }
}

}  // namespace

MmBdResult mm_bd(const Model& m, const MmBdOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  m.require_classifier();
  const int64_t k = m.num_classes();
  if (k < 3) {
    fail<InvalidArgument>(m.origin, "MM-BD", "a classifier of at least 3 classes",
                          std::to_string(k) + " classes");
  }
  if (o.starts < 1 || o.steps < 0 || !(o.lr > 0) || o.class_batch < 1) {
    fail<InvalidArgument>("", "MM-BD options", "starts >= 1, steps >= 0, lr > 0, class batch >= 1",
                          "starts " + std::to_string(o.starts) + ", lr " + std::to_string(o.lr));
  }
  MmBdResult r;
  std::tie(r.pixel_min, r.pixel_max) = range_of(o);
  if (!(r.pixel_min < r.pixel_max)) {
    fail<InvalidArgument>("", "MM-BD pixel range", "min < max",
                          std::to_string(r.pixel_min) + ", " + std::to_string(r.pixel_max));
  }
  r.margins.assign(static_cast<size_t>(k), 0);
  r.steps.assign(static_cast<size_t>(k), 0);
  for (int64_t c0 = 0; c0 < k; c0 += o.class_batch) {
    std::vector<int64_t> classes;
    for (int64_t c = c0; c < std::min(k, c0 + o.class_batch); ++c) classes.push_back(c);
    optimize(m, classes, o, r.pixel_min, r.pixel_max, r);
  }
  const auto top = std::max_element(r.margins.begin(), r.margins.end());
  r.target = top - r.margins.begin();
  std::vector<double> null;
  for (size_t i = 0; i < r.margins.size(); ++i) {
    if (static_cast<int64_t>(i) != r.target) null.push_back(r.margins[i]);
  }
  const auto [lo_it, hi_it] = std::minmax_element(null.begin(), null.end());
  const double lo = *lo_it, spread = *hi_it - *lo_it;
  if (!(spread > 1e-9 * std::max(1.0, std::abs(*hi_it)))) {
    // Every other class reached the same margin: no spread to fit.
    r.p_value = *top > *hi_it + 1e-9 * std::max(1.0, std::abs(*hi_it)) ? 0 : 1;
  } else {
    // A null margin at or below 0: the location moves below the smallest.
    const double loc = lo > 0 ? 0 : lo - spread / static_cast<double>(null.size());
    r.null_fit = fit_gamma(null, loc);
    r.p_value = max_p_value(gamma_sf(r.null_fit, *top), k);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

nlohmann::json to_json(const MmBdOptions& o) {
  return {{"starts", o.starts},       {"steps", o.steps}, {"lr", o.lr},
          {"tolerance", o.tolerance}, {"seed", o.seed},   {"class_batch", o.class_batch}};
}

nlohmann::json to_json(const MmBdResult& r) {
  nlohmann::json labels = nlohmann::json::array();
  for (size_t i = 0; i < r.margins.size(); ++i) {
    labels.push_back({{"label", i}, {"max_margin", r.margins[i]}, {"steps", r.steps[i]}});
  }
  return {{"target", r.target},
          {"p_value", r.p_value},
          {"null_fit",
           {{"distribution", "gamma"},
            {"shape", r.null_fit.shape},
            {"scale", r.null_fit.scale},
            {"loc", r.null_fit.loc}}},
          {"pixel_range", {r.pixel_min, r.pixel_max}},
          {"labels", labels},
          {"seconds", r.seconds}};
}

}  // namespace bdguard
