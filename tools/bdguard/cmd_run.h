// bdguard run: the whole defense in one command (evaluation, pruning sweep, saved
// models, GoodNets, plots and report). Exposed so that `bdguard demo` can run it on
// its embedded default.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "bdguard/finetune.h"
#include "bdguard/prune.h"
#include "common.h"
#include "defend_cli.h"
#include "detect_cli.h"
#include "strip_cli.h"

namespace bdguard::cli {

struct RunOptions {
  ModelOptions model;
  GlobalOptions global;
  std::string valid, poisoned_valid, test, poisoned_test, out;
  std::string config;  // the --config file, for the report's settings
  bool force = false;  // write into an existing non-empty output folder
  std::string layer;   // empty: the default prune target
  std::vector<double> drops = kDefaultDrops;
  double stop_drop = std::numeric_limits<double>::infinity();
  std::string gnuplot = "gnuplot";
  int png_width = 960, png_height = 600;
  bool no_finetune = false;  // skip fine-pruning of the saved models
  FinetuneOptions finetune;  // bdguard finetune's defaults
  std::string finetune_optimizer = "sgd";
  bool no_detect = false;  // skip Neural Cleanse and STRIP
  NcFlags nc;
  StripFlags strip;
  RunCompareFlags compare;  // the comparison of defenses (--no-compare skips it)
  bool no_repair = false;   // skip the repair stage (repair's rule on the comparison)
};

// Binds the flags of `bdguard run` (and --config) to `o` on `sub`.
void add_run_options(CLI::App& sub, RunOptions& o);
// After parsing: fills what the command line left unset from `o.config` (TOML or JSON,
// keys as the long flags, paths relative to the file), then checks that the required
// settings are there (CLI::ParseError otherwise).
void apply_run_config(CLI::App& sub, RunOptions& o);
void run_run(const RunOptions& o);

// bdguard scan's verdict on the BadNet (run_scan.cpp): MM-BD and K-Arm run (the clean
// data's pixel range); the verdict is the shipped calibration's (scan's default with
// data: K-Arm alone) or, without one, the uncalibrated rule with the detection stage's
// Neural Cleanse run `nc` as a third detector. Every detector's report is listed as
// evidence either way. K-Arm's trigger files go to o.out/triggers/.
nlohmann::json run_scan_stage(const Model& m, const NeuralCleanseResult& nc, const RunOptions& o,
                              const TensorData& clean);
// The stage's one-line result: "backdoored (p = 0.96; target 0)".
std::string run_scan_summary(const nlohmann::json& scan);

}  // namespace bdguard::cli
