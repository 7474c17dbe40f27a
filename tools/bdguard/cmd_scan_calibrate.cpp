// bdguard scan calibrate: a scan's combination fitted on a finished `--methods scan`
// campaign with ground truth (docs/commands/scan.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "bdguard/campaign.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/scan.h"
#include "bdguard/zoo.h"
#include "commands.h"
#include "common.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;

struct CalibrateOptions {
  std::string campaign, out, transform = "log1p", detectors = "all", ground_truth;
  double l2 = 1.0;
  int folds = 5;
  bool force = false, json = false;
};

struct Labelled {
  std::vector<std::string> detectors;
  std::vector<std::vector<double>> scores;
  std::vector<int> y;
  nlohmann::json models = nlohmann::json::array();
  int64_t skipped = 0;
};

// Every ok task with ground truth: its detectors' scores (the task result's details).
Labelled labelled_scores(const Manifest& m) {
  Labelled out;
  for (const auto& model : m.models) {
    if (!model.truth) continue;
    const auto r = read_task_result(m.dir, model.index);
    if (!r || r->status != "ok" || r->key != task_key(model.sha256, m.settings)) {
      std::fprintf(stderr, "warning: %s: no finished result (%s); left out of the fit\n",
                   model.name.c_str(), r ? r->status.c_str() : "missing");
      ++out.skipped;
      continue;
    }
    const std::string file = task_result_path(m.dir, model.index);
    const nlohmann::json& dets =
        r->details.is_object() ? r->details.value("detectors", nlohmann::json()) : nlohmann::json();
    if (!dets.is_array() || dets.empty()) {
      fail(file, "details.detectors", "the scan's detectors and their scores", dets.dump());
    }
    std::vector<std::string> names;
    std::vector<double> row;
    for (const auto& d : dets) {
      if (!d.is_object() || !d.contains("name") || !d["name"].is_string() || !d.contains("score") ||
          !d["score"].is_number() || !std::isfinite(d["score"].get<double>())) {
        fail(file, "details.detectors", "{name, score} with a finite score", d.dump());
      }
      names.push_back(d["name"].get<std::string>());
      row.push_back(d["score"].get<double>());
    }
    if (out.detectors.empty()) out.detectors = names;
    if (names != out.detectors) {
      fail(file, "details.detectors", "the same detectors as the other tasks", dets.dump());
    }
    out.scores.push_back(row);
    out.y.push_back(model.truth->backdoored ? 1 : 0);
    out.models.push_back(model.name);
  }
  return out;
}

// The columns of `l` for the detectors listed in `list` ("all": every one), in its order.
void keep_detectors(Labelled& l, const std::string& list, const std::string& campaign) {
  if (list == "all") return;
  std::vector<size_t> cols;
  std::vector<std::string> names;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    const auto it = std::find(l.detectors.begin(), l.detectors.end(), item);
    if (it == l.detectors.end() || std::find(names.begin(), names.end(), item) != names.end()) {
      std::string have;
      for (const auto& d : l.detectors) have += (have.empty() ? "" : ",") + d;
      fail<InvalidArgument>(campaign, "--detectors",
                            "all, or distinct detectors among the campaign's (" + have + ")",
                            "'" + list + "'");
    }
    cols.push_back(static_cast<size_t>(it - l.detectors.begin()));
    names.push_back(item);
  }
  if (cols.empty()) fail<InvalidArgument>(campaign, "--detectors", "all or a list", "''");
  for (auto& row : l.scores) {
    std::vector<double> kept;
    for (size_t c : cols) kept.push_back(row[c]);
    row = kept;
  }
  l.detectors = names;
}

// What the fit was made on: the campaign, its ground truth and, when the models came
// from `bdguard zoo make`, the zoo's options (its seed, size and recipe).
nlohmann::json trained_on(const Manifest& m, const Labelled& l) {
  int64_t backdoored = 0;
  for (int v : l.y) backdoored += v;
  nlohmann::json t = {{"campaign", m.dir},
                      {"manifest_sha256", sha256_file((fs::path(m.dir) / kManifestJson).string())},
                      {"ground_truth", m.ground_truth_file},
                      {"ground_truth_sha256", m.ground_truth_sha256},
                      {"models_source", m.models_source},
                      {"models", l.y.size()},
                      {"backdoored", backdoored},
                      {"clean", static_cast<int64_t>(l.y.size()) - backdoored},
                      {"left_out", l.skipped},
                      {"scan_settings", m.settings}};
  const fs::path zoo = fs::path(m.models_source).parent_path();
  if (fs::is_regular_file(zoo / kZooPlanJson)) {
    try {
      nlohmann::json options = to_json(read_zoo_plan(zoo.string()).options);
      options.erase("out");
      t["zoo"] = {{"dir", zoo.string()},
                  {"plan_sha256", sha256_file((zoo / kZooPlanJson).string())},
                  {"options", options}};
    } catch (const Error& e) {
      std::fprintf(stderr, "warning: %s\n", e.what());
    }
  }
  return t;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

int run_calibrate(const CalibrateOptions& o) {
  Manifest m = read_manifest(o.campaign);
  if (!o.ground_truth.empty()) {
    // Another answer key (e.g. only the models whose attack took): models it leaves out
    // are left out of the fit.
    for (auto& model : m.models) model.truth.reset();
    attach_ground_truth(m.models, read_ground_truth(o.ground_truth), o.ground_truth);
    m.ground_truth_file = fs::absolute(o.ground_truth).lexically_normal().string();
    m.ground_truth_sha256 = sha256_file(o.ground_truth);
  }
  const std::string methods = m.settings.value("methods", "detect");
  if (methods != "scan") {
    fail<InvalidArgument>(o.campaign, "campaign", "one made with --methods scan",
                          "one with --methods " + methods);
  }
  Labelled l = labelled_scores(m);
  keep_detectors(l, o.detectors, o.campaign);
  int64_t positives = 0;
  for (int v : l.y) positives += v;
  if (positives < 2 || static_cast<int64_t>(l.y.size()) - positives < 2) {
    fail<InvalidArgument>(
        o.campaign, "ground truth", "at least 2 backdoored and 2 clean models with finished scans",
        std::to_string(positives) + " backdoored and " +
            std::to_string(l.y.size() - static_cast<size_t>(positives)) + " clean");
  }
  if (fs::exists(o.out) && !o.force) {
    fail<InvalidArgument>(o.out, "", "a new file (or --force)", "a file that exists");
  }
  Calibration c =
      fit_calibration(l.scores, l.y, l.detectors, o.transform, o.l2, o.folds, trained_on(m, l));
  c.metrics["models_fitted"] = l.models;
  const nlohmann::json doc = to_json(c);
  write_file_atomic(o.out, doc.dump(2) + "\n");
  if (o.json) {
    print_json(doc);
    return 0;
  }
  std::string weights;
  for (size_t d = 0; d < c.detectors.size(); ++d) {
    weights += (d ? ", " : "") + c.detectors[d] + " " + number(c.weights[d]);
  }
  std::printf("calibration %s: %zu models (%lld backdoored); weights %s, intercept %s",
              o.out.c_str(), l.y.size(), static_cast<long long>(positives), weights.c_str(),
              number(c.intercept).c_str());
  if (c.metrics.contains("cv_roc_auc")) {
    std::printf("; %d-fold cross-validated ROC-AUC %s, cross-entropy %s", o.folds,
                number(c.metrics["cv_roc_auc"].get<double>()).c_str(),
                number(c.metrics["cv_cross_entropy"].get<double>()).c_str());
  }
  std::printf("\n");
  return 0;
}

}  // namespace

void setup_scan_calibrate(CLI::App& scan) {
  auto o = std::make_shared<CalibrateOptions>();
  auto* sub = scan.add_subcommand(
      "calibrate",
      "fit scan's combination on a finished --methods scan campaign with ground truth");
  sub->add_option("--campaign", o->campaign, "the campaign folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--out", o->out, "the calibration file to write (JSON)")->required();
  sub->add_option("--ground-truth", o->ground_truth,
                  "CSV model,backdoored[,target,...] instead of the campaign's (models it does "
                  "not list are left out)")
      ->check(CLI::ExistingFile);
  sub->add_option("--detectors", o->detectors,
                  "the detectors to combine: all the campaign's, or a list of them (mm-bd "
                  "alone: a calibration for --no-data scans)")
      ->capture_default_str();
  sub->add_option("--transform", o->transform, "each score's feature: identity or log1p")
      ->check(CLI::IsMember({"identity", "log1p"}))
      ->capture_default_str();
  sub->add_option("--l2", o->l2, "ridge penalty on the weights (not the intercept)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  sub->add_option("--folds", o->folds,
                  "cross-validation folds for the metrics (models dealt in order; 0: none)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  sub->add_flag("--force", o->force, "overwrite --out");
  sub->add_flag("--json", o->json, "print the calibration file");
  sub->callback([o] { run_calibrate(*o); });
}

}  // namespace bdguard::cli
