// What `bdguard compare` writes (and `bdguard run` reuses): DIR/compare.csv,
// compare.json, compare.md, compare.html (self-contained) and plots/compare.{png,svg}.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "bdguard/compare.h"
#include "bdguard/report.h"

namespace bdguard {

// The plot "compare" and the data block it reads (for reports that draw it with theirs).
PlotSpec compare_plot_spec(const CompareResult& r);
std::string compare_plot_data(const CompareResult& r);

// compare.csv and compare.json alone (a run's report has the rest).
void write_compare_tables(const CompareResult& r, const std::string& model_name,
                          const nlohmann::json& settings, const std::string& dir);
// Writes every file above into `dir` (which must exist); compare.json is to_json(r) with
// `settings` added. Returns the plots (warnings when gnuplot is missing or fails).
PlotResult write_compare_files(const CompareResult& r, const std::string& model_name,
                               const nlohmann::json& settings, const std::string& dir,
                               const ReportOptions& options);

}  // namespace bdguard
