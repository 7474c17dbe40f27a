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

}  // namespace bdguard::cli
