// Reading and writing Keras HDF5 models.
//
// Two kinds of file: a full model (`model.save`: root attribute `model_config` plus
// the group `model_weights`) and a weights-only file (`save_weights`), whose
// architecture comes from elsewhere (`ArchSource`). Both are untrusted: every
// attribute, dataset shape and dtype is checked before anything is allocated.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "bdguard/model.h"

namespace bdguard {

// Where the architecture of a weights-only file comes from: a built-in name
// ("deepid") or a file (a full model .h5, or a model_config / to_json() JSON file).
struct ArchSource {
  std::string builtin;
  std::string file;
  bool empty() const { return builtin.empty() && file.empty(); }
};

struct LoadOptions {
  double input_scale = 1.0;
  // No single tensor (weights or a data batch) may exceed this many bytes.
  int64_t max_tensor_bytes = int64_t{2} << 30;
};

// The built-in architectures (Keras model_config documents).
nlohmann::json builtin_architecture(const std::string& name);
std::vector<std::string> builtin_architecture_names();

// Parses a model_config JSON text with limits on size and nesting (untrusted input).
nlohmann::json parse_model_config(const std::string& text, const std::string& origin);
// Reads the architecture: the built-in, or from a .h5 (its model_config) or JSON file.
nlohmann::json read_architecture(const ArchSource& arch);

// Loads a Keras model. A full model carries its own architecture (`arch` is then
// not used); a weights-only file needs `arch`.
Model load_model(const std::string& path, const ArchSource& arch = {},
                 const LoadOptions& options = {});

// Writes `m` as Keras HDF5 to `path`, atomically (temporary file, then rename).
// A model read from a file is written as a copy of that file in which only the
// weight values are replaced, so structure, attributes and every unchanged byte stay
// as they were (a full model gives a full model, weights-only gives weights-only).
// A model built in memory is written as a full Keras 2.x model.
void save_model(const Model& m, const std::string& path);

// The model_config document of a model built in memory, as Keras 2.x writes it.
std::string model_config_text(const Model& m);

}  // namespace bdguard
