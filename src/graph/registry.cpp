// The layer registry: one table from Keras class name to builder.
#include <map>

#include "common.h"

namespace bdguard {
namespace graph {
std::unique_ptr<Layer> make_input_layer();
std::unique_ptr<Layer> make_activation();
std::unique_ptr<Layer> make_relu();
std::unique_ptr<Layer> make_dropout();
std::unique_ptr<Layer> make_batch_normalization();
std::unique_ptr<Layer> make_add();
std::unique_ptr<Layer> make_concatenate();
std::unique_ptr<Layer> make_flatten();
std::unique_ptr<Layer> make_zero_padding2d();
std::unique_ptr<Layer> make_max_pooling2d();
std::unique_ptr<Layer> make_average_pooling2d();
std::unique_ptr<Layer> make_global_average_pooling2d();
std::unique_ptr<Layer> make_rescaling();
}  // namespace graph

namespace {

using Builder = std::unique_ptr<Layer> (*)();

const std::map<std::string, Builder>& registry() {
  static const std::map<std::string, Builder> table = {
      {"InputLayer", graph::make_input_layer},
      {"Conv2D", [] { return std::unique_ptr<Layer>(std::make_unique<Conv2D>()); }},
      {"Dense", [] { return std::unique_ptr<Layer>(std::make_unique<Dense>()); }},
      {"MaxPooling2D", graph::make_max_pooling2d},
      {"AveragePooling2D", graph::make_average_pooling2d},
      {"GlobalAveragePooling2D", graph::make_global_average_pooling2d},
      {"Flatten", graph::make_flatten},
      {"Add", graph::make_add},
      {"Concatenate", graph::make_concatenate},
      {"Activation", graph::make_activation},
      {"ReLU", graph::make_relu},
      {"Dropout", graph::make_dropout},
      {"BatchNormalization", graph::make_batch_normalization},
      {"ZeroPadding2D", graph::make_zero_padding2d},
      {"Rescaling", graph::make_rescaling},
  };
  return table;
}

}  // namespace

std::unique_ptr<Layer> make_layer(const std::string& class_name, const std::string& layer_name) {
  auto it = registry().find(class_name);
  if (it == registry().end()) {
    std::string why = class_name == "Lambda"
                          ? "a Lambda layer (its config carries Python bytecode; bdguard never "
                            "executes code from a file)"
                          : "class '" + class_name + "'";
    std::string known;
    for (const auto& [name, _] : registry()) known += (known.empty() ? "" : ", ") + name;
    throw UnsupportedLayer(
        describe("model_config", "layer '" + layer_name + "'", "one of " + known, why));
  }
  auto layer = it->second();
  layer->class_name = class_name;
  layer->name = layer_name;
  return layer;
}

std::vector<std::string> supported_layer_classes() {
  std::vector<std::string> out;
  for (const auto& [name, _] : registry()) out.push_back(name);
  return out;
}

}  // namespace bdguard
