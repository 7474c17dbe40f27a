// bdguard prune: the pruning defense, its curve, and the models at 2/4/10 points.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "bdguard/fileio.h"
#include "bdguard/finetune.h"
#include "bdguard/goodnet.h"
#include "bdguard/prune.h"
#include "bdguard/sweep_files.h"
#include "commands.h"
#include "common.h"
#include "train_cli.h"

namespace bdguard::cli {
namespace {

struct PruneOptions {
  ModelOptions model;
  GlobalOptions global;
  std::string clean, poisoned, test, poisoned_test;
  std::string layer;
  std::vector<double> drops = kDefaultDrops;
  double stop_drop = std::numeric_limits<double>::infinity();
  std::string out;
  bool force = false;
  bool plain = false;
  bool finetune = false;  // fine-prune every saved model (bdguard finetune's defaults)
  FinetuneOptions ft;
  std::string ft_optimizer = "sgd";
};

void run_prune(const PruneOptions& o) {
  apply_threads(o.global.threads);
  auto t0 = std::chrono::steady_clock::now();
  Model m = load(o.model, o.model.model);
  const DataOptions dopt = data_options(o.model, m);
  LabDataset clean(o.clean, m.input_shape(), dopt);
  LabDataset poisoned(o.poisoned, m.input_shape(), dopt);
  std::optional<LabDataset> test, poisoned_test;
  if (!o.test.empty()) {
    test.emplace(o.test, m.input_shape(), dopt);
    poisoned_test.emplace(o.poisoned_test, m.input_shape(), dopt);
  }
  const ChannelUnit target = resolve_prune_target(m, o.layer);
  prepare_output_dir(o.out, o.force);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  SweepData data{&clean, &poisoned, test ? &*test : nullptr,
                 poisoned_test ? &*poisoned_test : nullptr};
  SweepOptions sopt;
  sopt.layer = m.node(static_cast<size_t>(target.node)).name;
  sopt.stop_drop = o.stop_drop;
  sopt.batch = o.global.batch;
  sopt.progress = progress_bar("pruning", o.global.quiet);
  SweepResult r = o.plain ? run_sweep_plain(m, data, sopt) : run_sweep(m, data, sopt);

  auto t1 = std::chrono::steady_clock::now();
  std::vector<SavedModel> saved = save_drop_models(m, r, o.drops, o.out);
  std::vector<GoodNetRow> rows;
  if (test) {
    for (const auto& s : saved) {
      if (!s.reached) continue;
      const auto k = static_cast<size_t>(s.step);
      rows.push_back(goodnet_row(s.path, m.num_classes(), test->labels(), poisoned_test->labels(),
                                 r.test_predictions[0], r.poisoned_test_predictions[0],
                                 r.test_predictions[k], r.poisoned_test_predictions[k]));
    }
  }
  double save_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  std::vector<FinePrunedModel> fine;
  if (o.finetune) {
    fine = fine_prune_with_flags(m, r, saved, {&clean, &poisoned, data.test, data.poisoned_test},
                                 o.ft, o.ft_optimizer, o.global);
  }

  nlohmann::json settings = {
      {"model", o.model.model},
      {"model_sha256", sha256_file(o.model.model)},
      {"format", format_name(m.format)},
      {"layer", r.layer},
      {"drops", o.drops},
      {"stop_drop", std::isinf(o.stop_drop) ? nullptr : nlohmann::json(o.stop_drop)},
      {"method", o.plain ? "plain" : "fast"},
      {"clean", o.clean},
      {"poisoned", o.poisoned},
      {"test", o.test.empty() ? nullptr : nlohmann::json(o.test)},
      {"poisoned_test", o.poisoned_test.empty() ? nullptr : nlohmann::json(o.poisoned_test)}};
  settings.update(model_settings(o.model));
  nlohmann::json doc = sweep_json(r, saved, rows, settings, fine);
  doc["timings"]["load_s"] = load_s;
  doc["timings"]["save_s"] = save_s;
  doc["timings"]["threads"] = at_threads();
  write_file_atomic(o.out + "/sweep.csv", sweep_csv(r));
  write_file_atomic(o.out + "/sweep.json", doc.dump(2) + "\n");

  if (o.global.json) {
    print_json(doc);
    return;
  }
  const SweepStep& base = r.steps.front();
  std::printf("BadNet: validation accuracy %s %%, ASR %s %% (%lld clean, %lld poisoned images)\n",
              pct(base.valid_accuracy).c_str(), pct(base.valid_asr).c_str(),
              static_cast<long long>(r.n_clean), static_cast<long long>(r.n_poisoned));
  std::printf("pruned %s in %zu steps (%lld %s; mean activation at %s) in %.2f s\n",
              r.layer.c_str(), r.steps.size() - 1, static_cast<long long>(r.channels),
              r.kind == "output" ? "channels" : "input features", r.cut_layer.c_str(),
              r.timings.below_cut_s + r.timings.sweep_s);
  size_t row = 0;
  for (const auto& s : saved) {
    if (!s.reached) {
      std::printf("X=%s: not reached (largest validation drop %.2f points)\n",
                  format_drop(s.drop).c_str(), base.valid_accuracy - r.steps.back().valid_accuracy);
      continue;
    }
    const SweepStep& st = r.steps[static_cast<size_t>(s.step)];
    std::printf("X=%s: %s after %d channels: validation accuracy %s %% (-%.2f), ASR %s %%\n",
                format_drop(s.drop).c_str(), s.path.c_str(), s.step, pct(st.valid_accuracy).c_str(),
                base.valid_accuracy - st.valid_accuracy, pct(st.valid_asr).c_str());
    if (test) {
      const GoodNetRow& g = rows[row++];
      std::printf(
          "      test: pruned accuracy %s %%, ASR %s %%; GoodNet accuracy %s %%, ASR %s %%, "
          "detection %s %%, false alarms %s %%\n",
          pct(g.pruned_accuracy).c_str(), pct(g.pruned_asr).c_str(),
          pct(g.goodnet_accuracy).c_str(), pct(g.goodnet_asr).c_str(),
          pct(g.detection_rate).c_str(), pct(g.false_alarm_rate).c_str());
    }
  }
  for (const auto& f : fine) {
    std::printf("X=%s fine-pruned: %s (best epoch %d of %d): held-out accuracy %s %% -> %s %%",
                format_drop(f.drop).c_str(), f.path.c_str(), f.best_epoch, f.epochs,
                pct(f.holdout_accuracy_before).c_str(), pct(f.holdout_accuracy_after).c_str());
    if (f.asr_before && f.asr_after) {
      std::printf(", validation ASR %s %% -> %s %%", pct(*f.asr_before).c_str(),
                  pct(*f.asr_after).c_str());
    }
    std::printf("\n");
    if (test) {
      const GoodNetRow& g = f.goodnet;
      std::printf(
          "      test: fine-pruned accuracy %s %%, ASR %s %%; GoodNet accuracy %s %%, ASR %s "
          "%%, detection %s %%, false alarms %s %%\n",
          pct(g.pruned_accuracy).c_str(), pct(g.pruned_asr).c_str(),
          pct(g.goodnet_accuracy).c_str(), pct(g.goodnet_asr).c_str(),
          pct(g.detection_rate).c_str(), pct(g.false_alarm_rate).c_str());
    }
  }
  std::printf("wrote %s/sweep.csv and %s/sweep.json\n", o.out.c_str(), o.out.c_str());
}

}  // namespace

void setup_prune(CLI::App& app) {
  auto opt = std::make_shared<PruneOptions>();
  auto* sub = app.add_subcommand("prune", "the pruning defense: sweep, curve, pruned models");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  sub->add_option("--clean", opt->clean, "clean validation data")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--poisoned", opt->poisoned, "poisoned validation data")
      ->required()
      ->check(CLI::ExistingPath);
  auto* test = sub->add_option("--test", opt->test, "clean test data (reported only)")
                   ->check(CLI::ExistingPath);
  auto* ptest =
      sub->add_option("--poisoned-test", opt->poisoned_test, "poisoned test data (reported only)")
          ->check(CLI::ExistingPath);
  test->needs(ptest);
  ptest->needs(test);
  sub->add_option("--layer", opt->layer,
                  "layer to prune: a Conv (its output channels) or a Gemm / MatMul (its input "
                  "features); default: the last Conv on every path to the output, else the "
                  "last Gemm's input");
  sub->add_option("--drops", opt->drops, "accuracy drops (points) at which to save a model")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  sub->add_option("--stop-drop", opt->stop_drop,
                  "stop once validation accuracy dropped more than this (default: never)")
      ->check(CLI::Range(0.0, 100.0));
  sub->add_option("--out", opt->out, "output folder")->required();
  add_force_flag(*sub, opt->force);
  sub->add_flag("--plain", opt->plain,
                "use the plain reference method (re-run the whole model per step)");
  sub->add_flag("--finetune", opt->finetune,
                "fine-prune every saved model: model_X=<X>_finetuned.<ext> (see bdguard "
                "finetune)");
  add_finetune_options(*sub, opt->ft, opt->ft_optimizer);
  sub->callback([opt] { run_prune(*opt); });
}

}  // namespace bdguard::cli
