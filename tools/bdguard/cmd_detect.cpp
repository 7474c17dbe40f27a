// bdguard detect: Neural Cleanse, is this model backdoored and which label does it target.
#include <cstdio>

#include "bdguard/detect_files.h"
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
  DetectRun run = detect_to_folder(o.model, o.nc, o.clean, o.out, o.force, o.global.quiet);
  for (const auto& w : run.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  if (o.global.json) {
    print_json(run.doc);
  } else {
    std::printf("%s\n", detect_verdict(run.result, o.out).c_str());
  }
  return o.exit_code && run.result.backdoored ? 3 : 0;
}

}  // namespace

void setup_detect(CLI::App& app) {
  auto opt = std::make_shared<DetectOptions>();
  auto* sub = app.add_subcommand(
      "detect", "Neural Cleanse: is the model backdoored, which label, what trigger");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  sub->add_option("--clean", opt->clean, "clean validation data")
      ->required()
      ->check(CLI::ExistingPath);
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
