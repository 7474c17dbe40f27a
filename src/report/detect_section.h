// The detection part of a run's report: the section of report.md / report.html, its
// plots, its part of summary.json and of the conclusion.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/report.h"
#include "report/document.h"

namespace bdguard::report {

void add_detection_section(Document& d, const RunReport& r, const PlotResult& plots);
// The plots and the data blocks they read (none without detection).
std::vector<PlotSpec> detection_plots(const RunReport& r);
std::string detection_data(const RunReport& r);
nlohmann::json detection_json(const RunReport& r);
// One or two sentences, or "" without detection.
std::string detection_conclusion(const RunReport& r);

}  // namespace bdguard::report
