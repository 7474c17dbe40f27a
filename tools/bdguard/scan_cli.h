// What `bdguard scan` computes and writes, shared by the scan command and a campaign's
// scan task (`campaign init --methods scan`).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/scan.h"
#include "common.h"
#include "detect_cli.h"

namespace bdguard::cli {

// The flags of a scan besides the model's and the global ones.
struct ScanFlags {
  std::string clean, detectors = "auto", calibration;
  bool no_data = false;
  double threshold = kScanThreshold;
  NcFlags nc;  // --seed, --labels, --nc-*, --pixel-range
  MmBdOptions mm;
  KArmOptions k_arm;  // --k-arm-*
};

// Binds --detectors, --calibration, --threshold, --mm-*, --k-arm-* and (`with_nc`) the Neural
// Cleanse flags, in the help's `group` when given (not --clean, --no-data, --out: the
// caller's).
void add_scan_flags(CLI::App& sub, ScanFlags& f, bool with_nc = true,
                    const std::string& group = "");

// The shipped calibrations (models/, installed under share/bdguard/): the default of a scan
// with clean data, and of a --no-data scan. scripts/make-scan-calibration.sh makes them.
constexpr const char* kDefaultCalibration = "scan-calibration.json";
constexpr const char* kDefaultNoDataCalibration = "scan-calibration-no-data.json";

// The calibration file a scan uses, "" for the uncalibrated rule: --calibration FILE as
// given; "none": the uncalibrated rule; not given: the first shipped one (above; with
// --no-data only the second) that is found and was fitted for the detectors the scan runs.
std::string resolved_calibration(const ScanFlags& f);

// The detectors a scan runs: the calibration's under "auto" (without one: mm-bd, and k-arm with
// data), else the listed ones; checked against the data and the calibration.
std::vector<std::string> scan_detector_list(const ScanFlags& f, const Calibration* c);

struct ScanRun {
  ScanVerdict verdict;
  ScanResult result;
  bool calibrated = false;
  nlohmann::json doc;                 // scan.json
  std::vector<std::string> triggers;  // files written under triggers/
};
// `bdguard scan`'s work: loads the model (mo.model) and the data, checks the flags,
// prepares `out` (prepare_output_dir with `force`), runs the detectors and writes
// scan.json, evidence.json and triggers/ into it.
ScanRun scan_to_folder(const ModelOptions& mo, const ScanFlags& f, const std::string& out,
                       bool force, bool quiet);

// "backdoored: yes (p = 0.97; target 3; mm-bd: p-value 0.001, label 3; k-arm: trigger
// 1.2% of the image, label 3)"; "uncalibrated" after p when no calibration was used.
std::string scan_verdict_line(const ScanRun& run);

// The detectors' scores as a campaign's task result keeps them (its `details`), and
// read back by `scan calibrate`: {"probability", "calibrated", "detectors": [{"name",
// "score", "p_value", "target"}]}.
nlohmann::json scan_task_details(const ScanRun& run);

}  // namespace bdguard::cli
