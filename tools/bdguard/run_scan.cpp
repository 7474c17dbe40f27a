// The scan stage of `bdguard run` and `bdguard demo` (cmd_run.h): bdguard scan's verdict
// on the BadNet beside the detection stage's Neural Cleanse run.
#include <algorithm>
#include <cstdio>
#include <optional>

#include "bdguard/detect_files.h"
#include "bdguard/scan.h"
#include "cmd_run.h"
#include "scan_cli.h"

namespace bdguard::cli {

nlohmann::json run_scan_stage(const Model& m, const NeuralCleanseResult& nc, const RunOptions& o,
                              const TensorData& clean) {
  ScanOptions so;
  so.detectors = {"mm-bd", "k-arm"};
  so.mm_bd.seed = o.nc.seed;
  so.mm_bd.pixel_min = nc.pixel_min;
  so.mm_bd.pixel_max = nc.pixel_max;
  so.k_arm.seed = o.nc.seed;
  so.k_arm.pixel_min = nc.pixel_min;
  so.k_arm.pixel_max = nc.pixel_max;
  ScanResult sr = run_detectors(m, &clean, so);
  const std::string file = resolved_calibration(ScanFlags{});  // auto, with data
  std::optional<Calibration> calib;
  if (!file.empty()) calib = read_calibration(file);
  std::vector<DetectorReport> reports = sr.reports;
  reports.push_back(nc_report(nc));
  ScanVerdict v;
  if (calib) {
    std::vector<DetectorReport> fitted;
    for (const auto& r : reports) {
      const auto& d = calib->detectors;
      if (std::find(d.begin(), d.end(), r.name) != d.end()) fitted.push_back(r);
    }
    v = combine(*calib, fitted, kScanThreshold);
  } else {
    v = combine_uncalibrated(reports, kScanThreshold);
  }
  nlohmann::json doc = scan_verdict_json(v, reports);
  doc["calibrated"] = calib.has_value();
  doc["calibration"] = calibration_json(calib ? &*calib : nullptr, file, /*is_default=*/true);
  if (!v.reference.is_null()) doc["calibration"]["reference"] = v.reference;
  doc["triggers"] = write_k_arm_trigger(*sr.k_arm, o.out);
  doc["settings"] = {
      {"mm-bd", to_json(so.mm_bd)},
      {"k-arm", to_json(so.k_arm)},
      {"combination", calib
                          ? "logistic regression of the calibration file (" +
                                detector_list(calib->detectors) + "; the others listed as evidence)"
                          : "uncalibrated: p = min(1, D * smallest p-value), probability = "
                            "0.05 / (0.05 + p)"}};
  return doc;
}

std::string run_scan_summary(const nlohmann::json& scan) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s (p = %.2f%s)",
                scan["backdoored"].get<bool>() ? "backdoored" : "no backdoor found",
                scan["probability"].get<double>(),
                scan["target"].is_null()
                    ? ""
                    : ("; target " + std::to_string(scan["target"].get<int64_t>())).c_str());
  return buf;
}

}  // namespace bdguard::cli
