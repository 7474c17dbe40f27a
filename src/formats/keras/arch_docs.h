// Keras 2.x layer documents for the trainable architectures (architectures.h): each
// helper returns one layer of a Functional model_config, as Keras 2.10 writes it, fed
// by the layers named in `from`.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/model.h"

namespace bdguard::keras_arch {

nlohmann::json layer_doc(const std::string& cls, const std::string& name, nlohmann::json config,
                         const std::vector<std::string>& from);
// InputLayer for (C, H, W) images: batch_input_shape (None, H, W, C).
nlohmann::json input_doc(const Shape& chw);
// Rescaling pixels 0..255 to 0..1.
nlohmann::json rescaling_doc(const std::string& from);
struct ConvSpec {
  int64_t filters = 0, kernel = 3, stride = 1;
  std::string padding = "same";
  std::string activation = "relu";
  bool use_bias = true;
};
nlohmann::json conv_doc(const std::string& name, const ConvSpec& c, const std::string& from);
nlohmann::json batch_norm_doc(const std::string& name, const std::string& from);
nlohmann::json relu_doc(const std::string& name, const std::string& from);
nlohmann::json zero_pad_doc(const std::string& name, int64_t pad, const std::string& from);
nlohmann::json max_pool_doc(const std::string& name, const std::string& from);
nlohmann::json global_average_pool_doc(const std::string& name, const std::string& from);
nlohmann::json flatten_doc(const std::string& name, const std::string& from);
nlohmann::json dense_doc(const std::string& name, int64_t units, const std::string& activation,
                         const std::string& from);
nlohmann::json add_doc(const std::string& name, const std::vector<std::string>& from);
// The Functional model around `layers`, from layer "input" to layer `output`.
nlohmann::json functional_doc(nlohmann::json layers, const std::string& output);

// Checks shared by the architectures: (C, H, W) with C in `channels` and H, W at least
// `min_side`, and at least 2 classes; the errors name `arch` ("--arch vgg").
void require_input(const std::string& arch, const Shape& chw, const std::vector<int64_t>& channels,
                   int64_t min_side, int64_t num_classes);

}  // namespace bdguard::keras_arch
