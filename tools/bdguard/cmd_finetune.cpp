// bdguard finetune: fine-pruning's second step, training a pruned model on clean data
// with its pruned channels held at zero.
#include <cstdio>

#include "bdguard/finetune.h"
#include "commands.h"
#include "common.h"
#include "train_cli.h"

namespace bdguard::cli {
namespace {

struct FinetuneCliOptions {
  ModelOptions model;
  std::string clean, poisoned, test, poisoned_test, out;
  FinetuneOptions finetune;
  std::string optimizer = "sgd";
  int threads = 0;
  bool json = false, quiet = false;
};

void run_finetune(FinetuneCliOptions o) {
  apply_threads(o.threads);
  o.finetune.optimizer = parse_optimizer(o.optimizer);
  o.finetune.progress = train_progress_bar("finetune", o.quiet);
  Model m = load(o.model, o.model.model);
  check_output_path(m, o.out);
  const DataOptions d = data_options(o.model, m);
  LabDataset clean(o.clean, m.input_shape(), d);
  std::optional<LabDataset> poisoned, test, poisoned_test;
  FinetuneData data;
  data.clean = &clean;
  if (!o.poisoned.empty()) data.poisoned = &poisoned.emplace(o.poisoned, m.input_shape(), d);
  if (!o.test.empty()) {
    data.test = &test.emplace(o.test, m.input_shape(), d);
    data.poisoned_test = &poisoned_test.emplace(o.poisoned_test, m.input_shape(), d);
  }
  FinetuneResult r = finetune(m, data, o.finetune);
  save_model(m, o.out);
  if (o.json) {
    nlohmann::json doc = to_json(r);
    doc["model"] = o.model.model;
    doc["out"] = o.out;
    print_json(doc);
    return;
  }
  print_finetune_summary(r, o.model.model, o.out);
}

}  // namespace

void print_finetune_summary(const FinetuneResult& r, const std::string& model,
                            const std::string& out) {
  std::string pruned;
  for (const auto& p : r.pruned) {
    pruned += (pruned.empty() ? "" : ", ") + std::to_string(p.channels.size()) + " in " + p.layer;
  }
  std::printf("Fine-tuned %s on %lld clean images (%lld held out): best epoch %d of %zu, %.0f s\n",
              model.c_str(), static_cast<long long>(r.n_train), static_cast<long long>(r.n_holdout),
              r.best_epoch, r.epochs.size(), r.seconds);
  std::printf("Pruned channels kept at zero: %s\n", pruned.empty() ? "none" : pruned.c_str());
  warn_if_diverged(r.diverged_epoch, model);
  auto row = [](const char* name, double before, double after) {
    std::printf("  %-22s %8s %%  %8s %%\n", name, pct(before).c_str(), pct(after).c_str());
  };
  std::printf("  %-22s %10s  %10s\n", "", "before", "after");
  row("held-out accuracy", r.before.holdout_accuracy, r.after.holdout_accuracy);
  if (r.before.asr) row("ASR (poisoned valid)", *r.before.asr, *r.after.asr);
  if (r.before.test_accuracy) {
    row("test accuracy", *r.before.test_accuracy, *r.after.test_accuracy);
    row("test ASR", *r.before.test_asr, *r.after.test_asr);
  }
  if (!out.empty()) std::printf("Wrote %s\n", out.c_str());
}

void warn_if_diverged(int diverged_epoch, const std::string& model) {
  if (diverged_epoch == 0) return;
  std::fprintf(stderr,
               "warning: fine-tuning %s diverged in epoch %d (loss not finite): kept the best "
               "earlier epoch; try a lower --lr, --clip-norm or --optimizer adam\n",
               model.c_str(), diverged_epoch);
}

std::vector<FinePrunedModel> fine_prune_with_flags(const Model& m, const SweepResult& r,
                                                   const std::vector<SavedModel>& saved,
                                                   const FinetuneData& data, FinetuneOptions ft,
                                                   const std::string& optimizer,
                                                   const GlobalOptions& global) {
  ft.optimizer = parse_optimizer(optimizer);
  ft.eval_batch = global.batch;
  const bool quiet = global.quiet;
  std::vector<FinePrunedModel> fine = fine_prune_saved(m, r, saved, data, ft, [quiet](double drop) {
    return train_progress_bar("finetune X=" + format_drop(drop), quiet);
  });
  for (const auto& f : fine) warn_if_diverged(f.diverged_epoch, f.path);
  return fine;
}

void add_finetune_options(CLI::App& app, FinetuneOptions& f, std::string& optimizer) {
  app.add_option("--epochs", f.epochs, "fine-tuning epochs")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--lr", f.lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--optimizer", optimizer, "adam or sgd (momentum 0.9)")
      ->check(CLI::IsMember({"adam", "sgd"}))
      ->capture_default_str();
  app.add_option("--seed", f.seed, "seed of the held-out split and the shuffling")
      ->capture_default_str();
  app.add_flag("--constant-lr{false}", f.cosine_decay,
               "keep the learning rate constant (default: cosine decay to 0)");
  app.add_option("--clip-norm", f.clip_grad_norm,
                 "clip gradients to this global L2 norm before each step (0: never)")
      ->check(CLI::Range(0.0, 1e12))
      ->capture_default_str();
  app.add_option("--shift", f.shift,
                 "augmentation: training images moved by up to this many pixels (0: none)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app.add_option("--holdout", f.holdout,
                 "fraction of the clean data held out to pick the best epoch")
      ->check(CLI::Range(0.01, 0.99))
      ->capture_default_str();
}

void setup_finetune(CLI::App& app) {
  auto opt = std::make_shared<FinetuneCliOptions>();
  auto* sub = app.add_subcommand(
      "finetune", "fine-pruning: train a pruned model on clean data, pruned channels kept at zero");
  add_model_options(*sub, opt->model);
  sub->add_option("--clean", opt->clean, "clean validation data: trained on")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--poisoned", opt->poisoned, "poisoned validation data: ASR, reported only")
      ->check(CLI::ExistingPath);
  auto* test = sub->add_option("--test", opt->test, "clean test data, reported only")
                   ->check(CLI::ExistingPath);
  auto* ptest =
      sub->add_option("--poisoned-test", opt->poisoned_test, "poisoned test data, reported only")
          ->check(CLI::ExistingPath);
  test->needs(ptest);
  ptest->needs(test);
  sub->add_option("--out", opt->out,
                  "fine-tuned model, in --model's format and structure (.h5 or .onnx)")
      ->required();
  add_finetune_options(*sub, opt->finetune, opt->optimizer);
  sub->add_option("--batch", opt->finetune.batch, "images per training step")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  sub->add_option("--eval-batch", opt->finetune.eval_batch, "images per evaluation pass")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  sub->add_option(
         "--threads", opt->threads,
         "compute threads (default: all cores; results are reproducible for a fixed count)")
      ->check(CLI::Range(0, 1024));
  sub->add_flag("--json", opt->json, "print one JSON document on stdout");
  sub->add_flag("--quiet,-q", opt->quiet, "no progress on stderr");
  sub->callback([opt] { run_finetune(*opt); });
}

}  // namespace bdguard::cli
