// What the subcommands share: model options, loading, progress, output.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/data_formats.h"
#include "bdguard/dataset.h"
#include "bdguard/evaluate.h"
#include "bdguard/fileio.h"
#include "bdguard/model.h"
#include "bdguard/model_io.h"
#include "bdguard/train.h"

namespace bdguard::cli {

// Options every command that reads a model takes.
struct ModelOptions {
  std::string model;
  std::string arch;       // built-in architecture for weights-only files
  std::string arch_from;  // a full .h5 or JSON file with the architecture
  double input_scale = 1.0;
  std::string mean, std;  // "m" or "m,m,m" per channel
  std::string layout = "auto";
  int64_t max_tensor_bytes = int64_t{2} << 30;
  int64_t max_model_bytes = int64_t{2} << 30;
  // Data inputs other than lab HDF5 (docs/data.md): the labels of .npy or IDX images
  // ("LABELS" or "IMAGES=LABELS"), resizing folder images, the folder file limit.
  std::vector<std::string> data_labels;
  bool resize = false;
  int64_t max_files = kDefaultMaxDataFiles;
};

struct GlobalOptions {
  int threads = 0;  // 0: all cores
  bool json = false;
  bool quiet = false;
  int64_t batch = kDefaultBatch;
};

// Binds --model (when `model_flag` is non-empty), --arch, --arch-from, --input-scale,
// --mean, --std, --layout, --max-tensor-bytes, --max-model-bytes, and the data options
// --data-labels, --resize, --max-files.
void add_model_options(CLI::App& app, ModelOptions& o, const std::string& model_flag = "--model");
void add_global_options(CLI::App& app, GlobalOptions& g);

// Sets LibTorch's and OpenBLAS' thread count (0 = hardware concurrency).
void apply_threads(int threads);

ArchSource arch_source(const ModelOptions& o);
// --input-scale, --mean, --std as the model's Preprocess step.
Preprocess preprocess_of(const ModelOptions& o);
LoadOptions load_options(const ModelOptions& o);
// "0.485,0.456,0.406": numbers as --mean / --std take them (exact round trip).
std::string number_text(const std::vector<double>& v);
// The settings every command records about its model: arch, input_scale, mean, std.
nlohmann::json model_settings(const ModelOptions& o);
Model load(const ModelOptions& o, const std::string& path);
// The data flags as DataOptions: without a model (no class count, `data` commands), or
// with the model's number of classes.
DataOptions data_options(const ModelOptions& o);
DataOptions data_options(const ModelOptions& o, const Model& m);

// Binds the data options alone (for commands without a model: data inspect).
void add_data_options(CLI::App& app, ModelOptions& o);
// After every command is set up: --labels as a second name of --data-labels in the
// commands where --labels does not already name candidate target labels (detect, scan,
// campaign init, ...), as issue 25 spells it.
void add_labels_aliases();
// A progress bar on stderr when it is a terminal (and not --quiet); nothing otherwise.
ProgressFn progress_bar(const std::string& label, bool quiet);

// The compute threads in use (after apply_threads).
int at_threads();

// "1,2.5,3" as numbers, for flag `flag` (InvalidArgument unless every item is a finite
// number; "" is not).
std::vector<double> parse_numbers(const std::string& text, const char* flag);

// Prints a JSON document to stdout.
void print_json(const nlohmann::json& doc);
// "98.65" style formatting of a percentage.
std::string pct(double v);

// Output folders. A command that writes into a folder (`--out DIR`) binds --force with
// add_force_flag() and, before any work (so a refusal costs nothing), calls
//   prepare_output_dir(dir, force);   // bdguard/fileio.h
// which creates a new folder, accepts an empty one, and refuses a non-empty one unless
// --force (which deletes nothing: each output then replaces its own file). Write every
// file in it with write_file_atomic() or save_model() (temporary file + rename), so an
// error or SIGINT/SIGTERM leaves no half-written file. Inputs are only ever opened for
// reading.
void add_force_flag(CLI::App& app, bool& force);

// How long one call into HDF5 on an input may run before the read watchdog ends the
// process (fileio.h): $BDGUARD_READ_TIMEOUT seconds, else kDefaultReadTimeoutSeconds.
double read_timeout_seconds();

}  // namespace bdguard::cli

namespace bdguard::cli {

// Training progress on stderr: a bar with loss and accuracy on a terminal, one line per
// epoch otherwise; nothing with --quiet.
TrainProgressFn train_progress_bar(const std::string& label, bool quiet);
// "bdguard attack badnets --seed 1 ..." style: arguments joined, quoted where needed.
std::string quote_arg(const std::string& arg);

}  // namespace bdguard::cli
