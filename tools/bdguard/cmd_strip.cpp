// bdguard strip eval|predict: STRIP, is this input triggered?
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/strip_files.h"
#include "commands.h"
#include "common.h"
#include "strip_cli.h"

namespace bdguard::cli {
namespace {

struct StripEvalOptions {
  ModelOptions model;
  GlobalOptions global;
  StripFlags strip;
  std::string test, poisoned_test, out;
  bool force = false;
};

void run_strip_eval(const StripEvalOptions& o) {
  apply_threads(o.global.threads);
  const auto start = std::chrono::steady_clock::now();
  Model m = load(o.model, o.model.model);
  const DataOptions d = data_options(o.model, m);
  LabDataset test(o.test, m.input_shape(), d), bd(o.poisoned_test, m.input_shape(), d);
  // Every input is read before the output folder is made: a refused file leaves nothing.
  TensorData clean = read_tensor_data(LabDataset(o.strip.clean, m.input_shape(), d));
  if (!o.out.empty()) prepare_output_dir(o.out, o.force);
  Strip s = make_strip(m, std::move(clean), o.strip, progress_bar("validation", o.global.quiet));
  StripReport r;
  r.threshold = s.threshold();
  r.n_valid = static_cast<int64_t>(s.pool_scores().size());
  r.valid_frr = flagged_rate(s, s.pool_scores());
  r.test_scores = s.scores(read_tensor_data(test).images, kStripTestStream,
                           progress_bar("test", o.global.quiet));
  r.poisoned_scores = s.scores(read_tensor_data(bd).images, kStripPoisonedStream,
                               progress_bar("poisoned", o.global.quiet));
  r.n_test = test.size();
  r.n_poisoned = bd.size();
  r.frr = flagged_rate(s, r.test_scores);
  r.detection_rate = flagged_rate(s, r.poisoned_scores);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json doc = to_json(r);
  doc["method"] = "strip";
  doc["settings"] = strip_settings(o.strip, o.model);
  doc["settings"]["test"] = o.test;
  doc["settings"]["poisoned_test"] = o.poisoned_test;
  if (!o.out.empty()) {
    PlotResult plots = write_strip_plots(r, o.out, ReportOptions{});
    for (const auto& w : plots.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    write_file_atomic(o.out + "/strip.json", doc.dump(2) + "\n");
  }
  if (o.global.json) {
    print_json(doc);
    return;
  }
  std::printf("STRIP threshold %.4f bits (%s %% of %lld validation images below it)\n", r.threshold,
              pct(r.valid_frr).c_str(), static_cast<long long>(r.n_valid));
  std::printf("False rejection rate (clean test inputs flagged): %s %%\n", pct(r.frr).c_str());
  std::printf("Detection rate (poisoned test inputs flagged): %s %%\n",
              pct(r.detection_rate).c_str());
}

struct StripPredictOptions {
  ModelOptions model;
  GlobalOptions global;
  StripFlags strip;
  std::vector<std::string> images;
};

void run_strip_predict(const StripPredictOptions& o) {
  apply_threads(o.global.threads);
  Model m = load(o.model, o.model.model);
  std::vector<at::Tensor> xs;
  for (const auto& path : o.images) xs.push_back(load_image(path, m.input_shape()));
  Strip s = make_strip(m, o.model, o.strip, o.global);
  at::Tensor x = at::cat(xs);
  const std::vector<double> h = s.scores(x, kStripImageStream);
  at::Tensor labels;
  {
    at::NoGradGuard no_grad;
    labels = m.forward(x).argmax(1).contiguous();
  }
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < o.images.size(); ++i) {
    out.push_back({{"input", o.images[i]},
                   {"label", labels[static_cast<int64_t>(i)].item<int64_t>()},
                   {"entropy", h[i]},
                   {"flagged", s.flagged(h[i])}});
  }
  if (o.global.json) {
    print_json(out);
    return;
  }
  for (const auto& e : out) {
    std::printf("%s\t%lld\t%.6f\t%s\n", e["input"].get<std::string>().c_str(),
                static_cast<long long>(e["label"].get<int64_t>()), e["entropy"].get<double>(),
                e["flagged"].get<bool>() ? "flagged (triggered?)" : "clean");
  }
}

}  // namespace

void setup_strip(CLI::App& app) {
  auto* strip = app.add_subcommand("strip", "STRIP: flag triggered inputs at inference time");
  strip->require_subcommand(1);

  auto e = std::make_shared<StripEvalOptions>();
  auto* eval = strip->add_subcommand(
      "eval", "STRIP's threshold from clean validation data, its rates on the test files");
  add_model_options(*eval, e->model);
  add_global_options(*eval, e->global);
  add_strip_options(*eval, e->strip);
  eval->add_option("--test", e->test, "clean test data")->required()->check(CLI::ExistingPath);
  eval->add_option("--poisoned-test", e->poisoned_test, "poisoned test data")
      ->required()
      ->check(CLI::ExistingPath);
  eval->add_option("--out", e->out, "folder for strip.json and plots/strip_entropy.{png,svg}");
  add_force_flag(*eval, e->force);
  eval->callback([e] { run_strip_eval(*e); });

  auto p = std::make_shared<StripPredictOptions>();
  auto* predict = strip->add_subcommand("predict", "is each image triggered? (label, entropy)");
  add_model_options(*predict, p->model);
  add_global_options(*predict, p->global);
  add_strip_options(*predict, p->strip);
  predict->add_option("images", p->images, "image files (PNG, JPEG, ...)")
      ->required()
      ->check(CLI::ExistingFile);
  predict->callback([p] { run_strip_predict(*p); });
}

}  // namespace bdguard::cli
