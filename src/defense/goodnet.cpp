#include "bdguard/goodnet.h"

#include "bdguard/error.h"
#include "bdguard/evaluate.h"

namespace bdguard {

std::vector<int64_t> goodnet_labels(const std::vector<int64_t>& badnet,
                                    const std::vector<int64_t>& pruned, int64_t num_classes) {
  if (badnet.size() != pruned.size()) {
    throw InvalidArgument(describe("", "GoodNet predictions",
                                   std::to_string(badnet.size()) + " labels from each net",
                                   std::to_string(pruned.size()) + " from the pruned net"));
  }
  std::vector<int64_t> out(badnet.size());
  for (size_t i = 0; i < badnet.size(); ++i) out[i] = badnet[i] == pruned[i] ? badnet[i] : num_classes;
  return out;
}

static double rate_of(const std::vector<int64_t>& labels, int64_t value) {
  int64_t hits = 0;
  for (int64_t l : labels) hits += l == value;
  return percent(hits, static_cast<int64_t>(labels.size()));
}

GoodNetRow goodnet_row(const std::string& pruned_name, int64_t num_classes,
                       const std::vector<int64_t>& clean_labels,
                       const std::vector<int64_t>& poisoned_labels,
                       const std::vector<int64_t>& badnet_clean,
                       const std::vector<int64_t>& badnet_poisoned,
                       const std::vector<int64_t>& pruned_clean,
                       const std::vector<int64_t>& pruned_poisoned) {
  GoodNetRow r;
  r.pruned = pruned_name;
  r.n_clean = static_cast<int64_t>(clean_labels.size());
  r.n_poisoned = static_cast<int64_t>(poisoned_labels.size());
  auto g_clean = goodnet_labels(badnet_clean, pruned_clean, num_classes);
  auto g_poisoned = goodnet_labels(badnet_poisoned, pruned_poisoned, num_classes);
  r.goodnet_accuracy = match_rate(g_clean, clean_labels);
  r.goodnet_asr = match_rate(g_poisoned, poisoned_labels);
  r.detection_rate = rate_of(g_poisoned, num_classes);
  r.false_alarm_rate = rate_of(g_clean, num_classes);
  r.badnet_accuracy = match_rate(badnet_clean, clean_labels);
  r.badnet_asr = match_rate(badnet_poisoned, poisoned_labels);
  r.pruned_accuracy = match_rate(pruned_clean, clean_labels);
  r.pruned_asr = match_rate(pruned_poisoned, poisoned_labels);
  return r;
}

nlohmann::json to_json(const GoodNetRow& r) {
  return {{"pruned", r.pruned},
          {"goodnet_accuracy", r.goodnet_accuracy},
          {"goodnet_asr", r.goodnet_asr},
          {"detection_rate", r.detection_rate},
          {"false_alarm_rate", r.false_alarm_rate},
          {"badnet_accuracy", r.badnet_accuracy},
          {"badnet_asr", r.badnet_asr},
          {"pruned_accuracy", r.pruned_accuracy},
          {"pruned_asr", r.pruned_asr},
          {"n_clean", r.n_clean},
          {"n_poisoned", r.n_poisoned}};
}

}  // namespace bdguard
