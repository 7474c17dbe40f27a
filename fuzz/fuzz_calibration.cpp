// Fuzzes the scan calibration file reader: the bytes are parsed as JSON as
// read_calibration does (parse_json_text: nested at most 64 deep) and then as a
// calibration (parse_calibration); an accepted one
// is combined with a K-Arm report of a 10-class 1x28x28 model (its reference applied)
// and of a 3-class one (not applied). Anything but a bdguard::Error escaping is a finding
// (a std::exception from an unchecked JSON access), as are crashes and sanitizer reports.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/config.h"
#include "bdguard/error.h"
#include "bdguard/scan.h"

namespace {

bdguard::DetectorReport k_arm_report(int64_t classes) {
  bdguard::DetectorReport r;
  r.name = "k-arm";
  for (int64_t l = 0; l < classes; ++l) {
    r.labels.push_back({{"target", l}, {"source", nullptr}, {"size", 0.01 * double(l + 1)}});
  }
  r.labels.push_back({{"target", 1}, {"source", 0}, {"size", 0.002}});
  r.score = 0.5;
  r.target = 0;
  r.details = {{"classes", classes}, {"input", {1, 28, 28}}, {"size", 0.01}, {"bound", 0.02}};
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json doc = bdguard::parse_json_text(text, "fuzz.json", "a scan calibration");
    const bdguard::Calibration c = bdguard::parse_calibration(doc, "fuzz.json");
    for (int64_t classes : {10, 3}) {
      std::vector<bdguard::DetectorReport> reports;
      for (const auto& name : c.detectors) {
        bdguard::DetectorReport r = k_arm_report(classes);
        r.name = name;
        r.p_value = name == "k-arm" ? std::nullopt : std::optional<double>(0.01);
        reports.push_back(r);
      }
      const bdguard::ScanVerdict v = bdguard::combine(c, reports, 0.5);
      if (!(v.probability >= 0 && v.probability <= 1)) __builtin_trap();
      (void)bdguard::to_json(c).dump();
    }
  } catch (const bdguard::Error&) {
    // Refused with a message: the expected outcome for most inputs.
  }
  return 0;
}
