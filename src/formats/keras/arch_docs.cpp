// Keras 2.x layer documents for the trainable architectures (see arch_docs.h).
#include "formats/keras/arch_docs.h"

#include <algorithm>

#include "bdguard/error.h"

namespace bdguard::keras_arch {
namespace {

using nlohmann::json;

json inbound(const std::vector<std::string>& from) {
  json node = json::array();
  for (const auto& f : from) node.push_back({f, 0, 0, json::object()});
  return json::array({node});
}

json initializer(const char* cls) {
  if (std::string(cls) == "GlorotUniform")
    return {{"class_name", cls}, {"config", {{"seed", nullptr}}}};
  return {{"class_name", cls}, {"config", json::object()}};
}

// A Conv2D or Dense config with the weight settings Keras 2.x writes for both:
// Glorot-uniform kernels, zero biases, no regularizers or constraints.
json with_weights(json config, bool use_bias) {
  config.update({{"use_bias", use_bias},
                 {"kernel_initializer", initializer("GlorotUniform")},
                 {"bias_initializer", initializer("Zeros")},
                 {"kernel_regularizer", nullptr},
                 {"bias_regularizer", nullptr},
                 {"activity_regularizer", nullptr},
                 {"kernel_constraint", nullptr},
                 {"bias_constraint", nullptr}});
  return config;
}

}  // namespace

json layer_doc(const std::string& cls, const std::string& name, json config,
               const std::vector<std::string>& from) {
  config["name"] = name;
  config["trainable"] = true;
  config["dtype"] = "float32";
  return {
      {"class_name", cls}, {"name", name}, {"config", config}, {"inbound_nodes", inbound(from)}};
}

json input_doc(const Shape& chw) {
  return {{"class_name", "InputLayer"},
          {"name", "input"},
          {"config",
           {{"batch_input_shape", {nullptr, chw[1], chw[2], chw[0]}},
            {"dtype", "float32"},
            {"sparse", false},
            {"ragged", false},
            {"name", "input"}}},
          {"inbound_nodes", json::array()}};
}

json rescaling_doc(const std::string& from) {
  return layer_doc("Rescaling", "rescaling", {{"scale", 1.0 / 255.0}, {"offset", 0.0}}, {from});
}

json conv_doc(const std::string& name, const ConvSpec& c, const std::string& from) {
  return layer_doc("Conv2D", name,
                   with_weights({{"filters", c.filters},
                                 {"kernel_size", {c.kernel, c.kernel}},
                                 {"strides", {c.stride, c.stride}},
                                 {"padding", c.padding},
                                 {"data_format", "channels_last"},
                                 {"dilation_rate", {1, 1}},
                                 {"groups", 1},
                                 {"activation", c.activation}},
                                c.use_bias),
                   {from});
}

json batch_norm_doc(const std::string& name, const std::string& from) {
  return layer_doc("BatchNormalization", name,
                   {{"axis", {3}},
                    {"momentum", 0.99},
                    {"epsilon", 0.001},
                    {"center", true},
                    {"scale", true},
                    {"beta_initializer", initializer("Zeros")},
                    {"gamma_initializer", initializer("Ones")},
                    {"moving_mean_initializer", initializer("Zeros")},
                    {"moving_variance_initializer", initializer("Ones")},
                    {"beta_regularizer", nullptr},
                    {"gamma_regularizer", nullptr},
                    {"beta_constraint", nullptr},
                    {"gamma_constraint", nullptr}},
                   {from});
}

json relu_doc(const std::string& name, const std::string& from) {
  return layer_doc("Activation", name, {{"activation", "relu"}}, {from});
}

json zero_pad_doc(const std::string& name, int64_t pad, const std::string& from) {
  return layer_doc("ZeroPadding2D", name,
                   {{"padding", {{pad, pad}, {pad, pad}}}, {"data_format", "channels_last"}},
                   {from});
}

json max_pool_doc(const std::string& name, const std::string& from) {
  return layer_doc("MaxPooling2D", name,
                   {{"pool_size", {2, 2}},
                    {"padding", "valid"},
                    {"strides", {2, 2}},
                    {"data_format", "channels_last"}},
                   {from});
}

json global_average_pool_doc(const std::string& name, const std::string& from) {
  return layer_doc("GlobalAveragePooling2D", name,
                   {{"data_format", "channels_last"}, {"keepdims", false}}, {from});
}

json flatten_doc(const std::string& name, const std::string& from) {
  return layer_doc("Flatten", name, {{"data_format", "channels_last"}}, {from});
}

json dense_doc(const std::string& name, int64_t units, const std::string& activation,
               const std::string& from) {
  return layer_doc("Dense", name,
                   with_weights({{"units", units}, {"activation", activation}}, true), {from});
}

json add_doc(const std::string& name, const std::vector<std::string>& from) {
  return layer_doc("Add", name, json::object(), from);
}

json functional_doc(json layers, const std::string& output) {
  return {{"class_name", "Functional"},
          {"config",
           {{"name", "model_1"},
            {"layers", std::move(layers)},
            {"input_layers", {{"input", 0, 0}}},
            {"output_layers", {{output, 0, 0}}}}},
          {"keras_version", "2.10.0"},
          {"backend", "tensorflow"}};
}

void require_input(const std::string& arch, const Shape& chw, const std::vector<int64_t>& channels,
                   int64_t min_side, int64_t num_classes) {
  const bool ok = chw.size() == 3 &&
                  std::find(channels.begin(), channels.end(), chw[0]) != channels.end() &&
                  chw[1] >= min_side && chw[2] >= min_side;
  if (!ok) {
    std::string want;
    for (int64_t c : channels) want += (want.empty() ? "" : " or ") + std::to_string(c);
    fail<ShapeMismatch>("", arch,
                        "images of " + want + " channel(s), at least " + std::to_string(min_side) +
                            "x" + std::to_string(min_side) + " pixels (C, H, W)",
                        shape_str(chw));
  }
  if (num_classes < 2) {
    fail<InvalidArgument>("", "training labels", "at least 2 classes", std::to_string(num_classes));
  }
}

}  // namespace bdguard::keras_arch
