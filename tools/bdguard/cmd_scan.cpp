// bdguard scan: several detectors on one model, one calibrated verdict
// (docs/commands/scan.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>

#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/scan.h"
#include "commands.h"
#include "common.h"
#include "detect_cli.h"

namespace bdguard::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct ScanCliOptions {
  ModelOptions model;
  GlobalOptions global;
  std::string clean, out, detectors = "auto", calibration;
  bool no_data = false, force = false, exit_code = false;
  double threshold = kScanThreshold;
  NcFlags nc;  // --seed, --labels, --nc-*, --pixel-range
  MmBdOptions mm;
  KArmOptions k_arm;  // --k-arm-*
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The detectors to run: the calibration's under "auto" (mm-bd, and k-arm with data,
// without one), else the listed ones; checked against the data and the calibration.
std::vector<std::string> detector_list(const ScanCliOptions& o, const Calibration* c) {
  std::vector<std::string> list;
  if (o.detectors == "auto") {
    if (c != nullptr) {
      list = c->detectors;
    } else {
      list = {"mm-bd"};
      if (!o.no_data) list.push_back("k-arm");
    }
  } else {
    std::stringstream in(o.detectors);
    for (std::string item; std::getline(in, item, ',');) {
      const auto& names = scan_detector_names();
      if (std::find(names.begin(), names.end(), item) == names.end() ||
          std::find(list.begin(), list.end(), item) != list.end()) {
        fail<InvalidArgument>("--detectors", "", "auto, or distinct names among mm-bd,nc,k-arm",
                              "'" + o.detectors + "'");
      }
      list.push_back(item);
    }
    if (list.empty()) fail<InvalidArgument>("--detectors", "", "auto or a list", "''");
  }
  for (const auto& d : list) {
    if (o.no_data && detector_needs_data(d)) {
      fail<InvalidArgument>("--no-data", "detector " + d, "data-free detectors only",
                            d + ", which needs --clean");
    }
  }
  if (c != nullptr) {
    std::vector<std::string> a = list, b = c->detectors;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) {
      std::string want, got;
      for (const auto& x : c->detectors) want += (want.empty() ? "" : ",") + x;
      for (const auto& x : list) got += (got.empty() ? "" : ",") + x;
      fail<InvalidArgument>(o.calibration, "calibration",
                            "one fitted for the detectors this scan runs (" + got + ")",
                            "one fitted for " + want);
    }
  }
  return list;
}

std::string number(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

// "backdoored: yes (p = 0.97; target 3; mm-bd: p-value 0.001, label 3; nc: anomaly
// index 3.10, label 3; k-arm: trigger 1.2% of the image, label 3)"; "uncalibrated"
// after p when no calibration was used.
std::string verdict_line(const ScanVerdict& v, const std::vector<DetectorReport>& reports,
                         bool calibrated) {
  std::string s = std::string("backdoored: ") + (v.backdoored ? "yes" : "no") +
                  " (p = " + number(v.probability, 2) + (calibrated ? "" : ", uncalibrated");
  if (v.target >= 0) s += "; target " + std::to_string(v.target);
  for (const auto& r : reports) {
    s += "; " + r.name + ": ";
    if (r.name == "nc") {
      s += "anomaly index " + number(r.score, 3);
    } else if (r.name == "k-arm") {
      s += "trigger " + number(100 * r.details.value("size", 1.0), 2) + "% of the image";
    } else {
      s += "p-value " + number(r.p_value.value_or(NAN), 2);
    }
    s += ", label " + std::to_string(r.target);
    if (r.source >= 0) s += " from " + std::to_string(r.source);
  }
  return s + ")";
}

nlohmann::json label_or_null(int64_t v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(); }

int run_scan(const ScanCliOptions& o) {
  const auto start = Clock::now();
  apply_threads(o.global.threads);
  if (o.clean.empty() && !o.no_data) {
    fail<InvalidArgument>("", "scan", "--clean DATA or --no-data", "neither");
  }
  std::optional<Calibration> calib;
  if (!o.calibration.empty()) calib = read_calibration(o.calibration);
  const std::vector<std::string> detectors = detector_list(o, calib ? &*calib : nullptr);
  Model m = load(o.model, o.model.model);
  m.require_classifier();
  std::optional<TensorData> data;
  if (!o.no_data) {
    LabDataset file(o.clean, m.input_shape(), data_options(o.model, m));
    data = read_tensor_data(file);
  }
  ScanOptions so;
  so.detectors = detectors;
  so.nc = nc_options(o.nc, m);
  so.mm_bd = o.mm;
  so.mm_bd.seed = o.nc.seed;
  so.k_arm = o.k_arm;
  so.k_arm.seed = o.nc.seed;
  so.k_arm.pixel_min = so.nc.pixel_min;
  so.k_arm.pixel_max = so.nc.pixel_max;
  if (!std::isnan(so.nc.pixel_min)) {
    so.mm_bd.pixel_min = so.nc.pixel_min;
    so.mm_bd.pixel_max = so.nc.pixel_max;
  } else if (data) {
    std::tie(so.mm_bd.pixel_min, so.mm_bd.pixel_max) = pixel_range(NAN, NAN, data->images);
  }
  prepare_output_dir(o.out, o.force);
  const double load_s = seconds_since(start);
  auto stages = nc_progress(o.global.quiet);
  so.nc.stage = stages.first;
  so.nc.progress = [&stages](int64_t done, int64_t total) {
    if (stages.second) stages.second(done, total);
  };
  auto k_arm_stages = nc_progress(o.global.quiet, "K-Arm");
  so.k_arm.stage = k_arm_stages.first;
  so.k_arm.progress = [&k_arm_stages](int64_t done, int64_t total) {
    if (k_arm_stages.second) k_arm_stages.second(done, total);
  };
  if (!o.global.quiet) std::fprintf(stderr, "scan: %zu detector(s)\n", detectors.size());
  ScanResult r = run_detectors(m, data ? &*data : nullptr, so);
  const ScanVerdict v = calib ? combine(*calib, r.reports, o.threshold)
                              : combine_uncalibrated(r.reports, o.threshold);
  std::vector<std::string> triggers;
  if (r.nc) triggers = write_triggers(*r.nc, trigger_labels(*r.nc), o.out);
  if (r.k_arm) {
    for (auto& f : write_k_arm_trigger(*r.k_arm, o.out)) triggers.push_back(std::move(f));
  }

  nlohmann::json doc;
  doc["probability"] = v.probability;
  doc["backdoored"] = v.backdoored;
  doc["threshold"] = v.threshold;
  doc["target"] = label_or_null(v.target);
  doc["source"] = label_or_null(v.source);
  nlohmann::json dets = nlohmann::json::array(), evidence = nlohmann::json::object();
  nlohmann::json det_times = nlohmann::json::object();
  for (const auto& d : r.reports) {
    dets.push_back({{"name", d.name},
                    {"score", d.score},
                    {"p_value", d.p_value ? nlohmann::json(*d.p_value) : nlohmann::json()},
                    {"target", label_or_null(d.target)},
                    {"source", label_or_null(d.source)},
                    {"labels", d.labels},
                    {"seconds", d.seconds}});
    evidence[d.name] = d.details;
    det_times[d.name] = d.seconds;
  }
  doc["detectors"] = dets;
  doc["calibration"] = {
      {"file", calib ? nlohmann::json(o.calibration) : nlohmann::json()},
      {"sha256", calib ? nlohmann::json(sha256_file(o.calibration)) : nlohmann::json()},
      {"trained_on", calib ? calib->trained_on : nlohmann::json()}};
  nlohmann::json settings = model_settings(o.model);
  settings["model"] = o.model.model;
  settings["clean"] = o.no_data ? nlohmann::json() : nlohmann::json(o.clean);
  settings["no_data"] = o.no_data;
  settings["detectors"] = detectors;
  settings["seed"] = o.nc.seed;
  settings["threads"] = at_threads();
  settings["combination"] =
      calib ? "logistic regression of the calibration file"
            : "uncalibrated: p = min(1, D * smallest p-value), probability = 0.05 / (0.05 + p)";
  if (r.mm_bd) settings["mm-bd"] = to_json(so.mm_bd);
  if (r.nc) settings["nc"] = to_json(so.nc);
  if (r.k_arm) settings["k-arm"] = to_json(so.k_arm);
  doc["settings"] = settings;
  doc["timings"] = {
      {"load_s", load_s}, {"detectors_s", det_times}, {"total_s", seconds_since(start)}};
  // scan.json holds the keys only; each detector's own model-level fields (the
  // null fit, the median and MAD) and the trigger files go into evidence.json.
  evidence["triggers"] = triggers;
  write_file_atomic(o.out + "/evidence.json", evidence.dump(2) + "\n");
  write_file_atomic(o.out + "/scan.json", doc.dump(2) + "\n");
  if (o.global.json) {
    print_json(doc);
  } else {
    std::printf("%s\n", verdict_line(v, r.reports, calib.has_value()).c_str());
  }
  return o.exit_code && v.backdoored ? 3 : 0;
}

}  // namespace

void setup_scan(CLI::App& app) {
  auto opt = std::make_shared<ScanCliOptions>();
  auto* sub = app.add_subcommand(
      "scan",
      "Is the model backdoored? MM-BD, K-Arm and Neural Cleanse, combined into one probability");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  auto* clean = sub->add_option("--clean", opt->clean, "clean validation data (lab HDF5)")
                    ->check(CLI::ExistingFile);
  sub->add_flag("--no-data", opt->no_data, "no data: run only the data-free detectors")
      ->excludes(clean);
  sub->add_option("--out", opt->out, "output folder: scan.json, triggers/")->required();
  add_force_flag(*sub, opt->force);
  sub->add_option("--detectors", opt->detectors, "auto, or a list among mm-bd,nc,k-arm")
      ->capture_default_str();
  sub->add_option("--calibration", opt->calibration,
                  "calibration file (default: none, the uncalibrated rule)")
      ->check(CLI::ExistingFile);
  sub->add_option("--threshold", opt->threshold, "probability from which a model is backdoored")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_flag("--exit-code", opt->exit_code, "exit with code 3 when the model is backdoored");
  add_nc_options(*sub, opt->nc);
  sub->add_option("--mm-starts", opt->mm.starts, "MM-BD: random starts per class")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  sub->add_option("--mm-steps", opt->mm.steps, "MM-BD: optimisation steps at most")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  sub->add_option("--mm-lr", opt->mm.lr, "MM-BD: Adam's step, a fraction of the pixel range")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--k-arm-steps", opt->k_arm.steps, "K-Arm: optimisation steps at most, all arms")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  sub->add_option("--k-arm-batches-per-step", opt->k_arm.batches_per_step,
                  "K-Arm: mini-batches per step")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  sub->add_option("--k-arm-arms", opt->k_arm.max_arms, "K-Arm: arms (labels, pairs) at most")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  sub->add_option("--k-arm-min-arms", opt->k_arm.min_arms,
                  "K-Arm: universal arms at least (labels most often in the top k)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  sub->callback([opt] {
    const int rc = run_scan(*opt);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace bdguard::cli
