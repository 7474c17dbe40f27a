// bdguard scan calibrate: a scan's combination fitted on a finished `--methods scan`
// campaign with ground truth (docs/commands/scan.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "bdguard/campaign.h"
#include "bdguard/config.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/scan.h"
#include "bdguard/zoo.h"
#include "campaign_cli.h"
#include "commands.h"
#include "common.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxScanJsonBytes = size_t{64} << 20;  // evidence.json holds every arm

struct CalibrateOptions {
  std::string campaign, out, transform = "log1p", detectors = "all", ground_truth;
  std::string reference = "auto";
  double l2 = 1.0;
  int folds = 5;
  bool force = false, json = false;
};

struct Labelled {
  std::vector<std::string> detectors;
  std::vector<std::vector<DetectorReport>> reports;  // per model, in `detectors`' order
  std::vector<int> y;
  nlohmann::json models = nlohmann::json::array();
  int64_t skipped = 0;
};

// The detectors' reports of one finished scan task, as its scan.json (scores, targets,
// per-label statistics) and evidence.json (each detector's own fields) hold them. A
// K-Arm report written before K-Arm recorded the model's classes and input gets them
// from the model file.
std::vector<DetectorReport> task_reports(const Manifest& m, const CampaignModel& model) {
  const std::string dir = (fs::path(m.dir) / "tasks" / std::to_string(model.index)).string();
  const std::string file = dir + "/scan.json";
  const nlohmann::json scan = read_json_file(file, kMaxScanJsonBytes, "a bdguard scan.json");
  const nlohmann::json evidence =
      fs::is_regular_file(dir + "/evidence.json")
          ? read_json_file(dir + "/evidence.json", kMaxScanJsonBytes, "a scan's evidence.json")
          : nlohmann::json::object();
  const nlohmann::json& dets = scan.value("detectors", nlohmann::json());
  if (!dets.is_array() || dets.empty()) {
    fail(file, "detectors", "the scan's detectors and their scores", dets.dump());
  }
  auto label = [&file](const nlohmann::json& d, const char* key) -> int64_t {
    const nlohmann::json& v = d.value(key, nlohmann::json());
    if (v.is_null()) return -1;
    if (!v.is_number_integer())
      fail(file, std::string("detectors.") + key, "a label or null", v.dump());
    return v.get<int64_t>();
  };
  std::vector<DetectorReport> out;
  for (const auto& d : dets) {
    if (!d.is_object() || !d.contains("name") || !d["name"].is_string() || !d.contains("score") ||
        !d["score"].is_number() || !std::isfinite(d["score"].get<double>())) {
      fail(file, "detectors", "{name, score} with a finite score", d.dump());
    }
    DetectorReport r;
    r.name = d["name"].get<std::string>();
    r.score = d["score"].get<double>();
    if (d.contains("p_value") && d["p_value"].is_number()) r.p_value = d["p_value"].get<double>();
    r.target = label(d, "target");
    r.source = label(d, "source");
    r.labels = d.value("labels", nlohmann::json::array());
    r.details = evidence.value(r.name, nlohmann::json::object());
    if (!r.details.is_object()) r.details = nlohmann::json::object();
    if (r.name == "k-arm" && !r.details.contains("classes")) {
      const Model net = load(model_options_of(m.settings), model.path);
      r.details["classes"] = net.num_classes();
      r.details["input"] = net.input_shape();
    }
    out.push_back(std::move(r));
  }
  return out;
}

// Every ok task with ground truth: its detectors' reports.
Labelled labelled_reports(const Manifest& m) {
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
    std::vector<DetectorReport> reports = task_reports(m, model);
    std::vector<std::string> names;
    for (const auto& d : reports) names.push_back(d.name);
    if (out.detectors.empty()) out.detectors = names;
    if (names != out.detectors) {
      fail(task_result_path(m.dir, model.index), "detectors",
           "the same detectors as the other tasks (" + detector_list(out.detectors) + ")",
           detector_list(names));
    }
    out.reports.push_back(std::move(reports));
    out.y.push_back(model.truth->backdoored ? 1 : 0);
    out.models.push_back(model.name);
  }
  return out;
}

// The reports of `l` for the detectors listed in `list` ("all": every one), in its order.
void keep_detectors(Labelled& l, const std::string& list, const std::string& campaign) {
  if (list == "all") return;
  std::vector<size_t> cols;
  std::vector<std::string> names;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    const auto it = std::find(l.detectors.begin(), l.detectors.end(), item);
    if (it == l.detectors.end() || std::find(names.begin(), names.end(), item) != names.end()) {
      fail<InvalidArgument>(
          campaign, "--detectors",
          "all, or distinct detectors among the campaign's (" + detector_list(l.detectors) + ")",
          "'" + list + "'");
    }
    cols.push_back(static_cast<size_t>(it - l.detectors.begin()));
    names.push_back(item);
  }
  if (cols.empty()) fail<InvalidArgument>(campaign, "--detectors", "all or a list", "''");
  for (auto& row : l.reports) {
    std::vector<DetectorReport> kept;
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
  Labelled l = labelled_reports(m);
  keep_detectors(l, o.detectors, o.campaign);
  const bool has_k_arm =
      std::find(l.detectors.begin(), l.detectors.end(), "k-arm") != l.detectors.end();
  if (o.reference == "k-arm" && !has_k_arm) {
    fail<InvalidArgument>(o.campaign, "--reference k-arm", "k-arm among the detectors fitted",
                          detector_list(l.detectors));
  }
  const bool with_reference = o.reference == "k-arm" || (o.reference == "auto" && has_k_arm);
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
  Calibration c = fit_calibration(l.reports, l.y, l.detectors, o.transform, o.l2, o.folds,
                                  with_reference, trained_on(m, l));
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
  if (c.k_arm_reference) {
    std::printf("; K-Arm's reference from %lld clean models",
                static_cast<long long>(c.k_arm_reference->models));
  }
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
  sub->add_option("--reference", o->reference,
                  "K-Arm's per-label reference from the clean models: auto (when k-arm is "
                  "fitted), k-arm or none (K-Arm's own score)")
      ->check(CLI::IsMember({"auto", "k-arm", "none"}))
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
