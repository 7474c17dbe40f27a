// bdguard inspect: every layer with class, output shape, parameters, pruned channels.
#include <ATen/ATen.h>

#include <cstdio>
#include <iostream>

#include "bdguard/prune.h"
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
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < m.size(); ++i) {
    const Layer& l = m.layer(i);
    nlohmann::json shape = nlohmann::json::array({nullptr});
    for (int64_t d : l.output_shape) shape.push_back(d);
    nlohmann::json entry = {{"name", l.name},
                            {"class", l.class_name},
                            {"output_shape", shape},
                            {"params", l.param_count()}};
    if (dynamic_cast<const Conv2D*>(&l) || dynamic_cast<const Dense*>(&l)) {
      entry["zero_channels"] = zero_channels(l);
    }
    layers.push_back(entry);
  }
  if (o.global.json) {
    print_json({{"layers", layers}});
    return;
  }
  std::printf("%s (%s, input %s, %lld classes)\n", o.model.model.c_str(),
              m.weights_only ? "weights-only" : "full model", shape_str(m.input_shape()).c_str(),
              static_cast<long long>(m.num_classes()));
  std::printf("%-16s %-22s %-18s %10s  %s\n", "layer", "class", "output shape", "params",
              "pruned channels");
  int64_t total = 0;
  for (const auto& e : layers) {
    std::string shape = "(None";
    for (size_t k = 1; k < e["output_shape"].size(); ++k) {
      shape += ", " + std::to_string(e["output_shape"][k].get<int64_t>());
    }
    shape += ")";
    std::string pruned;
    if (e.contains("zero_channels")) {
      auto c = e["zero_channels"].get<std::vector<int64_t>>();
      pruned = c.empty() ? "none" : std::to_string(c.size()) + ": " + channel_list(c);
    }
    total += e["params"].get<int64_t>();
    std::printf("%-16s %-22s %-18s %10lld  %s\n", e["name"].get<std::string>().c_str(),
                e["class"].get<std::string>().c_str(), shape.c_str(),
                static_cast<long long>(e["params"].get<int64_t>()), pruned.c_str());
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
