// bdguard scan: several detectors on one model, one calibrated verdict; `scan calibrate`
// fits the combination on a finished campaign (docs/commands/scan.md).
#include <cstdio>

#include "bdguard/error.h"
#include "commands.h"
#include "common.h"
#include "scan_cli.h"

namespace bdguard::cli {
namespace {

struct ScanCliOptions {
  ModelOptions model;
  GlobalOptions global;
  ScanFlags flags;
  std::string out;
  bool force = false, exit_code = false;
};

int run_scan(const ScanCliOptions& o) {
  // --model and --out are checked here, not by CLI11: `scan calibrate` takes neither.
  if (o.model.model.empty()) throw CLI::RequiredError("--model");
  if (o.out.empty()) throw CLI::RequiredError("--out");
  apply_threads(o.global.threads);
  const ScanRun run = scan_to_folder(o.model, o.flags, o.out, o.force, o.global.quiet);
  if (o.global.json) {
    print_json(run.doc);
  } else {
    std::printf("%s\n", scan_verdict_line(run).c_str());
  }
  return o.exit_code && run.verdict.backdoored ? 3 : 0;
}

}  // namespace

void setup_scan_calibrate(CLI::App& scan);

void setup_scan(CLI::App& app) {
  auto opt = std::make_shared<ScanCliOptions>();
  auto* sub = app.add_subcommand(
      "scan",
      "Is the model backdoored? MM-BD, K-Arm and Neural Cleanse, combined into one probability");
  sub->add_option("--model", opt->model.model, "Keras .h5 (full or weights-only) or ONNX model")
      ->check(CLI::ExistingFile);
  add_model_options(*sub, opt->model, /*model_flag=*/"");
  add_global_options(*sub, opt->global);
  auto* clean = sub->add_option("--clean", opt->flags.clean, "clean validation data (lab HDF5)")
                    ->check(CLI::ExistingFile);
  sub->add_flag("--no-data", opt->flags.no_data, "no data: run only the data-free detectors")
      ->excludes(clean);
  sub->add_option("--out", opt->out, "output folder: scan.json, evidence.json, triggers/");
  add_force_flag(*sub, opt->force);
  sub->add_flag("--exit-code", opt->exit_code, "exit with code 3 when the model is backdoored");
  add_scan_flags(*sub, opt->flags);
  setup_scan_calibrate(*sub);
  sub->callback([opt, sub] {
    if (!sub->get_subcommands().empty()) return;  // scan calibrate ran
    const int rc = run_scan(*opt);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace bdguard::cli
