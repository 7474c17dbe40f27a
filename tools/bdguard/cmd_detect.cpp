// bdguard detect: Neural Cleanse, is this model backdoored and which label does it target.
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "commands.h"
#include "common.h"
#include "detect_cli.h"

namespace bdguard::cli {
namespace {

struct DetectOptions {
  ModelOptions model;
  GlobalOptions global;
  std::string clean, out;
  bool force = false;
  bool exit_code = false;
  NcFlags nc;
};

int run_detect(const DetectOptions& o) {
  apply_threads(o.global.threads);
  Model m = load(o.model, o.model.model);
  LabDataset clean(o.clean, m.input_shape(), data_options(o.model, m));
  NeuralCleanseOptions nc = nc_options(o.nc, m);
  prepare_output_dir(o.out, o.force);
  TensorData data = read_tensor_data(clean);
  nc.progress = {};
  auto stages = nc_progress(o.global.quiet);
  nc.stage = stages.first;
  nc.progress = [&stages](int64_t done, int64_t total) {
    if (stages.second) stages.second(done, total);
  };
  NeuralCleanseResult r = neural_cleanse(m, data, nc);
  nlohmann::json settings = nc_settings(o.nc, nc, o.model, o.clean);
  settings["threads"] = at_threads();
  const std::vector<std::string> triggers = write_triggers(r, trigger_labels(r), o.out);
  ReportOptions ro;
  PlotResult plots = write_detect_plots(r, o.out, ro);
  for (const auto& w : plots.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  nlohmann::json doc = detect_json(r, settings, triggers);
  write_file_atomic(o.out + "/detect.json", doc.dump(2) + "\n");
  if (o.global.json) {
    print_json(doc);
  } else {
    std::printf("%s\n", detect_verdict(r, o.out).c_str());
  }
  return o.exit_code && r.backdoored ? 3 : 0;
}

}  // namespace

void setup_detect(CLI::App& app) {
  auto opt = std::make_shared<DetectOptions>();
  auto* sub = app.add_subcommand(
      "detect", "Neural Cleanse: is the model backdoored, which label, what trigger");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  sub->add_option("--clean", opt->clean, "clean validation data (lab HDF5)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--out", opt->out, "output folder: detect.json, triggers/, plots/")->required();
  add_force_flag(*sub, opt->force);
  sub->add_flag("--exit-code", opt->exit_code, "exit with code 3 when the model is backdoored");
  add_nc_options(*sub, opt->nc);
  sub->callback([opt] {
    const int rc = run_detect(*opt);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace bdguard::cli
