// The merge: every task's result against the manifest, results.csv and results.json.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "bdguard/campaign.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "io/csv.h"

namespace bdguard {

namespace fs = std::filesystem;

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

nlohmann::json opt_json(const std::optional<int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// How a task's score became its trojan probability: Neural Cleanse's fixed logistic,
// or scan's own probability (its calibration file, or the uncalibrated rule).
nlohmann::json probability_map(const nlohmann::json& settings) {
  if (settings.value("methods", "detect") == "scan") {
    const std::string calib = scan_calibration_file(settings);
    return {{"score", "scan's probability (the score column repeats it)"},
            {"formula", calib.empty() ? "scan's uncalibrated rule (docs/detectors.md)"
                                      : "the logistic regression of the calibration file"},
            {"calibration", calib.empty() ? nlohmann::json(nullptr) : nlohmann::json(calib)},
            {"missing", kMissingProbability}};
  }
  return {{"score",
           "Neural Cleanse: the largest anomaly index of a label whose mask norm is "
           "below the median (0 if none)"},
          {"formula", "1 / (1 + exp(-" + fmt("%g", kProbabilitySlope) + " * (score - " +
                          fmt("%g", kProbabilityCentre) + ")))"},
          {"centre", kProbabilityCentre},
          {"slope", kProbabilitySlope},
          {"missing", kMissingProbability}};
}

}  // namespace

std::string scan_calibration_file(const nlohmann::json& settings) {
  const std::string calib = settings.value("calibration", "");
  return calib == "none" ? "" : calib;
}

MergeResult merge_campaign(const Manifest& m) {
  MergeResult out;
  for (const auto& model : m.models) {
    MergeRow row;
    row.model = model;
    try {
      auto r = read_task_result(m.dir, model.index);
      const std::string key = task_key(model.sha256, m.settings);
      if (!r) {
        row.status = "missing";
        row.error = "no result: the task has not run, is still running, or died without one";
      } else if (r->model_sha256 != model.sha256 || (!r->key.empty() && r->key != key)) {
        row.status = "stale";
        row.error =
            "the result is for other inputs (the manifest changed since): run the task again";
      } else if (r->status != "ok") {
        row.status = "failed";
        row.error = r->error;
        row.seconds = r->seconds;
      } else {
        row.status = "ok";
        row.score = r->score;
        row.trojan_probability = r->trojan_probability;
        row.suspect = r->suspect;
        row.backdoored = r->backdoored;
        row.target = r->target;
        row.seconds = r->seconds;
        row.peak_rss_mib = r->peak_rss_mib;
      }
    } catch (const Error& e) {
      row.status = "failed";
      row.error = e.what();
    }
    if (row.status == "ok") {
      ++out.n_ok;
    } else if (row.status == "failed") {
      ++out.n_failed;
    } else {
      ++out.n_missing;
    }
    out.rows.push_back(std::move(row));
  }
  out.metrics = campaign_metrics(out.rows, &out.roc, &out.warnings);
  return out;
}

std::string results_csv(const MergeResult& r) {
  std::string out = "index,model,trojan_probability,backdoored,target,seconds,score,status\n";
  for (const auto& row : r.rows) {
    const bool ok = row.status == "ok";
    std::string score;
    if (ok) score = std::isfinite(row.score) ? fmt("%.4f", row.score) : "inf";
    out += std::to_string(row.model.index) + "," + csv_field(row.model.name) + "," +
           fmt("%.6f", ok ? row.trojan_probability : kMissingProbability) + "," +
           (row.backdoored ? (*row.backdoored ? "1" : "0") : "") + "," +
           (row.target ? std::to_string(*row.target) : "") + "," +
           (row.seconds ? fmt("%.1f", *row.seconds) : "") + "," + score + "," + row.status + "\n";
  }
  return out;
}

nlohmann::json results_json(const Manifest& m, const MergeResult& r, const PlotResult& plots) {
  nlohmann::json models = nlohmann::json::array(), failed = nlohmann::json::array();
  for (const auto& row : r.rows) {
    const bool ok = row.status == "ok";
    nlohmann::json j = {
        {"index", row.model.index},
        {"model", row.model.name},
        {"path", row.model.path},
        {"sha256", row.model.sha256},
        {"status", row.status},
        {"error", ok ? nlohmann::json(nullptr) : nlohmann::json(row.error)},
        {"trojan_probability", ok ? row.trojan_probability : kMissingProbability},
        {"score",
         ok ? (std::isfinite(row.score) ? nlohmann::json(row.score) : nlohmann::json("inf"))
            : nlohmann::json(nullptr)},
        {"suspect_label",
         ok && row.suspect >= 0 ? nlohmann::json(row.suspect) : nlohmann::json(nullptr)},
        {"backdoored", row.backdoored ? nlohmann::json(*row.backdoored) : nlohmann::json(nullptr)},
        {"target", opt_json(row.target)},
        {"seconds", row.seconds ? nlohmann::json(*row.seconds) : nlohmann::json(nullptr)},
        {"peak_rss_mib",
         row.peak_rss_mib ? nlohmann::json(*row.peak_rss_mib) : nlohmann::json(nullptr)},
        {"ground_truth",
         row.model.truth
             ? nlohmann::json(
                   {{"backdoored", row.model.truth->backdoored},
                    {"target", row.model.truth->all_to_all ? nlohmann::json("all")
                                                           : opt_json(row.model.truth->target)},
                    {"kind", row.model.truth->extra.count("kind")
                                 ? nlohmann::json(row.model.truth->extra.at("kind"))
                                 : nlohmann::json(nullptr)}})
             : nlohmann::json(nullptr)}};
    models.push_back(j);
    if (!ok) {
      failed.push_back({{"index", row.model.index},
                        {"model", row.model.name},
                        {"status", row.status},
                        {"error", row.error},
                        {"trojan_probability", kMissingProbability}});
    }
  }
  nlohmann::json roc = nlohmann::json::array();
  for (const auto& p : r.roc) {
    roc.push_back({{"threshold", std::isfinite(p.threshold) ? nlohmann::json(p.threshold)
                                                            : nlohmann::json(nullptr)},
                   {"fpr", p.fpr},
                   {"tpr", p.tpr}});
  }
  nlohmann::json plot_files = nlohmann::json::array();
  for (const auto& p : plots.files) {
    plot_files.push_back({{"name", p.name}, {"file", p.file}, {"format", p.format}});
  }
  return {{"campaign", m.dir},
          {"methods", m.settings.value("methods", "detect")},
          {"n_models", r.rows.size()},
          {"n_ok", r.n_ok},
          {"n_failed", r.n_failed},
          {"n_missing", r.n_missing},
          {"probability_map", probability_map(m.settings)},
          {"metrics", r.metrics},
          {"roc", roc},
          {"failed", failed},
          {"models", models},
          {"ground_truth", m.ground_truth_file.empty() ? nlohmann::json(nullptr)
                                                       : nlohmann::json(m.ground_truth_file)},
          {"plots", plot_files},
          {"warnings", r.warnings}};
}

}  // namespace bdguard
