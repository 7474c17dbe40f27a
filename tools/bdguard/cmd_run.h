// bdguard run: the whole defense in one command (evaluation, pruning sweep, saved
// models, GoodNets, plots and report). Exposed so that `bdguard demo` can run it on
// its embedded default.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "bdguard/prune.h"
#include "common.h"

namespace bdguard::cli {

struct RunOptions {
  ModelOptions model;
  GlobalOptions global;
  std::string valid, poisoned_valid, test, poisoned_test, out;
  std::string config;  // the --config file, for the report's settings
  std::string layer;   // empty: the default prune target
  std::vector<double> drops = kDefaultDrops;
  double stop_drop = std::numeric_limits<double>::infinity();
  std::string gnuplot = "gnuplot";
  int png_width = 960, png_height = 600;
};

// Binds the flags (and --config) of `bdguard run` to `o` on `sub`.
void add_run_options(CLI::App& sub, RunOptions& o);
void run_run(const RunOptions& o);

}  // namespace bdguard::cli
