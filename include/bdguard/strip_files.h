// What `bdguard strip eval` writes (and `bdguard run` reuses): the entropy histogram
// of clean and poisoned test inputs with STRIP's threshold.
#pragma once

#include <string>

#include "bdguard/report.h"
#include "bdguard/strip.h"

namespace bdguard {

// The plot "strip_entropy" and the data block it reads.
PlotSpec strip_plot(const StripReport& r);
std::string strip_data(const StripReport& r);
// DIR/plots/strip_entropy.{png,svg}.
PlotResult write_strip_plots(const StripReport& r, const std::string& dir, const ReportOptions& o);

}  // namespace bdguard
