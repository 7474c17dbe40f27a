// Keras 2.x functional `model_config` documents, built by hand in tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/model.h"

namespace bdguard::test {

// A Keras 2.x functional layer entry; `inbound` lists the layers of its one call.
inline nlohmann::json layer_json(const std::string& cls, const std::string& name,
                                 nlohmann::json config, const std::vector<std::string>& inbound) {
  using nlohmann::json;
  config["name"] = name;
  json nodes = json::array();
  if (!inbound.empty()) {
    json call = json::array();
    for (const auto& in : inbound) call.push_back({in, 0, 0, json::object()});
    nodes.push_back(call);
  }
  return {{"class_name", cls}, {"name", name}, {"config", config}, {"inbound_nodes", nodes}};
}

// A Functional model_config: an InputLayer "input" of Keras shape `input` (H, W, C or F),
// then `layers`.
inline nlohmann::json functional(const Shape& input, std::vector<nlohmann::json> layers,
                                 const std::string& output) {
  using nlohmann::json;
  json shape = json::array({nullptr});
  for (int64_t d : input) shape.push_back(d);
  layers.insert(layers.begin(),
                layer_json("InputLayer", "input", {{"batch_input_shape", shape}}, {}));
  return {{"class_name", "Functional"},
          {"config",
           {{"name", "m"},
            {"layers", layers},
            {"input_layers", json::array({json::array({"input", 0, 0})})},
            {"output_layers", json::array({json::array({output, 0, 0})})}}}};
}

}  // namespace bdguard::test
