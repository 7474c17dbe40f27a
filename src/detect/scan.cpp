// The detectors as scan runs them, and what each reports (bdguard/scan.h).
#include "bdguard/scan.h"

#include <algorithm>
#include <cmath>

#include "bdguard/error.h"

namespace bdguard {

const std::vector<std::string>& scan_detector_names() {
  static const std::vector<std::string> names{"mm-bd", "nc", "k-arm"};
  return names;
}

bool detector_needs_data(const std::string& name) { return name == "nc" || name == "k-arm"; }

std::string detector_list(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& x : names) s += (s.empty() ? "" : ",") + x;
  return s;
}

DetectorReport mm_bd_report(const MmBdResult& r) {
  DetectorReport d;
  d.name = "mm-bd";
  d.p_value = r.p_value;
  d.score = r.p_value > 0 ? std::min(kMaxScore, -std::log10(r.p_value)) : kMaxScore;
  d.target = r.target;
  nlohmann::json j = to_json(r);
  d.labels = j["labels"];
  d.seconds = r.seconds;
  d.details = {{"null_fit", j["null_fit"]}, {"pixel_range", j["pixel_range"]}};
  return d;
}

DetectorReport nc_report(const NeuralCleanseResult& r) {
  DetectorReport d;
  d.name = "nc";
  double best = 0;
  int64_t smallest = -1;
  for (const LabelTrigger& t : r.labels) {
    if (!t.refined) continue;
    if (t.mask_l1 < r.median) best = std::max(best, t.anomaly_index);
    if (smallest < 0 || t.mask_l1 < r.labels[static_cast<size_t>(smallest)].mask_l1) {
      smallest = t.label;
    }
    d.labels.push_back({{"label", t.label},
                        {"mask_l1", t.mask_l1},
                        {"anomaly_index", t.anomaly_index},
                        {"attack_success", t.attack_success}});
  }
  d.score = std::isfinite(best) ? best : kMaxScore;
  const double sf = 0.5 * std::erfc(d.score / std::sqrt(2.0));
  d.p_value = max_p_value(sf, static_cast<int64_t>(r.labels.size()));
  d.target = r.flagged.empty() ? smallest : r.flagged.front();
  d.seconds = r.seconds;
  d.details = {{"median", r.median},
               {"mad", r.mad},
               {"flagged", r.flagged},
               {"backdoored_by_anomaly_index", r.backdoored},
               {"screened", r.screened}};
  return d;
}

DetectorReport k_arm_report(const KArmResult& r) {
  DetectorReport d;
  d.name = "k-arm";
  d.score = r.score;
  d.target = r.target;
  d.source = r.source;
  nlohmann::json j = to_json(r);
  d.labels = j["arms"];
  d.seconds = r.seconds;
  d.details = {{"source", j["source"]},
               {"mode", r.source < 0 ? "universal" : "label-specific"},
               {"l1", r.l1},
               {"size", r.size},
               {"bound", r.bound},
               {"sym_l1", j["sym_l1"]},
               {"ratio", j["ratio"]},
               {"attack_success", r.attack_success},
               {"backdoored", r.backdoored},
               {"top_k", r.top_k},
               {"steps", r.steps},
               {"classes", r.classes},
               {"input", r.input},
               {"pixel_range", j["pixel_range"]}};
  return d;
}

nlohmann::json scan_verdict_json(const ScanVerdict& v, const std::vector<DetectorReport>& reports) {
  auto label = [](int64_t l) { return l >= 0 ? nlohmann::json(l) : nlohmann::json(); };
  nlohmann::json dets = nlohmann::json::array();
  for (const auto& d : reports) {
    dets.push_back({{"name", d.name},
                    {"score", d.score},
                    {"p_value", d.p_value ? nlohmann::json(*d.p_value) : nlohmann::json()},
                    {"target", label(d.target)},
                    {"source", label(d.source)},
                    {"labels", d.labels},
                    {"seconds", d.seconds}});
  }
  return {{"probability", v.probability}, {"backdoored", v.backdoored}, {"threshold", v.threshold},
          {"target", label(v.target)},    {"source", label(v.source)},  {"detectors", dets}};
}

ScanResult run_detectors(const Model& m, const TensorData* clean, const ScanOptions& o) {
  if (o.detectors.empty()) fail<InvalidArgument>("", "scan", "at least one detector", "none");
  ScanResult out;
  for (const std::string& name : o.detectors) {
    if (detector_needs_data(name) && (clean == nullptr || clean->size() == 0)) {
      fail<InvalidArgument>("", "detector " + name, "clean data (--clean)", "none");
    }
    if (name == "mm-bd") {
      out.mm_bd = mm_bd(m, o.mm_bd);
      out.reports.push_back(mm_bd_report(*out.mm_bd));
    } else if (name == "nc") {
      out.nc = neural_cleanse(m, *clean, o.nc);
      out.reports.push_back(nc_report(*out.nc));
    } else if (name == "k-arm") {
      out.k_arm = k_arm(m, *clean, o.k_arm);
      out.reports.push_back(k_arm_report(*out.k_arm));
    } else {
      fail<InvalidArgument>("", "detector", "mm-bd, nc or k-arm", "'" + name + "'");
    }
  }
  return out;
}

}  // namespace bdguard
