// Built-in architectures, as Keras model_config documents.
#include "bdguard/architectures.h"
#include "bdguard/badnets.h"
#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "formats/keras/arch_docs.h"

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

// ---- Trainable architectures (architectures.h; the small DeepID also in badnets.h) ----

namespace {

using keras_arch::ConvSpec;

// Widths of the small DeepID: a third of DeepID's parameters on 28x28 images.
constexpr int64_t kConv1 = 12, kConv2 = 24, kConv3 = 48, kConv4 = 64, kFc = 128;

}  // namespace

nlohmann::json small_deepid_architecture(const Shape& input_shape, int64_t num_classes) {
  using namespace keras_arch;
  if (input_shape.size() != 3 || input_shape[1] < 16 || input_shape[2] < 16) {
    fail<ShapeMismatch>("", "--arch fmnist", "images of at least 16x16 pixels (C, H, W)",
                        shape_str(input_shape));
  }
  if (num_classes < 2) {
    fail<InvalidArgument>("", "training labels", "at least 2 classes", std::to_string(num_classes));
  }
  nlohmann::json layers = nlohmann::json::array({input_doc(input_shape), rescaling_doc("input")});
  layers.push_back(conv_doc("conv_1", ConvSpec{kConv1, 3, 1, "same"}, "rescaling"));
  layers.push_back(max_pool_doc("pool_1", "conv_1"));
  layers.push_back(conv_doc("conv_2", ConvSpec{kConv2, 3, 1, "same"}, "pool_1"));
  layers.push_back(max_pool_doc("pool_2", "conv_2"));
  layers.push_back(conv_doc("conv_3", ConvSpec{kConv3, 3, 1, "same"}, "pool_2"));
  layers.push_back(max_pool_doc("pool_3", "conv_3"));
  layers.push_back(flatten_doc("flatten_1", "pool_3"));
  layers.push_back(dense_doc("fc_1", kFc, "linear", "flatten_1"));
  layers.push_back(conv_doc("conv_4", ConvSpec{kConv4, 2, 1, "valid"}, "pool_3"));
  layers.push_back(flatten_doc("flatten_2", "conv_4"));
  layers.push_back(dense_doc("fc_2", kFc, "linear", "flatten_2"));
  layers.push_back(add_doc("add_1", {"fc_1", "fc_2"}));
  layers.push_back(relu_doc("activation_1", "add_1"));
  layers.push_back(dense_doc("output", num_classes, "softmax", "activation_1"));
  return functional_doc(std::move(layers), "output");
}

nlohmann::json deepid_architecture(int64_t num_classes) {
  nlohmann::json doc = builtin_architecture("deepid");
  for (auto& l : doc["config"]["layers"]) {
    if (l["name"] == "output") l["config"]["units"] = num_classes;
  }
  return doc;
}

std::vector<std::string> trainable_architecture_names() {
  return {"fmnist", "deepid", "resbn", "vgg", "preact-resnet18"};
}

nlohmann::json trainable_architecture(const std::string& name, const Shape& input_shape,
                                      int64_t num_classes) {
  if (name == "fmnist") return small_deepid_architecture(input_shape, num_classes);
  if (name == "resbn") return resbn_architecture(input_shape, num_classes);
  if (name == "vgg") return vgg_architecture(input_shape, num_classes);
  if (name == "preact-resnet18") return preact_resnet18_architecture(input_shape, num_classes);
  if (name == "deepid") {
    if (input_shape != Shape{3, 55, 47}) {
      fail<ShapeMismatch>("", "--arch deepid", "3x55x47 images (C, H, W)", shape_str(input_shape));
    }
    return deepid_architecture(num_classes);
  }
  std::string known;
  for (const auto& n : trainable_architecture_names()) known += (known.empty() ? "" : ", ") + n;
  fail<InvalidArgument>("--arch", "", "one of " + known, "'" + name + "'");
}

}  // namespace bdguard
