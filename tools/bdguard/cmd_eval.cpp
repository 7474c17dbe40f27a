// bdguard eval (accuracy and attack success rate on lab data) and bdguard predict
// (labels of image files).
#include <ATen/ATen.h>

#include <cstdio>
#include <iostream>

#include "commands.h"
#include "common.h"

namespace bdguard::cli {
namespace {

struct EvalOptions {
  ModelOptions model;
  GlobalOptions global;
  std::string clean, poisoned;
};

void run_eval(const EvalOptions& o) {
  apply_threads(o.global.threads);
  Model m = load(o.model, o.model.model);
  LabDataset clean(o.clean, m.input_shape(), data_options(o.model, m));
  auto pred = predict_dataset({&m}, clean, o.global.batch, progress_bar("clean", o.global.quiet));
  double acc = match_rate(pred[0], clean.labels());
  nlohmann::json doc = {{"clean_accuracy", acc}, {"n_clean", clean.size()}};
  if (!o.poisoned.empty()) {
    LabDataset bd(o.poisoned, m.input_shape(), data_options(o.model, m));
    auto bd_pred =
        predict_dataset({&m}, bd, o.global.batch, progress_bar("poisoned", o.global.quiet));
    doc["attack_success_rate"] = match_rate(bd_pred[0], bd.labels());
    doc["n_poisoned"] = bd.size();
  } else {
    doc["attack_success_rate"] = nullptr;
    doc["n_poisoned"] = 0;
  }
  if (o.global.json) {
    print_json(doc);
    return;
  }
  std::printf("Clean Classification accuracy: %s %%\n", pct(acc).c_str());
  if (!o.poisoned.empty()) {
    std::printf("Attack Success Rate: %s %%\n",
                pct(doc["attack_success_rate"].get<double>()).c_str());
  }
}

struct PredictOptions {
  ModelOptions model;
  GlobalOptions global;
  int top = 5;
  std::vector<std::string> images;
};

void run_predict(const PredictOptions& o) {
  apply_threads(o.global.threads);
  Model m = load(o.model, o.model.model);
  std::vector<at::Tensor> xs;
  for (const auto& path : o.images) xs.push_back(load_image(path, m.input_shape()));
  at::NoGradGuard no_grad;
  at::Tensor probs = m.probabilities(at::cat(xs)).to(at::kDouble);
  int64_t k = std::min<int64_t>(o.top, probs.size(1));
  auto [values, indices] = probs.topk(k, 1);
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < o.images.size(); ++i) {
    auto row = static_cast<int64_t>(i);
    nlohmann::json top = nlohmann::json::array();
    for (int64_t j = 0; j < k; ++j) {
      top.push_back(
          {{"label", indices[row][j].item<int64_t>()}, {"prob", values[row][j].item<double>()}});
    }
    out.push_back({{"input", o.images[i]},
                   {"label", top[0]["label"]},
                   {"prob", top[0]["prob"]},
                   {"top", top}});
  }
  if (o.global.json) {
    print_json(out);
    return;
  }
  for (const auto& e : out) {
    std::printf("%s\t%lld\t%.6f\n", e["input"].get<std::string>().c_str(),
                static_cast<long long>(e["label"].get<int64_t>()), e["prob"].get<double>());
  }
}

}  // namespace

void setup_eval(CLI::App& app) {
  auto opt = std::make_shared<EvalOptions>();
  auto* sub = app.add_subcommand("eval", "clean accuracy and attack success rate on lab data");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  sub->add_option("--clean", opt->clean, "clean data file")->required()->check(CLI::ExistingPath);
  sub->add_option("--poisoned", opt->poisoned, "poisoned data file")->check(CLI::ExistingPath);
  sub->callback([opt] { run_eval(*opt); });
}

void setup_predict(CLI::App& app) {
  auto opt = std::make_shared<PredictOptions>();
  auto* sub = app.add_subcommand("predict", "label and probability of each image");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  sub->add_option("--top", opt->top, "how many labels to list per image")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  sub->add_option("images", opt->images, "image files (PNG, JPEG, ...)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->callback([opt] { run_predict(*opt); });
}

}  // namespace bdguard::cli
