// Drawing plots with gnuplot (a child process, with a deadline): what every report of
// bdguard shares. A plot is a name, a title and the gnuplot commands that draw it;
// `draw_plots` writes one script that draws each plot as PNG and SVG into
// out_dir/plots and runs it there.
//
// The scripts name only fixed, relative file names (they run inside out_dir/plots), so
// no path reaches gnuplot; outside text in them (layer and model names, in titles)
// goes through `gp_string`, which cannot end the string or the command.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "bdguard/report.h"

namespace bdguard::report {

// Writes out_dir/plots/<script> (a preamble: data blocks and settings; then every spec
// for PNG and SVG) and runs gnuplot on it. Missing gnuplot, or gnuplot failing, gives
// warnings and no files, never an exception. Earlier files of these names are removed
// first, so no plot of an earlier run stays beside this run's report.
PlotResult draw_plots(const std::string& out_dir, const std::string& script,
                      const std::string& preamble, const std::vector<PlotSpec>& specs,
                      const ReportOptions& options);

// The script draw_plots writes.
std::string script_text(const std::string& script, const std::string& preamble,
                        const std::vector<PlotSpec>& specs, const ReportOptions& options);

// A gnuplot single-quoted string.
std::string gp_string(const std::string& s);
// "%.10g"
std::string num(double v);

}  // namespace bdguard::report
