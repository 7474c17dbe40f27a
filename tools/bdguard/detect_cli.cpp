#include "detect_cli.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"

namespace bdguard::cli {

void add_nc_options(CLI::App& app, NcFlags& f, const std::string& seed_flag) {
  app.add_option("--labels", f.labels, "candidate labels: all, or L,L,...")->capture_default_str();
  app.add_option(seed_flag, f.seed, "seed of the masks' start and the mini-batches")
      ->capture_default_str();
  app.add_option("--nc-steps", f.max_steps, "steps per label at most")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--nc-batches-per-step", f.batches_per_step, "mini-batches of 32 per step")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--nc-label-batch", f.label_batch,
                 "labels optimised together in one forward pass (1: one after another)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  app.add_option("--nc-full-below", f.full_below,
                 "screen the labels first when there are more than this many")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--nc-screen-steps", f.screen_steps, "steps of the screen")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--nc-screen-batches", f.screen_batches, "mini-batches of 32 per screen step")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--nc-screen-lr", f.screen_lr, "Adam learning rate of the screen")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--nc-refine", f.refine,
                 "candidates refined after the screen (0: max(4, ceil(labels / 256)))")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app.add_option("--nc-reference", f.reference,
                 "other labels refined to estimate the median and MAD")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--nc-eval-images", f.eval_images,
                 "clean images on which each trigger's attack success is measured")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option(
      "--pixel-range", f.pixel_range,
      "LO,HI: the pixels' range (default: 0,1 if the clean data lies in it, else 0,255)");
}

NeuralCleanseOptions nc_options(const NcFlags& f, const Model& m) {
  NeuralCleanseOptions o;
  if (f.labels != "all") {
    for (double v : parse_numbers(f.labels, "--labels")) {
      if (v != std::floor(v) || v < 0 || v >= static_cast<double>(m.num_classes())) {
        fail<InvalidArgument>("--labels", "",
                              "labels in [0, " + std::to_string(m.num_classes()) + ")",
                              std::to_string(v));
      }
      o.labels.push_back(static_cast<int64_t>(v));
    }
  }
  o.seed = f.seed;
  o.max_steps = f.max_steps;
  o.batches_per_step = f.batches_per_step;
  o.label_batch = f.label_batch;
  o.full_below = f.full_below;
  o.screen_steps = f.screen_steps;
  o.screen_batches = f.screen_batches;
  o.screen_lr = f.screen_lr;
  o.refine = f.refine;
  o.reference = f.reference;
  o.eval_images = f.eval_images;
  if (!f.pixel_range.empty()) {
    auto r = parse_numbers(f.pixel_range, "--pixel-range");
    if (r.size() != 2 || !(r[0] < r[1])) {
      fail<InvalidArgument>("--pixel-range", "", "LO,HI with LO < HI", "'" + f.pixel_range + "'");
    }
    o.pixel_min = r[0];
    o.pixel_max = r[1];
  }
  return o;
}

nlohmann::json nc_settings(const NcFlags& f, const NeuralCleanseOptions& o, const ModelOptions& mo,
                           const std::string& clean) {
  nlohmann::json s = to_json(o);
  s["model"] = mo.model;
  s["clean"] = clean;
  s.update(model_settings(mo));
  s["labels_flag"] = f.labels;
  return s;
}

std::pair<std::function<void(const std::string&)>, ProgressFn> nc_progress(
    bool quiet, const std::string& prefix) {
  if (quiet) return {};
  auto current = std::make_shared<ProgressFn>();
  auto stage = [current, prefix](const std::string& name) {
    std::fprintf(stderr, "%s: %s\n", prefix.c_str(), name.c_str());
    *current = progress_bar(name.substr(0, 12), false);
  };
  ProgressFn progress = [current](int64_t done, int64_t total) {
    if (*current) (*current)(done, total);
  };
  return {stage, progress};
}

DetectRun detect_to_folder(const ModelOptions& mo, const NcFlags& f, const std::string& clean,
                           const std::string& out, bool force, bool quiet) {
  Model m = load(mo, mo.model);
  LabDataset data_file(clean, m.input_shape(), data_options(mo, m));
  NeuralCleanseOptions nc = nc_options(f, m);
  prepare_output_dir(out, force);
  TensorData data = read_tensor_data(data_file);
  auto stages = nc_progress(quiet);
  nc.stage = stages.first;
  nc.progress = [&stages](int64_t done, int64_t total) {
    if (stages.second) stages.second(done, total);
  };
  DetectRun run;
  run.result = neural_cleanse(m, data, nc);
  nlohmann::json settings = nc_settings(f, nc, mo, clean);
  settings["threads"] = at_threads();
  const std::vector<std::string> triggers =
      write_triggers(run.result, trigger_labels(run.result), out);
  PlotResult plots = write_detect_plots(run.result, out, ReportOptions{});
  run.warnings = plots.warnings;
  run.doc = detect_json(run.result, settings, triggers);
  write_file_atomic(out + "/detect.json", run.doc.dump(2) + "\n");
  return run;
}

}  // namespace bdguard::cli
