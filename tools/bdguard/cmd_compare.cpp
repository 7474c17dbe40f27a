// bdguard compare: every defense on the same model and data, side by side.
#include <cstdio>
#include <filesystem>

#include "bdguard/compare_files.h"
#include "bdguard/detect_files.h"
#include "bdguard/error.h"
#include "bdguard/repair.h"
#include "commands.h"
#include "common.h"
#include "defend_cli.h"
#include "detect_cli.h"
#include "train_cli.h"

namespace bdguard::cli {
namespace {

struct CompareCliOptions {
  ModelOptions model;
  GlobalOptions global;
  std::string valid, poisoned_valid, test, poisoned_test, out, detect_dir;
  std::string methods = "all";
  uint64_t seed = 0;
  bool force = false, no_proxy = false;
  MethodFlags flags;
  NcFlags nc;
};

void print_table(const CompareResult& r) {
  auto natural = [](const std::optional<double>& v) { return v ? pct(*v) : std::string("-"); };
  std::printf("%-14s %10s %8s %8s %8s %8s %8s %8s\n", "method", "accuracy", "ASR", "proxy",
              "natural", "lost", "DER", "seconds");
  std::printf("%-14s %10s %8s %8s %8s %8s %8s %8s\n", "BadNet", pct(r.baseline_accuracy).c_str(),
              pct(r.baseline_asr).c_str(), natural(r.baseline_proxy_asr).c_str(),
              natural(r.baseline_natural_rate).c_str(), "", "", "");
  for (const auto& x : r.rows) {
    if (!x.ok) {
      std::printf("%-14s failed: %s\n", x.method.c_str(), x.error.c_str());
      continue;
    }
    std::printf("%-14s %10s %8s %8s %8s %8.2f %8s %8.1f\n", x.method.c_str(),
                pct(x.clean_accuracy).c_str(), pct(x.asr).c_str(), natural(x.proxy_asr).c_str(),
                natural(x.natural_rate).c_str(), x.accuracy_drop, pct(x.der).c_str(), x.seconds);
  }
}

void run_compare(const CompareCliOptions& o) {
  apply_threads(o.global.threads);
  const std::vector<std::string> methods = parse_methods(o.methods);
  const auto params = methods_params(methods, o.flags);
  Model m = load(o.model, o.model.model);
  const DataOptions d = data_options(o.model, m);
  CompareData data;
  data.valid = read_tensor_data(LabDataset(o.valid, m.input_shape(), d));
  data.poisoned_valid = read_tensor_data(LabDataset(o.poisoned_valid, m.input_shape(), d));
  data.test = read_tensor_data(LabDataset(o.test, m.input_shape(), d));
  data.poisoned_test = read_tensor_data(LabDataset(o.poisoned_test, m.input_shape(), d));
  NeuralCleanseResult given;
  if (!o.detect_dir.empty()) {
    given = read_detect_dir(o.detect_dir, m.input_shape(), m.num_classes());
    data.neural_cleanse = &given;
  }
  prepare_output_dir(o.out, o.force);

  CompareOptions co;
  co.methods = methods;
  co.proxy = !o.no_proxy;
  co.params = params;
  co.out_dir = o.out;
  co.defense.seed = o.seed;
  co.defense.eval_batch = o.global.batch;
  co.defense.neural_cleanse = nc_options(o.nc, m);
  auto stages = nc_progress(o.global.quiet, "compare");
  co.defense.stage = stages.first;
  co.defense.neural_cleanse.stage = stages.first;
  co.defense.progress = [&stages](int64_t done, int64_t total) {
    if (stages.second) stages.second(done, total);
  };
  co.on_start = [&](const std::string& method) {
    if (!o.global.quiet) std::fprintf(stderr, "compare: %s\n", method.c_str());
  };
  co.defense.train_progress = train_progress_bar("compare", o.global.quiet);
  CompareResult r = compare_defenses(m, data, co);

  nlohmann::json settings = model_settings(o.model);
  settings.update(
      {{"model", o.model.model},
       {"valid", o.valid},
       {"poisoned_valid", o.poisoned_valid},
       {"test", o.test},
       {"poisoned_test", o.poisoned_test},
       {"methods", methods},
       {"seed", o.seed},
       {"threads", at_threads()},
       {"detect", o.detect_dir.empty() ? nlohmann::json() : nlohmann::json(o.detect_dir)},
       {"proxy", !o.no_proxy}});
  const std::string name = std::filesystem::path(o.model.model).filename().string();
  PlotResult plots = write_compare_files(r, name, settings, o.out, ReportOptions{});
  for (const auto& w : plots.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  if (o.global.json) {
    nlohmann::json doc = to_json(r);
    doc["settings"] = settings;
    print_json(doc);
    return;
  }
  print_table(r);
  if (r.baseline_proxy_asr) {
    const RepairPick p = repair_from_compare(r);
    std::printf("%s%s\n",
                p.picked >= 0 ? "repair would pick " : "repair: ", repair_reason(p).c_str());
  }
  std::printf("best: %s\nWrote %s/compare.{csv,json,md,html}, plots/compare.{png,svg}, models/\n",
              compare_verdict(r).c_str(), o.out.c_str());
}

}  // namespace

void setup_compare(CLI::App& app) {
  auto opt = std::make_shared<CompareCliOptions>();
  auto* sub = app.add_subcommand("compare", "every defense on the model, side by side (DER table)");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  sub->add_option("--valid", opt->valid, "clean validation data: every choice is made on it")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--poisoned-valid", opt->poisoned_valid,
                  "poisoned validation data: reported only")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--test", opt->test, "clean test data: the table's accuracy")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--poisoned-test", opt->poisoned_test, "poisoned test data: the table's ASR")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--out", opt->out, "output folder: compare.*, plots/, models/")->required();
  add_force_flag(*sub, opt->force);
  sub->add_option("--methods", opt->methods, "all, or a comma-separated list of methods");
  sub->add_option("--seed", opt->seed, "seed of every method (split, shuffling, draws)");
  sub->add_option("--detect", opt->detect_dir,
                  "the folder of an earlier bdguard detect, for nc-unlearn (else it runs here)")
      ->check(CLI::ExistingDirectory);
  sub->add_flag("--no-proxy", opt->no_proxy,
                "no proxy ASR (reversed triggers on held-out clean images; without --detect it "
                "runs Neural Cleanse once more)");
  add_method_flags(*sub, opt->flags);
  add_nc_options(*sub, opt->nc, "--detect-seed");
  sub->callback([opt] { run_compare(*opt); });
}

}  // namespace bdguard::cli
