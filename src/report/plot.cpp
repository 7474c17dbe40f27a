// The report's plots: a gnuplot script over the CSV files, run as a child process.
//
// The script names only fixed, relative file names (it runs inside out_dir/plots), so
// no path reaches gnuplot; the only outside text in it (layer and model names, in
// titles) goes through `gp_string`, which cannot end the string or the command.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/report.h"
#include "report/compare_section.h"
#include "report/detect_section.h"
#include "report/gnuplot.h"
#include "report/model_view.h"

extern char** environ;

namespace bdguard {
namespace {

using report::draw_plots;
using report::fixed2;
using report::gp_string;
using report::num;

bool has_test(const SweepResult& s) {
  return !s.steps.empty() && s.steps[0].test_accuracy.has_value();
}

using report::ModelView;

std::vector<ModelView> reached(const RunReport& r) {
  std::vector<ModelView> out;
  for (const auto& s : report::model_views(r)) {
    if (s.reached) out.push_back(s);
  }
  return out;
}

// Saved models by step (two drops can land on the same step), with "X=2, X=4" labels.
std::vector<std::pair<ModelView, std::string>> marks(const RunReport& r) {
  std::vector<std::pair<ModelView, std::string>> out;
  for (const ModelView& s : reached(r)) {
    if (!out.empty() && out.back().first.step == s.step) {
      out.back().second += ", X=" + num(s.drop);
    } else {
      out.push_back({s, "X=" + num(s.drop)});
    }
  }
  return out;
}

// The accuracy-and-ASR plot of one split ("valid" or "test").
void sweep_plot(std::ostringstream& gp, const RunReport& r, const std::string& split,
                double baseline, int64_t n_clean, int64_t n_poisoned) {
  const std::string split_name = split == "valid" ? "validation" : "test";
  gp << "set title "
     << gp_string("Pruning " + r.sweep.layer + " of " + r.model_name + ": " + split_name +
                  " data (" + std::to_string(n_clean) + " clean, " + std::to_string(n_poisoned) +
                  " poisoned images)")
     << "\n";
  gp << "set xlabel "
     << gp_string("fraction of the " + std::to_string(r.sweep.channels) + " channels of " +
                  r.sweep.layer + " pruned")
     << "\n";
  gp << "set ylabel 'rate (%)'\n";
  gp << "set xrange [0:1]\nset yrange [0:105]\nset offsets 0, 0, 0, 0\nset ytics 10\n"
     << "set grid ytics lc rgb '#dddddd'\n";
  gp << "set key left bottom box opaque\n";
  gp << "unset arrow\nunset label\n";
  for (const auto& [s, label] : marks(r)) {
    gp << "set arrow from " << num(s.fraction_pruned) << ", graph 0 to " << num(s.fraction_pruned)
       << ", graph 1 nohead dt 3 lc rgb '#777777'\n";
    gp << "set label " << gp_string(label + ": " + std::to_string(s.step) + " pruned") << " at "
       << num(s.fraction_pruned)
       << ", graph 0.55 rotate by 90 center offset -0.8,0 tc rgb '#555555'\n";
  }
  const std::string x = "(column('fraction_pruned'))";
  gp << "plot '../" << kSweepCsv << "' using " << x << ":(column('" << split
     << "_accuracy')) with linespoints lw 2 pt 7 ps 0.5 lc rgb '#1f77b4' title 'clean accuracy', "
        "\\\n";
  gp << "  '' using " << x << ":(column('" << split
     << "_asr')) with linespoints lw 2 pt 7 ps 0.5 lc rgb '#d62728' title 'attack success rate'";
  const int dash[] = {2, 4, 5};
  for (size_t i = 0; i < r.saved.size(); ++i) {
    double d = r.saved[i].saved.drop;
    std::string label = (split == "valid" ? "baseline - " : "test baseline - ") + num(d) +
                        " points (" + fixed2(baseline - d) + " %)";
    gp << ", \\\n  " << num(baseline - d) << " with lines dt " << dash[i % 3]
       << " lw 1.2 lc rgb '#555555' title " << gp_string(label);
  }
  if (!reached(r).empty()) {
    gp << ", \\\n  $saved using (column('fraction_pruned')):(column('" << split
       << "_accuracy')) with points pt 7 ps 1.8 lc rgb '#1f77b4' title 'saved models (accuracy)'";
    gp << ", \\\n  $saved using (column('fraction_pruned')):(column('" << split
       << "_asr')) with points pt 5 ps 1.6 lc rgb '#d62728' title 'saved models (ASR)'";
  }
  gp << "\n";
}

void activation_plot(std::ostringstream& gp, const RunReport& r) {
  const auto& s = r.sweep;
  gp << "set title "
     << gp_string("Mean activation of each channel of " + s.layer + " at " + s.cut_layer +
                  " (clean validation data), in pruning order")
     << "\n";
  gp << "set xlabel 'channel, in pruning order (first pruned on the left)'\n";
  gp << "set ylabel 'mean activation'\n";
  double lo = 0;
  for (double v : s.mean_activation) lo = std::min(lo, v);
  gp << "set xrange [-1:" << s.channels << "]\nset yrange [" << num(lo) << ":*]\nset ytics auto\n";
  gp << "set offsets 0, 0, graph 0.1, 0\n";
  gp << "set grid ytics lc rgb '#dddddd'\n";
  gp << "set key left top box opaque\n";
  gp << "unset arrow\nunset label\n";
  int64_t every = std::max<int64_t>(1, (s.channels + 59) / 60);
  int tic_font = s.channels > 40 ? 7 : 9;
  gp << "set xtics rotate by 90 right font '," << tic_font << "'\n";
  for (const auto& [m, label] : marks(r)) {
    double xpos = static_cast<double>(m.step) - 0.5;
    gp << "set arrow from " << num(xpos) << ", graph 0 to " << num(xpos)
       << ", graph 1 nohead dt 3 lc rgb '#777777'\n";
    gp << "set label " << gp_string(label + ": first " + std::to_string(m.step) + " pruned")
       << " at " << num(xpos) << ", graph 0.6 rotate by 90 center offset -0.8,0 tc rgb '#555555'\n";
  }
  gp << "set style fill solid 0.7 border -1\nset boxwidth 0.8\n";
  gp << "plot '../" << kActivationsCsv << "' using (column('rank')):(column('mean_activation')):"
     << "xtic(int(column('rank')) % " << every
     << " == 0 ? stringcolumn('channel') : '') with boxes lc rgb '#2ca02c' title 'mean "
        "activation'\n";
  gp << "set xtics norotate font ''\n";
}

}  // namespace

void write_activations_csv(const SweepResult& r, const std::string& path) {
  std::ostringstream csv;
  csv << "rank,channel,mean_activation\n";
  for (size_t i = 0; i < r.order.size(); ++i) {
    auto c = static_cast<size_t>(r.order[i]);
    double mean = c < r.mean_activation.size() ? r.mean_activation[c] : std::nan("");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", mean);
    csv << i << ',' << r.order[i] << ',' << buf << '\n';
  }
  write_file_atomic(path, csv.str());
}

namespace {

// The run report's data blocks and settings, and its plots.
std::string run_preamble(const RunReport& r) {
  std::ostringstream gp;
  gp << "# Reads ../" << kSweepCsv << " and ../" << kActivationsCsv << ".\n";
  gp << "set datafile separator ','\nset datafile columnheaders\nset encoding utf8\n";
  auto saved = reached(r);
  if (!saved.empty()) {
    gp << "$saved << EOD\nfraction_pruned,valid_accuracy,valid_asr,test_accuracy,test_asr\n";
    for (const ModelView& s : saved) {
      gp << num(s.fraction_pruned) << ',' << num(s.valid_accuracy) << ',' << num(s.valid_asr) << ','
         << num(s.test_accuracy.value_or(NAN)) << ',' << num(s.test_asr.value_or(NAN)) << '\n';
    }
    gp << "EOD\n";
  }
  return gp.str();
}

std::vector<PlotSpec> run_specs(const RunReport& r) {
  std::vector<PlotSpec> specs;
  {
    std::ostringstream gp;
    sweep_plot(gp, r, "valid", r.valid.accuracy, r.valid.n_clean, r.valid.n_poisoned);
    specs.push_back(
        {"sweep_valid", "Clean accuracy and attack success rate on validation data", gp.str()});
  }
  if (has_test(r.sweep)) {
    std::ostringstream gp;
    const SplitMetrics t = r.test.value_or(SplitMetrics{});
    sweep_plot(gp, r, "test", r.sweep.steps[0].test_accuracy.value_or(t.accuracy), t.n_clean,
               t.n_poisoned);
    specs.push_back(
        {"sweep_test", "Clean accuracy and attack success rate on test data", gp.str()});
  }
  std::ostringstream gp;
  activation_plot(gp, r);
  specs.push_back({"activations", "Mean activation of each channel, in pruning order", gp.str()});
  for (auto& spec : report::detection_plots(r)) specs.push_back(std::move(spec));
  if (r.comparison) specs.push_back(report::compare_plot(*r.comparison));
  for (const auto& extra : r.extra_plots) specs.push_back(extra);
  return specs;
}

}  // namespace

static std::string comparison_data(const RunReport& r) {
  return r.comparison ? report::compare_data(*r.comparison) : "";
}

std::string plot_script(const RunReport& r, const ReportOptions& o) {
  return report::script_text(
      "plots.gp",
      run_preamble(r) + report::detection_data(r) + comparison_data(r) + r.extra_preamble,
      run_specs(r), o);
}

PlotResult write_plots(const RunReport& r, const std::string& out_dir, const ReportOptions& o) {
  return draw_plots(
      out_dir, "plots.gp",
      run_preamble(r) + report::detection_data(r) + comparison_data(r) + r.extra_preamble,
      run_specs(r), o);
}

}  // namespace bdguard
