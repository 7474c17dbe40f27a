// bdguard.scan (bdguard scan --json): the detectors and their combined verdict. The
// shipped default calibration is chosen in bdguard/__init__.py; this part takes a file
// or None (the uncalibrated rule).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/scan.h"
#include "bdguard/scan_files.h"
#include "bindings.h"

namespace bdguard::python {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// "auto" (the calibration's detectors; without one mm-bd, and k-arm with data) or a list.
std::vector<std::string> detector_list(const py::object& detectors, const Calibration* c,
                                       bool with_data) {
  std::vector<std::string> list;
  if (py::isinstance<py::str>(detectors) && detectors.cast<std::string>() == "auto") {
    if (c != nullptr) return c->detectors;
    list = {"mm-bd"};
    if (with_data) list.push_back("k-arm");
    return list;
  }
  const auto& names = scan_detector_names();
  if (py::isinstance<py::str>(detectors)) {
    fail<InvalidArgument>("detectors", "", "\"auto\" or a list of detector names",
                          "'" + detectors.cast<std::string>() + "'");
  }
  for (const auto& item : detectors) {
    const std::string name = py::str(item);
    if (std::find(names.begin(), names.end(), name) == names.end() ||
        std::find(list.begin(), list.end(), name) != list.end()) {
      fail<InvalidArgument>("detectors", "", "distinct names among mm-bd, nc, k-arm",
                            "'" + name + "'");
    }
    list.push_back(name);
  }
  if (list.empty()) fail<InvalidArgument>("detectors", "", "at least one detector", "none");
  return list;
}

py::object scan(const PyModel& pm, const py::object& x, const py::object& detectors,
                const py::object& calibration, double threshold, uint64_t seed,
                const py::object& range, int64_t mm_starts, int mm_steps, double mm_lr,
                int k_arm_steps, int k_arm_batches_per_step, int64_t k_arm_arms,
                int64_t k_arm_min_arms, int k_arm_min_steps, const py::object& nc,
                const py::object& out, bool force, const py::object& progress) {
  const auto start = std::chrono::steady_clock::now();
  pm.model.require_classifier();
  if (!(threshold >= 0 && threshold <= 1)) {
    fail<InvalidArgument>("threshold", "", "a probability in [0, 1]", std::to_string(threshold));
  }
  std::optional<Calibration> calib;
  const std::string calib_file = calibration.is_none() ? "" : std::string(py::str(calibration));
  if (!calib_file.empty()) calib = read_calibration(calib_file);
  const bool with_data = !x.is_none();
  ScanOptions so;
  so.detectors = detector_list(detectors, calib ? &*calib : nullptr, with_data);
  for (const auto& d : so.detectors) {
    if (!with_data && detector_needs_data(d)) {
      fail<InvalidArgument>("detectors", d, "data-free detectors without x",
                            d + ", which needs clean images x");
    }
  }
  if (calib) {
    std::vector<std::string> a = so.detectors, b = calib->detectors;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) {
      fail<InvalidArgument>(calib_file, "calibration",
                            "one fitted for the detectors this scan runs",
                            "one fitted for other detectors");
    }
  }
  nlohmann::json nc_kw = nc.is_none() ? nlohmann::json::object() : to_json_value(nc, "nc");
  if (!nc_kw.is_object()) fail<InvalidArgument>("nc", "", "a dict of options", nc_kw.dump());
  if (!range.is_none()) nc_kw["pixel_range"] = to_json_value(range, "pixel_range");
  nc_kw["seed"] = seed;
  so.nc = nc_options_from(nc_kw, pm.model, "nc.");
  so.mm_bd.starts = mm_starts;
  so.mm_bd.steps = mm_steps;
  so.mm_bd.lr = mm_lr;
  so.mm_bd.seed = seed;
  so.k_arm.steps = k_arm_steps;
  so.k_arm.batches_per_step = k_arm_batches_per_step;
  so.k_arm.max_arms = k_arm_arms;
  so.k_arm.min_arms = k_arm_min_arms;
  so.k_arm.min_steps = k_arm_min_steps;
  so.k_arm.seed = seed;
  so.k_arm.pixel_min = so.nc.pixel_min;
  so.k_arm.pixel_max = so.nc.pixel_max;
  if (mm_starts < 1 || mm_steps < 1 || !(mm_lr > 0) || k_arm_steps < 1 ||
      k_arm_batches_per_step < 1 || k_arm_arms < 1 || k_arm_min_arms < 1 || k_arm_min_steps < 0) {
    fail<InvalidArgument>("scan", "mm_* and k_arm_* options", "positive numbers",
                          "a value below 1 (or a step <= 0)");
  }
  py::array a;
  std::optional<TensorData> data;
  if (with_data) {
    a = as_array(x);
    data.emplace();
    data->images = float_images(a, pm, "x");
    data->labels = at::zeros({data->images.size(0)}, at::kLong);
  }
  if (!std::isnan(so.nc.pixel_min)) {
    so.mm_bd.pixel_min = so.nc.pixel_min;
    so.mm_bd.pixel_max = so.nc.pixel_max;
  } else if (data) {
    std::tie(so.mm_bd.pixel_min, so.mm_bd.pixel_max) = pixel_range(NAN, NAN, data->images);
  }
  Progress p_nc(progress, "Neural Cleanse"), p_k(progress, "K-Arm");
  so.nc.progress = p_nc.fn();
  so.nc.stage = p_nc.stage_fn();
  so.k_arm.progress = p_k.fn();
  so.k_arm.stage = p_k.stage_fn();
  const std::string dir = out.is_none() ? "" : std::string(py::str(out));
  nlohmann::json settings = pm.settings;
  settings["model"] = pm.name;
  settings["clean"] = with_data ? nlohmann::json(array_text(a)) : nlohmann::json();
  settings["no_data"] = !with_data;
  settings["detectors"] = so.detectors;
  settings["seed"] = seed;
  settings["combination"] =
      calib ? "logistic regression of the calibration file"
            : "uncalibrated: p = min(1, D * smallest p-value), probability = 0.05 / (0.05 + p)";
  const double load_s = seconds_since(start);
  const nlohmann::json doc = without_gil([&] {
    if (!dir.empty()) prepare_output_dir(dir, force);
    ScanResult r = run_detectors(pm.model, data ? &*data : nullptr, so);
    const ScanVerdict v =
        calib ? combine(*calib, r.reports, threshold) : combine_uncalibrated(r.reports, threshold);
    nlohmann::json d = scan_verdict_json(v, r.reports);
    // "default" is bdguard.scan's to set (bdguard/__init__.py chooses the shipped file).
    d["calibration"] = calibration_json(calib ? &*calib : nullptr, calib_file, false);
    if (!v.reference.is_null()) d["calibration"]["reference"] = v.reference;
    settings["threads"] = at::get_num_threads();
    if (r.mm_bd) settings["mm-bd"] = to_json(so.mm_bd);
    if (r.nc) settings["nc"] = to_json(so.nc);
    if (r.k_arm) settings["k-arm"] = to_json(so.k_arm);
    d["settings"] = settings;
    nlohmann::json times = nlohmann::json::object();
    for (const auto& rep : r.reports) times[rep.name] = rep.seconds;
    d["timings"] = {{"load_s", load_s}, {"detectors_s", times}, {"total_s", seconds_since(start)}};
    if (!dir.empty()) {
      std::vector<std::string> triggers;
      if (r.nc) triggers = write_triggers(*r.nc, trigger_labels(*r.nc), dir);
      if (r.k_arm) {
        for (auto& f : write_k_arm_trigger(*r.k_arm, dir)) triggers.push_back(std::move(f));
      }
      write_scan_plots(r, dir, ReportOptions{});
      write_file_atomic(dir + "/scan.json", d.dump(2) + "\n");
    }
    return d;
  });
  return to_python(doc);
}

}  // namespace

void bind_scan(py::module_& m) {
  const MmBdOptions mm;
  const KArmOptions ka;
  m.def("_scan", &scan, py::arg("model"), py::arg("x") = py::none(), py::kw_only(),
        py::arg("detectors") = "auto", py::arg("calibration") = py::none(),
        py::arg("threshold") = kScanThreshold, py::arg("seed") = 0,
        py::arg("pixel_range") = py::none(), py::arg("mm_starts") = mm.starts,
        py::arg("mm_steps") = mm.steps, py::arg("mm_lr") = mm.lr, py::arg("k_arm_steps") = ka.steps,
        py::arg("k_arm_batches_per_step") = ka.batches_per_step,
        py::arg("k_arm_arms") = ka.max_arms, py::arg("k_arm_min_arms") = ka.min_arms,
        py::arg("k_arm_min_steps") = ka.min_steps, py::arg("nc") = py::none(),
        py::arg("out") = py::none(), py::arg("force") = false, py::arg("progress") = py::none(),
        "bdguard scan with a calibration file or None (the uncalibrated rule); bdguard.scan "
        "chooses the shipped default");
}

}  // namespace bdguard::python
