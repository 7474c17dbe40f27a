// The report of a defense run: plots (drawn by gnuplot), report.md, a self-contained
// report.html and summary.json, all from one `RunReport`.
//
// A command fills a `RunReport` with what it measured (settings, input hashes, the
// sweep, the saved models with their GoodNet rows, timings) and calls `write_report`;
// nothing here runs a model. The plots are drawn from the CSV files in the output
// folder (`sweep.csv`, written with the sweep, and `activations.csv`, written here),
// so a reader can redraw them from `plots/plots.gp` alone. Without gnuplot the plots
// are left out with a warning and everything else is still written.
#pragma once

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bdguard/compare.h"
#include "bdguard/detect.h"
#include "bdguard/goodnet.h"
#include "bdguard/prune.h"
#include "bdguard/repair.h"
#include "bdguard/strip.h"
#include "bdguard/sweep_files.h"

namespace bdguard {

// The conclusion's verdict thresholds (attack success rate, percent, of the pruned
// net at the largest accuracy loss that was saved).
constexpr double kBackdoorRemovedAsr = 5.0;    // below: pruning removed the backdoor
constexpr double kBackdoorSurvivesAsr = 50.0;  // at or above: it did not
// A BadNet whose baseline ASR is below this shows no working backdoor on the data.
constexpr double kNoBackdoorAsr = 20.0;

// One input file, as the report lists it.
struct InputFile {
  std::string role;  // "model", "valid", "poisoned-valid", ...
  std::string path;
  std::string sha256;
  int64_t bytes = 0;
};

// Clean accuracy and attack success rate (percent) of one net on one split.
struct SplitMetrics {
  double accuracy = 0, asr = 0;
  int64_t n_clean = 0, n_poisoned = 0;
};

// A pruned net saved at the first sweep step that cost `drop` points of validation
// accuracy (see sweep_files.h), with its GoodNet on the test files. Its accuracy and
// ASR are those of its sweep step.
struct ReportedModel {
  SavedModel saved;
  std::optional<GoodNetRow> goodnet;
  std::optional<FinePrunedModel> fine_pruned;
};

// The detection stage of a run: Neural Cleanse on the BadNet, STRIP on the test files.
struct DetectionReport {
  NeuralCleanseResult nc;
  nlohmann::json nc_settings;
  std::vector<std::string> trigger_files;  // relative to the output folder
  std::string poisoned_example;            // a poisoned validation input (PNG), or ""
  // bdguard scan's verdict from the same Neural Cleanse run and MM-BD (scan.h's
  // scan_verdict_json, with "calibrated"), or null.
  nlohmann::json scan;
  std::optional<StripReport> strip;
  nlohmann::json strip_settings;
  // GoodNet + STRIP rows of the saved models, in the order of `saved` (when STRIP ran).
  std::vector<GoodNetRow> goodnet_strip;
};

struct StageTiming {
  std::string stage;
  double seconds = 0;
};

// A plot: a name (the file stem: plots/<name>.png and .svg), a title, and the gnuplot
// commands that draw it (the terminal and output already set).
struct PlotSpec {
  std::string name, title, body;
};

// Everything a report shows. Percentages are in percent.
struct RunReport {
  std::string tool_version;
  // Settings in display order; values are strings, numbers or booleans.
  std::vector<std::pair<std::string, nlohmann::json>> settings;
  std::vector<InputFile> inputs;
  std::string model_name;  // for titles, e.g. "lab3_bd_weights.h5"
  int64_t num_classes = 0;
  SplitMetrics valid;                // the BadNet on the validation files
  std::optional<SplitMetrics> test;  // ... and on the test files, when given
  SweepResult sweep;                 // its steps and activations (predictions not needed)
  std::vector<ReportedModel> saved;
  std::vector<StageTiming> timings;
  std::vector<std::string> warnings;
  // More plots in the same script (the detection and comparison stages'), and the data
  // blocks they read.
  std::vector<PlotSpec> extra_plots;
  std::string extra_preamble;
  std::optional<DetectionReport> detection;
  // The comparison stage: every defense on the BadNet (bdguard compare's table).
  std::optional<CompareResult> comparison;
  // The repair stage: repair's rule on the comparison, and the model it kept.
  std::optional<RepairPick> repair;
};

// Files of `out_dir` a report reads or writes.
constexpr const char* kSweepCsv = "sweep.csv";
constexpr const char* kActivationsCsv = "activations.csv";
constexpr const char* kPlotsDir = "plots";
constexpr const char* kReportMd = "report.md";
constexpr const char* kReportHtml = "report.html";
constexpr const char* kSummaryJson = "summary.json";

struct ReportOptions {
  std::string gnuplot = "gnuplot";  // the program (looked up in PATH)
  int png_width = 960, png_height = 600;
  double gnuplot_timeout_s = 120;
};

// One drawn plot file.
struct PlotFile {
  std::string name;           // "sweep_valid", "sweep_test", "activations"
  std::string title;          // the plot's title
  std::string file;           // relative to the output folder, e.g. "plots/sweep_valid.png"
  std::string format;         // "png" or "svg"
  int width = 0, height = 0;  // pixels for PNG; the SVG's nominal size
  // The axis ranges gnuplot drew (its GPVAL_X_MIN ... after the plot); NaN where gnuplot
  // did not say. Tests check that every data point lies inside them.
  double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;
};

struct PlotResult {
  std::vector<PlotFile> files;
  std::vector<std::string> warnings;  // e.g. gnuplot missing
};

// Writes `out_dir/activations.csv` (rank, channel, mean_activation: pruning order).
void write_activations_csv(const SweepResult& r, const std::string& path);

// The gnuplot script that draws every plot of `r` (run in `out_dir/plots`; it reads
// ../sweep.csv and ../activations.csv and names no other path).
std::string plot_script(const RunReport& r, const ReportOptions& options);
// Writes plots/plots.gp and runs gnuplot on it. Missing gnuplot, or gnuplot failing,
// gives warnings and no files, never an exception.
PlotResult write_plots(const RunReport& r, const std::string& out_dir,
                       const ReportOptions& options);

// The plain-language conclusion drawn from the numbers.
std::string conclusion(const RunReport& r);
// Every number of the report, machine-readable.
nlohmann::json summary_json(const RunReport& r, const PlotResult& plots);
// report.md (images by relative path) and report.html (one file: images inlined as
// data: URIs, styles inline, no external reference and no script).
std::string render_markdown(const RunReport& r, const PlotResult& plots);
std::string render_html(const RunReport& r, const PlotResult& plots, const std::string& out_dir);

// activations.csv, the plots, report.md, report.html and summary.json into `out_dir`
// (which must exist and hold sweep.csv). Returns the plots; their warnings are also
// appended to the report's warnings.
PlotResult write_report(RunReport& r, const std::string& out_dir, const ReportOptions& options);

// Base64 (RFC 4648, with padding) of `bytes`.
std::string base64(const std::string& bytes);

}  // namespace bdguard
