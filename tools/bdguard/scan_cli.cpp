// The scan's work, shared by `bdguard scan` and a campaign's scan task (scan_cli.h).
#include "scan_cli.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/scan_files.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string number(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

nlohmann::json label_or_null(int64_t v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(); }

nlohmann::json p_value_json(const DetectorReport& d) {
  return d.p_value ? nlohmann::json(*d.p_value) : nlohmann::json();
}

// A shipped file: beside an installed tool (PREFIX/bin/bdguard: PREFIX/share/bdguard/NAME),
// else in the source tree's models/ folder that the tool was built from; "" if neither.
std::string shipped_file(const std::string& name) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path p = exe.parent_path().parent_path() / "share" / "bdguard" / name;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
#ifdef BDGUARD_MODELS_DIR
  const fs::path p = fs::path(BDGUARD_MODELS_DIR) / name;
  if (fs::is_regular_file(p, ec)) return p.string();
#endif
  return "";
}

}  // namespace

void add_scan_flags(CLI::App& sub, ScanFlags& f, bool with_nc, const std::string& group) {
  std::vector<CLI::Option*> opts;
  opts.push_back(sub.add_option("--detectors", f.detectors,
                                "auto, or a list among " + detector_list(scan_detector_names()))
                     ->capture_default_str());
  opts.push_back(
      sub.add_option("--calibration", f.calibration,
                     "calibration file, or none for the uncalibrated rule (default: the one "
                     "shipped in models/ for the detectors that run)")
          ->check(CLI::ExistingFile | CLI::IsMember({"none"})));
  opts.push_back(
      sub.add_option("--threshold", f.threshold, "probability from which a model is backdoored")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str());
  if (with_nc) add_nc_options(sub, f.nc);
  opts.push_back(sub.add_option("--mm-starts", f.mm.starts, "MM-BD: random starts per class")
                     ->check(CLI::Range(int64_t{1}, int64_t{100000}))
                     ->capture_default_str());
  opts.push_back(sub.add_option("--mm-steps", f.mm.steps, "MM-BD: optimisation steps at most")
                     ->check(CLI::Range(1, 1000000))
                     ->capture_default_str());
  opts.push_back(
      sub.add_option("--mm-lr", f.mm.lr, "MM-BD: Adam's step, a fraction of the pixel range")
          ->check(CLI::PositiveNumber)
          ->capture_default_str());
  opts.push_back(
      sub.add_option("--k-arm-steps", f.k_arm.steps, "K-Arm: optimisation steps at most, all arms")
          ->check(CLI::Range(1, 1000000))
          ->capture_default_str());
  opts.push_back(sub.add_option("--k-arm-batches-per-step", f.k_arm.batches_per_step,
                                "K-Arm: mini-batches per step")
                     ->check(CLI::Range(1, 10000))
                     ->capture_default_str());
  opts.push_back(
      sub.add_option("--k-arm-arms", f.k_arm.max_arms, "K-Arm: arms (labels, pairs) at most")
          ->check(CLI::Range(int64_t{1}, int64_t{100000}))
          ->capture_default_str());
  opts.push_back(sub.add_option("--k-arm-min-arms", f.k_arm.min_arms,
                                "K-Arm: universal arms at least (labels most often in the top k)")
                     ->check(CLI::Range(int64_t{1}, int64_t{100000}))
                     ->capture_default_str());
  opts.push_back(sub.add_option("--k-arm-min-steps", f.k_arm.min_steps,
                                "K-Arm: steps every universal arm has at least (0: the bandit's "
                                "own stop)")
                     ->check(CLI::Range(0, 1000000))
                     ->capture_default_str());
  if (!group.empty()) {
    for (auto* o : opts) o->group(group);
  }
}

std::string resolved_calibration(const ScanFlags& f) {
  if (f.calibration == "none") return "";
  if (!f.calibration.empty()) return f.calibration;
  // The first shipped calibration fitted for the detectors this scan runs.
  std::vector<std::string> names{kDefaultNoDataCalibration};
  if (!f.no_data) names.insert(names.begin(), kDefaultCalibration);
  for (const auto& name : names) {
    const std::string file = shipped_file(name);
    if (file.empty()) continue;
    const Calibration c = read_calibration(file);
    try {
      scan_detector_list(f, &c);
      return file;
    } catch (const InvalidArgument&) {
      // fitted for other detectors
    }
  }
  return "";
}

std::vector<std::string> scan_detector_list(const ScanFlags& f, const Calibration* c) {
  std::vector<std::string> list;
  if (f.detectors == "auto") {
    if (c != nullptr) {
      list = c->detectors;
    } else {
      list = {"mm-bd"};
      if (!f.no_data) list.push_back("k-arm");
    }
  } else {
    std::stringstream in(f.detectors);
    for (std::string item; std::getline(in, item, ',');) {
      const auto& names = scan_detector_names();
      if (std::find(names.begin(), names.end(), item) == names.end() ||
          std::find(list.begin(), list.end(), item) != list.end()) {
        fail<InvalidArgument>("--detectors", "",
                              "auto, or distinct names among " + detector_list(names),
                              "'" + f.detectors + "'");
      }
      list.push_back(item);
    }
    if (list.empty()) fail<InvalidArgument>("--detectors", "", "auto or a list", "''");
  }
  for (const auto& d : list) {
    if (f.no_data && detector_needs_data(d)) {
      fail<InvalidArgument>("--no-data", "detector " + d, "data-free detectors only",
                            d + ", which needs --clean");
    }
  }
  if (c != nullptr) {
    std::vector<std::string> a = list, b = c->detectors;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) {
      fail<InvalidArgument>(
          f.calibration, "calibration",
          "one fitted for the detectors this scan runs (" + detector_list(list) + ")",
          "one fitted for " + detector_list(c->detectors));
    }
  }
  return list;
}

ScanRun scan_to_folder(const ModelOptions& mo, const ScanFlags& f, const std::string& out,
                       bool force, bool quiet) {
  const auto start = Clock::now();
  if (f.clean.empty() && !f.no_data) {
    fail<InvalidArgument>("", "scan", "--clean DATA or --no-data", "neither");
  }
  ScanFlags flags = f;
  flags.calibration = resolved_calibration(f);
  std::optional<Calibration> calib;
  if (!flags.calibration.empty()) calib = read_calibration(flags.calibration);
  const std::vector<std::string> detectors = scan_detector_list(flags, calib ? &*calib : nullptr);
  Model m = load(mo, mo.model);
  m.require_classifier();
  std::optional<TensorData> data;
  if (!f.no_data) {
    LabDataset file(f.clean, m.input_shape(), data_options(mo, m));
    data = read_tensor_data(file);
  }
  ScanOptions so;
  so.detectors = detectors;
  so.nc = nc_options(f.nc, m);
  so.mm_bd = f.mm;
  so.mm_bd.seed = f.nc.seed;
  so.k_arm = f.k_arm;
  so.k_arm.seed = f.nc.seed;
  so.k_arm.pixel_min = so.nc.pixel_min;
  so.k_arm.pixel_max = so.nc.pixel_max;
  if (!std::isnan(so.nc.pixel_min)) {
    so.mm_bd.pixel_min = so.nc.pixel_min;
    so.mm_bd.pixel_max = so.nc.pixel_max;
  } else if (data) {
    std::tie(so.mm_bd.pixel_min, so.mm_bd.pixel_max) = pixel_range(NAN, NAN, data->images);
  }
  prepare_output_dir(out, force);
  const double load_s = seconds_since(start);
  auto stages = nc_progress(quiet);
  so.nc.stage = stages.first;
  so.nc.progress = [&stages](int64_t done, int64_t total) {
    if (stages.second) stages.second(done, total);
  };
  auto k_arm_stages = nc_progress(quiet, "K-Arm");
  so.k_arm.stage = k_arm_stages.first;
  so.k_arm.progress = [&k_arm_stages](int64_t done, int64_t total) {
    if (k_arm_stages.second) k_arm_stages.second(done, total);
  };
  if (!quiet) std::fprintf(stderr, "scan: %zu detector(s)\n", detectors.size());
  ScanRun run;
  run.calibrated = calib.has_value();
  run.result = run_detectors(m, data ? &*data : nullptr, so);
  const ScanResult& r = run.result;
  const ScanVerdict v = calib ? combine(*calib, r.reports, f.threshold)
                              : combine_uncalibrated(r.reports, f.threshold);
  run.verdict = v;
  if (r.nc) run.triggers = write_triggers(*r.nc, trigger_labels(*r.nc), out);
  if (r.k_arm) {
    for (auto& file : write_k_arm_trigger(*r.k_arm, out)) run.triggers.push_back(std::move(file));
  }

  const PlotResult plots = write_scan_plots(r, out, ReportOptions{});
  for (const auto& w : plots.warnings) {
    if (!quiet) std::fprintf(stderr, "warning: %s\n", w.c_str());
  }

  nlohmann::json& doc = run.doc;
  doc = scan_verdict_json(v, r.reports);
  nlohmann::json evidence = nlohmann::json::object(), det_times = nlohmann::json::object();
  for (const auto& d : r.reports) {
    evidence[d.name] = d.details;
    det_times[d.name] = d.seconds;
  }
  doc["calibration"] =
      calibration_json(calib ? &*calib : nullptr, flags.calibration, f.calibration.empty());
  if (!v.reference.is_null()) doc["calibration"]["reference"] = v.reference;
  nlohmann::json settings = model_settings(mo);
  settings["model"] = mo.model;
  settings["clean"] = f.no_data ? nlohmann::json() : nlohmann::json(f.clean);
  settings["no_data"] = f.no_data;
  settings["detectors"] = detectors;
  settings["seed"] = f.nc.seed;
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
  evidence["triggers"] = run.triggers;
  evidence["plots"] = nlohmann::json::array();
  for (const auto& f : plots.files) evidence["plots"].push_back(f.file);
  write_file_atomic(out + "/evidence.json", evidence.dump(2) + "\n");
  write_file_atomic(out + "/scan.json", doc.dump(2) + "\n");
  return run;
}

std::string scan_verdict_line(const ScanRun& run) {
  const ScanVerdict& v = run.verdict;
  std::string s = std::string("backdoored: ") + (v.backdoored ? "yes" : "no") +
                  " (p = " + number(v.probability, 2) + (run.calibrated ? "" : ", uncalibrated");
  if (v.target >= 0) s += "; target " + std::to_string(v.target);
  for (const auto& r : run.result.reports) {
    s += "; " + r.name + ": ";
    if (r.name == "nc") {
      s += "anomaly index " + number(r.score, 3);
    } else if (r.name == "k-arm" && v.reference.is_object() &&
               v.reference.value("applied", false)) {
      // Against the calibration's per-label reference: the arm that counts.
      s += "trigger " + number(100 * v.reference.value("size", 1.0), 2) + "% of the image, " +
           number(100 * v.reference.value("reference_size", 1.0), 2) + "% on clean models";
      const nlohmann::json t = v.reference.value("target", nlohmann::json());
      const nlohmann::json src = v.reference.value("source", nlohmann::json());
      s += ", label " + (t.is_null() ? std::string("none") : t.dump());
      if (!src.is_null()) s += " from " + src.dump();
      continue;
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

nlohmann::json scan_task_details(const ScanRun& run) {
  nlohmann::json dets = nlohmann::json::array();
  for (const auto& d : run.result.reports) {
    dets.push_back({{"name", d.name},
                    {"score", d.score},
                    {"p_value", p_value_json(d)},
                    {"target", label_or_null(d.target)},
                    {"source", label_or_null(d.source)}});
  }
  return {{"probability", run.verdict.probability},
          {"calibrated", run.calibrated},
          {"source", label_or_null(run.verdict.source)},
          {"reference", run.verdict.reference},
          {"detectors", dets}};
}

}  // namespace bdguard::cli
