// What the subcommands share: model options, loading, progress, output.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "bdguard/dataset.h"
#include "bdguard/evaluate.h"
#include "bdguard/keras.h"
#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard::cli {

// Options every command that reads a model takes.
struct ModelOptions {
  std::string model;
  std::string arch;       // built-in architecture for weights-only files
  std::string arch_from;  // a full .h5 or JSON file with the architecture
  double input_scale = 1.0;
  std::string layout = "auto";
  int64_t max_tensor_bytes = int64_t{2} << 30;
};

struct GlobalOptions {
  int threads = 0;  // 0: all cores
  bool json = false;
  bool quiet = false;
  int64_t batch = kDefaultBatch;
};

// Binds --model (when `model_flag` is non-empty), --arch, --arch-from, --input-scale,
// --layout, --max-tensor-bytes.
void add_model_options(CLI::App& app, ModelOptions& o, const std::string& model_flag = "--model");
void add_global_options(CLI::App& app, GlobalOptions& g);

// Sets LibTorch's and OpenBLAS' thread count (0 = hardware concurrency).
void apply_threads(int threads);

ArchSource arch_source(const ModelOptions& o);
LoadOptions load_options(const ModelOptions& o);
Model load(const ModelOptions& o, const std::string& path);
DataOptions data_options(const ModelOptions& o, const Model& m);

// A progress bar on stderr when it is a terminal (and not --quiet); nothing otherwise.
ProgressFn progress_bar(const std::string& label, bool quiet);

// Prints a JSON document to stdout.
void print_json(const nlohmann::json& doc);
// "98.65" style formatting of a percentage.
std::string pct(double v);

}  // namespace bdguard::cli

namespace bdguard::cli {

// Training progress on stderr: a bar with loss and accuracy on a terminal, one line per
// epoch otherwise; nothing with --quiet.
TrainProgressFn train_progress_bar(const std::string& label, bool quiet);
// "bdguard attack badnets --seed 1 ..." style: arguments joined, quoted where needed.
std::string quote_arg(const std::string& arg);

}  // namespace bdguard::cli
