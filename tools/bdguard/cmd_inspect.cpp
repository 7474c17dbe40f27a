// bdguard inspect: every layer (Keras) or node (ONNX) with its class, output shape,
// parameters and pruned channels.
#include <ATen/ATen.h>

#include <cstdio>
#include <iostream>

#include "bdguard/model_io.h"
#include "commands.h"
#include "common.h"

namespace bdguard::cli {
namespace {

struct InspectOptions {
  ModelOptions model;
  GlobalOptions global;
};

std::string channel_list(const std::vector<int64_t>& c) {
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) {
    size_t j = i;
    while (j + 1 < c.size() && c[j + 1] == c[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(c[i]);
    if (j > i) out += "-" + std::to_string(c[j]);
    i = j;
  }
  return out;
}

void run_inspect(const InspectOptions& o) {
  apply_threads(o.global.threads);
  Model m = load(o.model, o.model.model);
  const std::vector<LayerSummary> rows = summarize_layers(m);
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json shape = nlohmann::json::array();
    for (int64_t d : r.shape) shape.push_back(d < 0 ? nlohmann::json(nullptr) : nlohmann::json(d));
    nlohmann::json entry = {
        {"name", r.name}, {"class", r.cls}, {"output_shape", shape}, {"params", r.params}};
    if (r.prunable) {
      entry["zero_channels"] = r.pruned;
      entry["zero_channels_kind"] = r.pruned_kind;
    }
    layers.push_back(entry);
  }
  const bool onnx = m.format == ModelFormat::kOnnx;
  if (o.global.json) {
    print_json({{"format", format_name(m.format)}, {"layers", layers}});
    return;
  }
  std::printf("%s (%s, input %s, %lld classes)\n", o.model.model.c_str(),
              onnx             ? "ONNX"
              : m.weights_only ? "weights-only"
                               : "full model",
              shape_str(m.input_shape()).c_str(), static_cast<long long>(m.num_classes()));
  size_t width = 16;
  for (const auto& r : rows) width = std::max(width, std::min<size_t>(r.name.size(), 48));
  std::printf("%-*s %-22s %-18s %10s  %s\n", static_cast<int>(width), onnx ? "node" : "layer",
              onnx ? "op" : "class", "output shape", "params",
              onnx ? "pruned channels (Conv) / input features (Gemm, MatMul)" : "pruned channels");
  int64_t total = 0;
  for (const auto& r : rows) {
    std::string pruned;
    if (r.prunable) {
      pruned = r.pruned.empty() ? "none"
                                : std::to_string(r.pruned.size()) + ": " + channel_list(r.pruned);
    }
    total += r.params;
    std::printf("%-*s %-22s %-18s %10lld  %s\n", static_cast<int>(width), r.name.c_str(),
                r.cls.c_str(), r.shape_text.c_str(), static_cast<long long>(r.params),
                pruned.c_str());
  }
  std::printf("total parameters: %lld\n", static_cast<long long>(total));
}

}  // namespace

void setup_inspect(CLI::App& app) {
  auto opt = std::make_shared<InspectOptions>();
  auto* sub = app.add_subcommand("inspect", "list layers, shapes, parameters and pruned channels");
  add_model_options(*sub, opt->model);
  add_global_options(*sub, opt->global);
  sub->callback([opt] { run_inspect(*opt); });
}

}  // namespace bdguard::cli
