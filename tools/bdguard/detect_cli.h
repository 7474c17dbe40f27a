// Neural Cleanse's flags, shared by `bdguard detect`, the detection stage of
// `bdguard run` and a campaign's detect task; and `bdguard detect`'s work itself.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bdguard/detect.h"
#include "common.h"

namespace bdguard::cli {

struct NcFlags {
  std::string labels = "all";  // "all" or "L,L,..."
  uint64_t seed = 0;
  int max_steps = NeuralCleanseOptions{}.max_steps;
  int batches_per_step = NeuralCleanseOptions{}.batches_per_step;
  int64_t label_batch = NeuralCleanseOptions{}.label_batch;
  int64_t full_below = NeuralCleanseOptions{}.full_below;
  int screen_steps = NeuralCleanseOptions{}.screen_steps;
  int screen_batches = NeuralCleanseOptions{}.screen_batches;
  double screen_lr = NeuralCleanseOptions{}.screen_lr;
  int64_t refine = 0;
  int64_t reference = NeuralCleanseOptions{}.reference;
  int64_t eval_images = NeuralCleanseOptions{}.eval_images;
  std::string pixel_range;  // "LO,HI"; empty: from the data
};

// Binds --labels, --seed, --nc-steps, --nc-batches-per-step, --nc-label-batch,
// --nc-full-below, --nc-screen-steps, --nc-screen-batches, --nc-screen-lr, --nc-refine,
// --nc-reference, --nc-eval-images,
// --pixel-range (with `prefix` before the seed flag's name when given).
void add_nc_options(CLI::App& app, NcFlags& f, const std::string& seed_flag = "--seed");
NeuralCleanseOptions nc_options(const NcFlags& f, const Model& m);
nlohmann::json nc_settings(const NcFlags& f, const NeuralCleanseOptions& o, const ModelOptions& mo,
                           const std::string& clean);
// Stage names and a per-stage progress bar on stderr (nothing with `quiet`).
std::pair<std::function<void(const std::string&)>, ProgressFn> nc_progress(
    bool quiet, const std::string& prefix = "Neural Cleanse");

// What `bdguard detect` computes and writes.
struct DetectRun {
  NeuralCleanseResult result;
  nlohmann::json doc;                 // detect.json
  std::vector<std::string> warnings;  // the plots'
};
// `bdguard detect`'s work, also a campaign's detect task: loads the model (mo.model),
// checks the clean data against it and the flags, then prepares `out`
// (prepare_output_dir with `force`), runs Neural Cleanse and writes detect.json,
// triggers/ and plots/ into it.
DetectRun detect_to_folder(const ModelOptions& mo, const NcFlags& f, const std::string& clean,
                           const std::string& out, bool force, bool quiet);

}  // namespace bdguard::cli
