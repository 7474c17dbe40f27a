// K-Arm's pre-screening: which labels (and label pairs) to optimise (k_arm_screen.h).
#include "detect/k_arm_screen.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace bdguard::detail {
namespace {

constexpr double kTiny = 1e-8;  // the reference's floor on a pair's summed and median probability
constexpr int64_t kScreenBatch = 256;

// The softmax of the model's logits on every image, (N, K) double.
at::Tensor probabilities(const Model& m, const at::Tensor& images) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < images.size(0); s += kScreenBatch) {
    at::Tensor x = images.narrow(0, s, std::min(kScreenBatch, images.size(0) - s));
    parts.push_back(at::softmax(m.run(x, {m.logits_index()})[0].to(at::kDouble), 1));
  }
  return at::cat(parts);
}

struct Pair {
  int64_t target, source;
  double fraction, sum;
};

// The label-specific candidates: (t, s) with t in the top k of at least local_theta of
// the images predicted s, at most max_sources per target (largest summed probability).
std::vector<Pair> pairs(const at::Tensor& prob, const at::Tensor& in_top,
                        const std::vector<int64_t>& predicted, const KArmOptions& o) {
  const int64_t classes = prob.size(1);
  std::vector<std::vector<Pair>> by_target(static_cast<size_t>(classes));
  for (int64_t s = 0; s < classes; ++s) {
    std::vector<int64_t> rows;
    for (size_t i = 0; i < predicted.size(); ++i) {
      if (predicted[i] == s) rows.push_back(static_cast<int64_t>(i));
    }
    if (rows.empty() || static_cast<int64_t>(rows.size()) < o.min_source_images) continue;
    const at::Tensor ix = at::tensor(rows, at::kLong);
    const at::Tensor top = in_top.index_select(0, ix), p = prob.index_select(0, ix);
    const at::Tensor fraction = top.to(at::kDouble).mean(0).contiguous();
    for (int64_t t = 0; t < classes; ++t) {
      if (t == s || fraction[t].item<double>() < o.local_theta) continue;
      const at::Tensor values = p.select(1, t).masked_select(top.select(1, t));
      const double sum = values.sum().item<double>();
      if (sum > kTiny && values.median().item<double>() > kTiny) {
        by_target[static_cast<size_t>(t)].push_back({t, s, fraction[t].item<double>(), sum});
      }
    }
  }
  std::vector<Pair> out;
  for (auto& list : by_target) {
    std::stable_sort(list.begin(), list.end(),
                     [](const Pair& a, const Pair& b) { return a.sum > b.sum; });
    if (static_cast<int64_t>(list.size()) > o.max_sources) {
      list.resize(static_cast<size_t>(o.max_sources));
    }
    out.insert(out.end(), list.begin(), list.end());
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Pair& a, const Pair& b) { return a.sum > b.sum; });
  return out;
}

}  // namespace

KArmScreen k_arm_screen(const Model& m, const at::Tensor& images, const KArmOptions& o) {
  KArmScreen out;
  const at::Tensor prob = probabilities(m, images);
  const int64_t n = prob.size(0), classes = prob.size(1);
  // Python's round (the reference's): halves to even, round(2.5) = 2.
  out.top_k = classes <= 8
                  ? 2
                  : static_cast<int64_t>(std::nearbyint(static_cast<double>(classes) * o.gamma));
  out.top_k = std::clamp<int64_t>(out.top_k, 1, classes);
  const at::Tensor top = std::get<1>(prob.topk(out.top_k, 1));
  const at::Tensor first = top.select(1, 0).contiguous();
  out.predicted.assign(first.data_ptr<int64_t>(), first.data_ptr<int64_t>() + n);
  const at::Tensor in_top = at::zeros({n, classes}, at::kBool).scatter_(1, top, true);
  const at::Tensor count = in_top.sum(0).to(at::kDouble).contiguous();
  const at::Tensor mean = prob.mean(0).contiguous();
  // Labels by how often they are in the top k (ties: the larger mean probability).
  std::vector<int64_t> rank(static_cast<size_t>(classes));
  std::iota(rank.begin(), rank.end(), int64_t{0});
  const double* c = count.data_ptr<double>();
  const double* p = mean.data_ptr<double>();
  std::stable_sort(rank.begin(), rank.end(),
                   [&](int64_t a, int64_t b) { return c[a] != c[b] ? c[a] > c[b] : p[a] > p[b]; });
  const auto nd = static_cast<double>(n);
  auto universal = [&](int64_t label, bool passed) {
    KArmArm a;
    a.target = label;
    a.screen = c[label] / nd;
    a.passed_screen = passed;
    out.arms.push_back(a);
  };
  for (int64_t label : rank) {
    if (c[label] > o.global_theta * nd && static_cast<int64_t>(out.arms.size()) < o.max_arms) {
      universal(label, true);
    }
  }
  const bool any_universal = !out.arms.empty();
  for (int64_t label : rank) {
    if (static_cast<int64_t>(out.arms.size()) >= std::min(o.min_arms, o.max_arms)) break;
    if (c[label] <= o.global_theta * nd) universal(label, false);
  }
  if (!any_universal) {
    for (const Pair& pr : pairs(prob, in_top, out.predicted, o)) {
      if (static_cast<int64_t>(out.arms.size()) >= o.max_arms) break;
      KArmArm a;
      a.target = pr.target;
      a.source = pr.source;
      a.screen = pr.fraction;
      a.passed_screen = true;
      out.arms.push_back(a);
    }
  }
  return out;
}

}  // namespace bdguard::detail
