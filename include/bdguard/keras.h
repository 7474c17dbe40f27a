// Keras HDF5 models (Keras 2.x): reading them into the graph, writing them back.
//
// Two kinds of file: a full model (`model.save`: root attribute `model_config` plus
// the group `model_weights`) and a weights-only file (`save_weights`), whose
// architecture comes from elsewhere (`ArchSource`). Both are untrusted: every
// attribute, dataset shape and dtype is checked before anything is allocated. Keras'
// channels-last layers become the graph's NCHW ops (src/formats/keras/layers.cpp);
// Conv2D kernels are stored HWIO in the file and OIHW in the graph.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/model.h"
#include "bdguard/model_io.h"

namespace bdguard {

// The built-in architectures (Keras model_config documents).
nlohmann::json builtin_architecture(const std::string& name);
std::vector<std::string> builtin_architecture_names();

// Parses a model_config JSON text with limits on size and nesting (untrusted input).
nlohmann::json parse_model_config(const std::string& text, const std::string& origin);
// Reads the architecture: the built-in, or from a .h5 (its model_config) or JSON file
// (a regular file: a FIFO or a device is refused without being opened).
nlohmann::json read_architecture(const ArchSource& arch);

// Builds the graph of a Keras `model_config` document ({"class_name":
// "Functional"|"Model"|"Sequential", "config": ...}); weights are zeros. `origin`
// names the file in error messages.
Model keras_model_from_config(const nlohmann::json& model_config, const std::string& origin);

// Loads a Keras model. A full model carries its own architecture (`arch` is then
// not used); a weights-only file needs `arch`.
Model load_keras_model(const std::string& path, const ArchSource& arch = {},
                       const LoadOptions& options = {});

// Writes a Keras model to `path` atomically: a model read from a file as a copy of
// that file in which only the weight values are replaced (a full model gives a full
// model, weights-only gives weights-only); a model built from a model_config in
// memory as a full Keras 2.x model.
void save_keras_model(const Model& m, const std::string& path);

// The model_config document of a model built from one, as Keras 2.x writes it.
std::string model_config_text(const Model& m);

}  // namespace bdguard
