// STRIP's plot: both entropy distributions and the threshold.
#include "bdguard/strip_files.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "report/gnuplot.h"

namespace bdguard {

std::string strip_data(const StripReport& r) {
  std::ostringstream gp;
  for (const auto& [name, v] : {std::pair{"$strip_clean", &r.test_scores},
                                std::pair{"$strip_poisoned", &r.poisoned_scores}}) {
    gp << name << " << EOD\n";
    for (double x : *v) gp << report::num(x) << "\n";
    gp << "EOD\n";
  }
  return gp.str();
}

namespace {

// Three significant digits, for the key.
std::string short_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

PlotSpec strip_plot(const StripReport& r) {
  double hi = r.threshold;
  for (const auto* v : {&r.test_scores, &r.poisoned_scores}) {
    for (double x : *v) hi = std::max(hi, x);
  }
  const double width = std::max(hi, 1e-6) / 50;  // 50 bins up to the largest score
  std::ostringstream gp;
  gp << "set datafile separator whitespace\nunset datafile columnheaders\n";
  gp << "set title 'STRIP: entropy of the superimposed inputs (test data)'\n";
  gp << "set xlabel 'mean entropy of the model output over the overlays (bits)'\n";
  gp << "set ylabel 'fraction of inputs'\nset key top right\nset grid ytics\n";
  // Both distributions on the same bins, each box as wide as its bin, filled half
  // transparent with an outline of its own colour: where they overlap, both stay visible.
  gp << "set style fill transparent solid 0.35 border\nset boxwidth " << report::num(width)
     << " absolute\nbin(x) = " << report::num(width) << " * floor(x / " << report::num(width)
     << ") + " << report::num(width / 2) << "\n";
  gp << "set xrange [0:" << report::num(hi * 1.05 + width) << "]\nset yrange [0:*]\n"
     << "set offsets 0, 0, graph 0.08, 0\n";
  gp << "set arrow 1 from " << report::num(r.threshold) << ", graph 0 to "
     << report::num(r.threshold) << ", graph 1 nohead dt 2 lw 2 lc rgb '#000000' front\n";
  const double nc = std::max<double>(1, static_cast<double>(r.test_scores.size()));
  const double np = std::max<double>(1, static_cast<double>(r.poisoned_scores.size()));
  gp << "plot $strip_clean using (bin($1)):(1.0 / " << report::num(nc)
     << ") smooth frequency with boxes lc rgb '#1f77b4' title 'clean test inputs', \\\n"
     << "     $strip_poisoned using (bin($1)):(1.0 / " << report::num(np)
     << ") smooth frequency with boxes lc rgb '#d62728' title 'poisoned test inputs', \\\n"
     << "     NaN with lines dt 2 lw 2 lc rgb '#000000' title 'threshold " << short_num(r.threshold)
     << " bits (validation FRR " << short_num(r.valid_frr) << " %)'\n";
  return {"strip_entropy", "STRIP: entropy of clean and poisoned test inputs, and the threshold",
          gp.str()};
}

PlotResult write_strip_plots(const StripReport& r, const std::string& dir, const ReportOptions& o) {
  return report::draw_plots(dir, "plots.gp", strip_data(r), {strip_plot(r)}, o);
}

}  // namespace bdguard
