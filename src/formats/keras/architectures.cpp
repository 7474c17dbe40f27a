// Built-in architectures, as Keras model_config documents.
#include "bdguard/error.h"
#include "bdguard/keras.h"

namespace bdguard {
namespace {

// DeepID as in the CSAW-HackML lab (Keras functional model, input 55x47x3, 1283 classes).
constexpr const char* kDeepId = R"({"class_name": "Functional", "config": {"name": "model_1",
 "layers": [
  {"class_name": "InputLayer", "name": "input", "inbound_nodes": [],
   "config": {"batch_input_shape": [null, 55, 47, 3], "dtype": "float32", "name": "input"}},
  {"class_name": "Conv2D", "name": "conv_1", "inbound_nodes": [[["input", 0, 0, {}]]],
   "config": {"name": "conv_1", "filters": 20, "kernel_size": [4, 4], "strides": [1, 1],
    "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
    "activation": "relu", "use_bias": true}},
  {"class_name": "MaxPooling2D", "name": "pool_1", "inbound_nodes": [[["conv_1", 0, 0, {}]]],
   "config": {"name": "pool_1", "pool_size": [2, 2], "padding": "valid", "strides": [2, 2],
    "data_format": "channels_last"}},
  {"class_name": "Conv2D", "name": "conv_2", "inbound_nodes": [[["pool_1", 0, 0, {}]]],
   "config": {"name": "conv_2", "filters": 40, "kernel_size": [3, 3], "strides": [1, 1],
    "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
    "activation": "relu", "use_bias": true}},
  {"class_name": "MaxPooling2D", "name": "pool_2", "inbound_nodes": [[["conv_2", 0, 0, {}]]],
   "config": {"name": "pool_2", "pool_size": [2, 2], "padding": "valid", "strides": [2, 2],
    "data_format": "channels_last"}},
  {"class_name": "Conv2D", "name": "conv_3", "inbound_nodes": [[["pool_2", 0, 0, {}]]],
   "config": {"name": "conv_3", "filters": 60, "kernel_size": [3, 3], "strides": [1, 1],
    "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
    "activation": "relu", "use_bias": true}},
  {"class_name": "MaxPooling2D", "name": "pool_3", "inbound_nodes": [[["conv_3", 0, 0, {}]]],
   "config": {"name": "pool_3", "pool_size": [2, 2], "padding": "valid", "strides": [2, 2],
    "data_format": "channels_last"}},
  {"class_name": "Flatten", "name": "flatten_1", "inbound_nodes": [[["pool_3", 0, 0, {}]]],
   "config": {"name": "flatten_1", "data_format": "channels_last"}},
  {"class_name": "Dense", "name": "fc_1", "inbound_nodes": [[["flatten_1", 0, 0, {}]]],
   "config": {"name": "fc_1", "units": 160, "activation": "linear", "use_bias": true}},
  {"class_name": "Conv2D", "name": "conv_4", "inbound_nodes": [[["pool_3", 0, 0, {}]]],
   "config": {"name": "conv_4", "filters": 80, "kernel_size": [2, 2], "strides": [1, 1],
    "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
    "activation": "relu", "use_bias": true}},
  {"class_name": "Flatten", "name": "flatten_2", "inbound_nodes": [[["conv_4", 0, 0, {}]]],
   "config": {"name": "flatten_2", "data_format": "channels_last"}},
  {"class_name": "Dense", "name": "fc_2", "inbound_nodes": [[["flatten_2", 0, 0, {}]]],
   "config": {"name": "fc_2", "units": 160, "activation": "linear", "use_bias": true}},
  {"class_name": "Add", "name": "add_1", "inbound_nodes": [[["fc_1", 0, 0, {}], ["fc_2", 0, 0, {}]]],
   "config": {"name": "add_1"}},
  {"class_name": "Activation", "name": "activation_1", "inbound_nodes": [[["add_1", 0, 0, {}]]],
   "config": {"name": "activation_1", "activation": "relu"}},
  {"class_name": "Dense", "name": "output", "inbound_nodes": [[["activation_1", 0, 0, {}]]],
   "config": {"name": "output", "units": 1283, "activation": "softmax", "use_bias": true}}],
 "input_layers": [["input", 0, 0]], "output_layers": [["output", 0, 0]]}})";

}  // namespace

std::vector<std::string> builtin_architecture_names() { return {"deepid"}; }

nlohmann::json builtin_architecture(const std::string& name) {
  if (name == "deepid") return nlohmann::json::parse(kDeepId);
  throw InvalidArgument(
      describe("--arch", "'" + name + "'", "a built-in architecture (deepid)", "an unknown name"));
}

}  // namespace bdguard
