// K-Arm's per-label reference: each label's trigger size on clean models, and a
// model's K-Arm score against it (bdguard/scan.h, docs/detectors.md).
#include <algorithm>
#include <cmath>

#include "bdguard/error.h"
#include "bdguard/scan.h"

namespace bdguard {
namespace {

int64_t classes_of(const DetectorReport& k) {
  const nlohmann::json c = k.details.value("classes", nlohmann::json());
  return c.is_number_integer() ? c.get<int64_t>() : 0;
}

std::vector<int64_t> input_of(const DetectorReport& k) {
  const nlohmann::json in = k.details.value("input", nlohmann::json());
  std::vector<int64_t> out;
  if (!in.is_array()) return out;
  for (const auto& v : in) {
    if (!v.is_number_integer()) return {};
    out.push_back(v.get<int64_t>());
  }
  return out;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t;
  for (int64_t v : s) t += (t.empty() ? "" : "x") + std::to_string(v);
  return t.empty() ? "unknown" : t;
}

// A universal arm's label and size, or false for a pair or a malformed entry.
bool universal_arm(const nlohmann::json& arm, int64_t classes, int64_t& label, double& size) {
  if (!arm.is_object() || !arm.contains("source") || !arm["source"].is_null()) return false;
  const nlohmann::json& t = arm.value("target", nlohmann::json());
  const nlohmann::json& s = arm.value("size", nlohmann::json());
  if (!t.is_number_integer() || !s.is_number()) return false;
  label = t.get<int64_t>();
  size = s.get<double>();
  return label >= 0 && label < classes && size > 0 && std::isfinite(size);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

KArmReference k_arm_reference(const std::vector<const DetectorReport*>& clean) {
  if (clean.empty()) {
    fail<InvalidArgument>("", "K-Arm reference", "the K-Arm reports of clean models", "none");
  }
  KArmReference ref;
  ref.classes = classes_of(*clean.front());
  ref.input = input_of(*clean.front());
  if (ref.classes < 2 || ref.input.size() != 3) {
    fail<InvalidArgument>("", "K-Arm reference", "reports that give the model's classes and input",
                          std::to_string(ref.classes) + " classes, input " + shape_text(ref.input));
  }
  std::vector<std::vector<double>> logs(static_cast<size_t>(ref.classes));
  for (const DetectorReport* k : clean) {
    if (classes_of(*k) != ref.classes || input_of(*k) != ref.input) {
      fail<InvalidArgument>("", "K-Arm reference",
                            "clean models of one task (" + std::to_string(ref.classes) +
                                " classes, input " + shape_text(ref.input) + ")",
                            "one of " + std::to_string(classes_of(*k)) + " classes, input " +
                                shape_text(input_of(*k)));
    }
    for (const auto& arm : k->labels) {
      int64_t label = 0;
      double size = 0;
      if (universal_arm(arm, ref.classes, label, size)) {
        logs[static_cast<size_t>(label)].push_back(std::log(size));
      }
    }
  }
  const double bound = KArmOptions{}.universal_bound;
  for (const auto& v : logs) ref.sizes.push_back(v.empty() ? bound : std::exp(median(v)));
  ref.models = static_cast<int64_t>(clean.size());
  return ref;
}

ReferencedScore k_arm_referenced_score(const KArmReference& ref, const DetectorReport& k) {
  ReferencedScore best;
  best.score = -INFINITY;
  for (const auto& arm : k.labels) {
    int64_t label = 0;
    double size = 0;
    if (!universal_arm(arm, ref.classes, label, size)) continue;
    const double s = std::log(ref.sizes[static_cast<size_t>(label)] / size);
    if (s > best.score) {
      best.score = s;
      best.target = label;
      best.size = size;
      best.reference = ref.sizes[static_cast<size_t>(label)];
    }
  }
  if (k.source >= 0 && k.score > best.score) {
    best.score = k.score;
    best.target = k.target;
    best.source = k.source;
    best.size = k.details.value("size", 1.0);
    best.reference = k.details.value("bound", KArmOptions{}.specific_bound);
  }
  if (!std::isfinite(best.score)) {
    fail<InvalidArgument>("", "K-Arm report", "at least one universal arm or a pair",
                          "no arm to score");
  }
  return best;
}

std::string k_arm_reference_mismatch(const KArmReference& ref, const DetectorReport& k) {
  const int64_t classes = classes_of(k);
  const std::vector<int64_t> input = input_of(k);
  if (classes == ref.classes && input == ref.input) return "";
  return "the reference is of " + std::to_string(ref.classes) + "-class models of " +
         shape_text(ref.input) + " images; this model has " + std::to_string(classes) +
         " classes and " + shape_text(input) + " images";
}

nlohmann::json to_json(const KArmReference& r) {
  return {{"classes", r.classes}, {"input", r.input}, {"sizes", r.sizes}, {"models", r.models}};
}

}  // namespace bdguard
