// bdguard defend METHOD: one post-training defense on a model, the defended model saved
// in the input's format.
#include <cstdio>
#include <iostream>

#include "bdguard/defend.h"
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

struct DefendOptions {
  std::string method;
  ModelOptions model;
  GlobalOptions global;
  std::string clean, poisoned, out, detect_dir;
  uint64_t seed = 0;
  MethodFlags flags;
  NcFlags nc;
  bool list = false, no_proxy = false;
};

void print_options(const std::string& method, bool json) {
  const nlohmann::json defaults = defense_defaults(method);
  if (json) {
    print_json({{"method", method}, {"source", defense_source(method)}, {"options", defaults}});
    return;
  }
  std::printf("%s: %s\n", method.c_str(), defense_source(method).c_str());
  for (const auto& [key, spec] : defaults.items()) {
    std::printf("  %-18s %-10s %s\n", key.c_str(), spec["default"].dump().c_str(),
                spec["help"].get<std::string>().c_str());
  }
}

std::string rate(const std::optional<double>& v) { return v ? pct(*v) + " %" : "-"; }

void run_defend(const DefendOptions& o) {
  if (o.list) {
    print_options(o.method, o.global.json);
    return;
  }
  apply_threads(o.global.threads);
  const nlohmann::json params = method_params(o.method, o.flags);
  if (o.clean.empty() && defense_needs_clean(o.method)) {
    fail<InvalidArgument>("", "--clean", "clean validation data (" + o.method + " trains on it)",
                          "none");
  }

  Model m = load(o.model, o.model.model);
  check_output_path(m, o.out);
  const DataOptions d = data_options(o.model, m);
  DefenseData data;
  if (!o.clean.empty()) data.clean = read_tensor_data(LabDataset(o.clean, m.input_shape(), d));
  if (!o.poisoned.empty()) {
    data.poisoned = read_tensor_data(LabDataset(o.poisoned, m.input_shape(), d));
  }
  NeuralCleanseResult given;
  if (!o.detect_dir.empty()) {
    given = read_detect_dir(o.detect_dir, m.input_shape(), m.num_classes());
    data.neural_cleanse = &given;
  }
  DefenseOptions opt;
  opt.seed = o.seed;
  opt.eval_batch = o.global.batch;
  opt.params = params;
  opt.train_progress = train_progress_bar(o.method, o.global.quiet);
  if ((o.method == "nc-unlearn" || o.method == "i-bau" || o.method == "sau") &&
      o.detect_dir.empty()) {
    opt.neural_cleanse = nc_options(o.nc, m);
  }
  auto stages = nc_progress(o.global.quiet, o.method);
  opt.stage = stages.first;
  opt.progress = [&stages](int64_t done, int64_t total) {
    if (stages.second) stages.second(done, total);
  };
  opt.neural_cleanse.stage = stages.first;
  // The proxy of the attack (repair.h), when there is clean data to split: Neural
  // Cleanse on the training part (or --detect's), before the method runs, so that it
  // chooses its epoch by it (select proxy) and nc-unlearn unlearns its triggers; the
  // proxy ASR before and after, on the held-out clean images.
  std::optional<AttackProxy> proxy;
  NeuralCleanseResult own;
  double proxy_before = 0, proxy_after = 0;
  if (!o.no_proxy && data.clean.size() >= 2) {
    NeuralCleanseOptions nco = nc_options(o.nc, m);
    nco.stage = stages.first;
    nco.progress = opt.progress;
    if (!data.neural_cleanse && stages.first) {
      stages.first("Neural Cleanse (the proxy's triggers)");
    }
    proxy = make_attack_proxy(m, data.clean, o.seed, data.neural_cleanse, nco, &own);
    if (!data.neural_cleanse) data.neural_cleanse = &own;
    proxy_before = proxy_asr(m, *proxy, o.global.batch);
  }
  DefenseResult r = defend(o.method, m, data, opt);
  save_model(r.model, o.out);
  const std::string sha = sha256_file(o.out);
  if (proxy) proxy_after = proxy_asr(r.model, *proxy, o.global.batch);
  if (o.global.json) {
    nlohmann::json doc = defense_json(r, o.out, sha);
    doc["model"] = o.model.model;
    doc["proxy"] = nullptr;
    if (proxy) {
      doc["proxy"] = to_json(*proxy);
      doc["proxy"]["before"] = proxy_before;
      doc["proxy"]["after"] = proxy_after;
    }
    print_json(doc);
    return;
  }
  std::printf("%s on %s: %lld clean images trained on, %lld held out; %.1f s\n", o.method.c_str(),
              o.model.model.c_str(), static_cast<long long>(r.n_train),
              static_cast<long long>(r.n_holdout), r.seconds);
  std::printf("  %-32s %10s  %10s\n", "", "before", "after");
  std::printf("  %-32s %10s  %10s\n", "held-out clean accuracy",
              rate(r.before.clean_accuracy).c_str(), rate(r.after.clean_accuracy).c_str());
  if (data.poisoned) {
    std::printf("  %-32s %10s  %10s\n", "ASR (poisoned validation data)",
                rate(r.before.asr).c_str(), rate(r.after.asr).c_str());
  }
  if (proxy) {
    std::printf("  %-32s %10s  %10s\n", "proxy ASR (reversed triggers)", rate(proxy_before).c_str(),
                rate(proxy_after).c_str());
  }
  std::printf("%s\nWrote %s (sha256 %s)\n", figures_line(r).c_str(), o.out.c_str(), sha.c_str());
}

}  // namespace

void setup_defend(CLI::App& app) {
  auto opt = std::make_shared<DefendOptions>();
  auto* sub = app.add_subcommand(
      "defend",
      "one defense (finetune, fine-pruning, nc-unlearn, anp, clp, nad, i-bau, sau, ft-sam, "
      "fst) on a model");
  sub->add_option("method", opt->method, "the defense")
      ->required()
      ->check(CLI::IsMember(defense_methods()));
  sub->add_option("--model", opt->model.model, "Keras .h5 (full or weights-only) or ONNX model")
      ->check(CLI::ExistingFile);
  add_model_options(*sub, opt->model, "");
  add_global_options(*sub, opt->global);
  sub->add_option("--clean", opt->clean, "clean validation data (clp: for reporting)")
      ->check(CLI::ExistingPath);
  sub->add_option("--poisoned", opt->poisoned, "poisoned validation data: ASR, reported only")
      ->check(CLI::ExistingPath);
  sub->add_option("--out", opt->out, "the defended model (.h5 for Keras, .onnx for ONNX)");
  sub->add_option("--seed", opt->seed, "seed of the split, shuffling and the method's draws");
  sub->add_option("--detect", opt->detect_dir,
                  "the folder of an earlier bdguard detect: the proxy's triggers and nc-unlearn's "
                  "(else Neural Cleanse runs here)")
      ->check(CLI::ExistingDirectory);
  sub->add_flag("--list-options", opt->list, "print the method's options and defaults, and exit");
  sub->add_flag("--no-proxy", opt->no_proxy,
                "no proxy of the attack (Neural Cleanse's reversed triggers on the held-out "
                "clean images: the proxy ASR, and the epoch choice of select=proxy)");
  add_method_flags(*sub, opt->flags);
  add_nc_options(*sub, opt->nc, "--detect-seed");
  sub->callback([opt, sub] {
    if (!opt->list && opt->model.model.empty()) throw CLI::RequiredError("--model");
    if (!opt->list && opt->out.empty()) throw CLI::RequiredError("--out");
    (void)sub;
    run_defend(*opt);
  });
}

}  // namespace bdguard::cli
