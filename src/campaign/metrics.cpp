// A campaign's metrics against its ground truth: ROC AUC (Mann-Whitney, ties half),
// the ROC curve, TrojAI's cross-entropy, the confusion counts, target accuracy.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "bdguard/campaign.h"

namespace bdguard {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

double roc_auc(const std::vector<double>& p, const std::vector<int>& truth) {
  const size_t n = p.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  // Ranks from 1, a tied group sharing its average rank: each tie then counts 1/2.
  double rank_sum = 0;
  int64_t pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && p[order[j]] == p[order[i]]) ++j;
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) {
      if (truth[order[k]] == 1) {
        rank_sum += rank;
        ++pos;
      }
    }
    i = j;
  }
  const int64_t neg = static_cast<int64_t>(n) - pos;
  if (pos == 0 || neg == 0) return kNaN;
  const double P = static_cast<double>(pos), N = static_cast<double>(neg);
  return (rank_sum - P * (P + 1) / 2) / (P * N);
}

std::vector<RocPoint> roc_curve(const std::vector<double>& p, const std::vector<int>& truth) {
  const size_t n = p.size();
  const auto pos = std::count(truth.begin(), truth.end(), 1);
  const auto neg = static_cast<int64_t>(n) - pos;
  if (pos == 0 || neg == 0) return {};
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  std::vector<RocPoint> out = {{std::numeric_limits<double>::infinity(), 0, 0}};
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    for (; j < n && p[order[j]] == p[order[i]]; ++j) (truth[order[j]] == 1 ? tp : fp) += 1;
    out.push_back({p[order[i]], static_cast<double>(fp) / static_cast<double>(neg),
                   static_cast<double>(tp) / static_cast<double>(pos)});
    i = j;
  }
  return out;
}

double cross_entropy(const std::vector<double>& p, const std::vector<int>& truth) {
  if (p.empty()) return kNaN;
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double q = std::clamp(p[i], kCrossEntropyClip, 1 - kCrossEntropyClip);
    sum -= truth[i] == 1 ? std::log(q) : std::log(1 - q);
  }
  return sum / static_cast<double>(p.size());
}

Confusion confusion(const std::vector<int>& verdict, const std::vector<int>& truth) {
  Confusion c;
  for (size_t i = 0; i < verdict.size(); ++i) {
    if (verdict[i] < 0) {
      ++c.no_verdict;
    } else if (verdict[i] == 1) {
      ++(truth[i] == 1 ? c.tp : c.fp);
    } else {
      ++(truth[i] == 1 ? c.fn : c.tn);
    }
  }
  return c;
}

namespace {

// The metrics of `rows` (campaign_metrics without the per-kind breakdown).
nlohmann::json metrics_of(const std::vector<MergeRow>& rows, std::vector<RocPoint>* roc,
                          std::vector<std::string>* warnings) {
  std::vector<double> p;
  std::vector<int> y, verdict;
  int64_t without = 0, target_n = 0, target_correct = 0, target_detected = 0;
  for (const auto& r : rows) {
    if (!r.model.truth) {
      ++without;
      continue;
    }
    const bool ok = r.status == "ok";
    p.push_back(ok ? r.trojan_probability : kMissingProbability);
    y.push_back(r.model.truth->backdoored ? 1 : 0);
    verdict.push_back(ok && r.backdoored ? (*r.backdoored ? 1 : 0) : -1);
    if (r.model.truth->backdoored && r.model.truth->target) {
      ++target_n;
      if (ok && r.backdoored && *r.backdoored) {
        ++target_detected;
        if (r.target && *r.target == *r.model.truth->target) ++target_correct;
      }
    }
  }
  if (p.empty()) return nullptr;
  const double auc = roc_auc(p, y);
  if (roc) *roc = roc_curve(p, y);
  const auto n_bd = std::count(y.begin(), y.end(), 1);
  if (!std::isfinite(auc) && warnings) {
    warnings->push_back(std::string("ROC AUC undefined: the ground truth has only ") +
                        (n_bd ? "backdoored" : "clean") + " models");
  }
  const Confusion c = confusion(verdict, y);
  auto ratio = [](double a, double b) {
    return b > 0 ? nlohmann::json(a / b) : nlohmann::json(nullptr);
  };
  double brier = 0;
  for (size_t i = 0; i < p.size(); ++i) brier += (p[i] - y[i]) * (p[i] - y[i]);
  nlohmann::json doc = {
      {"n", p.size()},
      {"n_backdoored", n_bd},
      {"n_clean", static_cast<int64_t>(p.size()) - n_bd},
      {"n_without_ground_truth", without},
      {"roc_auc", number_or_null(auc)},
      {"cross_entropy", number_or_null(cross_entropy(p, y))},
      {"confusion",
       {{"tp", c.tp}, {"fp", c.fp}, {"tn", c.tn}, {"fn", c.fn}, {"no_verdict", c.no_verdict}}},
      {"accuracy", ratio(static_cast<double>(c.tp + c.tn), static_cast<double>(p.size()))},
      {"tpr", ratio(static_cast<double>(c.tp), static_cast<double>(c.tp + c.fn))},
      {"fpr", ratio(static_cast<double>(c.fp), static_cast<double>(c.fp + c.tn))},
      {"target",
       {{"n", target_n},
        {"correct", target_correct},
        {"accuracy", ratio(static_cast<double>(target_correct), static_cast<double>(target_n))},
        {"n_detected", target_detected},
        {"accuracy_detected",
         ratio(static_cast<double>(target_correct), static_cast<double>(target_detected))}}}};
  doc["brier"] = brier / static_cast<double>(p.size());
  return doc;
}

}  // namespace

nlohmann::json campaign_metrics(const std::vector<MergeRow>& rows, std::vector<RocPoint>* roc,
                                std::vector<std::string>* warnings) {
  nlohmann::json doc = metrics_of(rows, roc, warnings);
  if (doc.is_null()) return doc;
  // Per attack kind (the ground truth's `kind` column): the clean models with the
  // backdoored ones of that kind.
  std::map<std::string, std::vector<MergeRow>> kinds;
  for (const auto& r : rows) {
    if (!r.model.truth || !r.model.truth->backdoored) continue;
    const auto it = r.model.truth->extra.find("kind");
    if (it != r.model.truth->extra.end() && !it->second.empty()) kinds[it->second].push_back(r);
  }
  if (!kinds.empty()) {
    nlohmann::json by_kind = nlohmann::json::object();
    for (auto& [kind, subset] : kinds) {
      for (const auto& r : rows) {
        if (r.model.truth && !r.model.truth->backdoored) subset.push_back(r);
      }
      by_kind[kind] = metrics_of(subset, nullptr, nullptr);
    }
    doc["by_kind"] = by_kind;
  }
  return doc;
}

}  // namespace bdguard
