// The flags of `bdguard run` and its --config file (cmd_run.h).
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "bdguard/config.h"
#include "cmd_run.h"
#include "train_cli.h"

namespace bdguard::cli {
namespace {

namespace fs = std::filesystem;

// Keys of the configuration file that name files: relative ones are taken relative
// to the configuration file's folder.
const std::set<std::string> kPathKeys = {"model", "arch-from",     "valid", "poisoned-valid",
                                         "test",  "poisoned-test", "out"};
// Flags that must be given, on the command line or in the configuration file.
const std::vector<std::string> kRequired = {"--model", "--valid",         "--poisoned-valid",
                                            "--test",  "--poisoned-test", "--out"};

}  // namespace

void add_run_options(CLI::App& sub, RunOptions& o) {
  sub.add_option("--config", o.config,
                 "TOML or JSON file of settings, keys as the long flags (the flags win)")
      ->check(CLI::ExistingFile)
      ->configurable(false);
  sub.add_option("--model", o.model.model,
                 "Keras .h5 (full or weights-only) or ONNX model (required)")
      ->check(CLI::ExistingFile);
  add_model_options(sub, o.model, /*model_flag=*/"");
  add_global_options(sub, o.global);
  sub.add_option("--valid", o.valid, "clean validation data (required)")->check(CLI::ExistingPath);
  sub.add_option("--poisoned-valid", o.poisoned_valid, "poisoned validation data (required)")
      ->check(CLI::ExistingPath);
  sub.add_option("--test", o.test, "clean test data (required)")->check(CLI::ExistingPath);
  sub.add_option("--poisoned-test", o.poisoned_test, "poisoned test data (required)")
      ->check(CLI::ExistingPath);
  sub.add_option("--out", o.out, "output folder, created if missing (required)");
  add_force_flag(sub, o.force);
  sub.add_flag("--no-finetune", o.no_finetune, "skip fine-pruning of the saved models");
  sub.add_flag("--no-detect", o.no_detect, "skip the detection stage (Neural Cleanse and STRIP)");
  add_nc_options(sub, o.nc, "--detect-seed");
  add_strip_options(sub, o.strip, /*clean_flag=*/"", "--strip-seed", false);
  add_finetune_options(sub, o.finetune, o.finetune_optimizer);
  add_run_compare_flags(sub, o.compare);
  sub.add_flag("--no-repair", o.no_repair,
               "skip the repair stage (repair's rule on the compared defenses: the lowest proxy "
               "ASR within 3 points of held-out accuracy, saved as repaired.<ext>)");
  sub.add_option("--layer", o.layer,
                 "Conv, Gemm or MatMul node to prune (default: the last Conv every path "
                 "crosses, else the last Gemm's input)");
  sub.add_option("--drops", o.drops,
                 "save a pruned model at these validation accuracy drops (points)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  sub.add_option("--stop-drop", o.stop_drop,
                 "stop the sweep once validation accuracy is this many points below the baseline")
      ->check(CLI::PositiveNumber);
  sub.add_option("--gnuplot", o.gnuplot, "the gnuplot program")->capture_default_str();
  sub.add_option("--plot-width", o.png_width, "plot width in pixels")
      ->check(CLI::Range(200, 8000))
      ->capture_default_str();
  sub.add_option("--plot-height", o.png_height, "plot height in pixels")
      ->check(CLI::Range(150, 8000))
      ->capture_default_str();
}

// CLI11 2.1 reads configuration files for the top-level app only, so `run` merges its
// own: each setting the command line left unset is added to its option as if typed
// there, then validated by the option's own checks.
void apply_run_config(CLI::App& sub, RunOptions& o) {
  if (!o.config.empty()) {
    fs::path dir = fs::path(o.config).parent_path();
    for (ConfigEntry& e : read_config_file(o.config)) {
      std::string key = e.key;
      for (char& c : key) c = c == '_' ? '-' : c;
      CLI::Option* opt = sub.get_option_no_throw("--" + key);
      if (!opt || !opt->get_configurable()) {
        throw CLI::ConfigError(o.config + ": unknown setting '" + e.key +
                               "' (settings are the long flags of bdguard run, e.g. model, "
                               "poisoned-valid, out)");
      }
      if (opt->count() > 0) continue;  // the command line wins
      if (kPathKeys.count(key)) {
        for (auto& v : e.values) {
          if (!v.empty() && fs::path(v).is_relative()) v = (dir / v).lexically_normal().string();
        }
      }
      opt->add_result(e.values);
      opt->run_callback();
    }
  }
  for (const auto& name : kRequired) {
    if (sub.get_option(name)->count() == 0) throw CLI::RequiredError(name);
  }
}

}  // namespace bdguard::cli
