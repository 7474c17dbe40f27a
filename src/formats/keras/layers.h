// Keras layers as graph nodes: one builder per Keras class (the registry in
// layers.cpp), reading the layer's config with validation (fields.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bdguard/model.h"
#include "bdguard/ops.h"

namespace bdguard::keras {

// One Keras layer of a model_config, as the builders see it.
struct LayerDoc {
  std::string name, class_name;
  nlohmann::json config;
  std::string origin;  // the file, for messages
  // "model_config: layer 'conv_1' (Conv2D)"
  std::string label() const;
};

// Config fields, validated: every error names the file, the layer and the field.
[[noreturn]] void config_error(const LayerDoc& l, const std::string& field,
                               const std::string& expected, const std::string& found);
int64_t get_int(const LayerDoc& l, const std::string& field, int64_t fallback, int64_t lo,
                int64_t hi);
double get_double(const LayerDoc& l, const std::string& field, double fallback);
bool get_bool(const LayerDoc& l, const std::string& field, bool fallback);
bool has_field(const LayerDoc& l, const std::string& field);
std::string get_string(const LayerDoc& l, const std::string& field, const std::string& fallback);
// An int or a pair of ints ("kernel_size": 3 or [3, 3]); `fallback` when absent or null.
std::pair<int64_t, int64_t> get_pair(const LayerDoc& l, const std::string& field,
                                     std::pair<int64_t, int64_t> fallback, int64_t lo, int64_t hi);
// Refuses data_format = channels_first (Keras on CPU always used channels_last).
void require_channels_last(const LayerDoc& l);

// Adds the nodes of one layer to `m` reading the layer's inputs `in` (node indices)
// and returns the node holding the layer's output. The nodes' `layer` is the Keras
// layer name and their `layer_class` its class; the main node is named after the
// layer, helper nodes "<layer>/<role>". Parameters are created with zeros (the file's
// weights replace them) in the Keras weight order, named "<layer>/<suffix>", with
// `source` "<layer>/<suffix>:0" until the file names them.
int add_layer(Model& m, const LayerDoc& l, const std::vector<int>& in);
// Throws UnsupportedLayer for a class the registry does not know (Lambda above all:
// its config carries code).
void require_known(const LayerDoc& l);
[[noreturn]] void add_layer_unknown(const LayerDoc& l);
// The Keras input shape (batch_input_shape without the batch) as graph dims.
Dims input_dims(const LayerDoc& l);

// The Keras classes the registry knows, for error messages and docs.
std::vector<std::string> supported_classes();

}  // namespace bdguard::keras
