// Reading and writing models, whatever their file format.
//
// A model file is recognised by its content: an HDF5 file is a Keras model (keras.h),
// anything else is read as an ONNX model (onnx.h). Every model file is untrusted (a
// BadNet comes from the attacker): sizes are checked before anything is allocated and
// nothing in a file is ever executed. A written model keeps its input's format: it is
// a copy of the file it was read from in which only the changed tensors differ.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bdguard/model.h"

namespace bdguard {

// Where the architecture of a Keras weights-only file comes from: a built-in name
// ("deepid") or a file (a full model .h5, or a model_config / to_json() JSON file).
struct ArchSource {
  std::string builtin;
  std::string file;
  bool empty() const { return builtin.empty() && file.empty(); }
};

struct LoadOptions {
  Preprocess preprocess;
  // No single tensor (a weight, a data batch) may exceed this many bytes.
  int64_t max_tensor_bytes = int64_t{2} << 30;
  // No model file may exceed this many bytes (checked before it is parsed).
  int64_t max_model_bytes = int64_t{2} << 30;
};

// The format of a model file from its first bytes (an HDF5 signature: Keras; else
// ONNX). Refuses a path that is not a regular file (a FIFO, a device) without
// blocking on it.
ModelFormat model_file_format(const std::string& path);

// Loads a Keras or ONNX model and checks that it is a classifier (Model::
// require_classifier). `arch` is used by Keras weights-only files only.
Model load_model(const std::string& path, const ArchSource& arch = {},
                 const LoadOptions& options = {});

// Writes `m` to `path` atomically (temporary file, then rename), in the format of the
// file it was read from (as a patched copy of it). A model built in memory is written
// as a full Keras model, or as ONNX when `path` ends in ".onnx".
void save_model(const Model& m, const std::string& path);

// Refuses (InvalidArgument) a path save_model would refuse for `m`: one named for the
// other format. Commands call it before any work.
void check_output_path(const Model& m, const std::string& path);

// ".h5" or ".onnx": the extension of the files save_model writes for `m`.
std::string model_extension(const Model& m);

// One row of `bdguard inspect`, in the terms of the model's file: a Keras layer (its
// class, its channels-last output shape) or an ONNX node (its op type, NCHW dims).
struct LayerSummary {
  std::string name, cls;
  std::vector<int64_t> shape;  // the output's, batch first as -1
  std::string shape_text;      // "(None, 10, 8, 60)" or "(N, 64, 8, 8)"
  int64_t params = 0;
  bool prunable = false;        // Conv2D / Dense / Conv / Gemm / MatMul
  std::string pruned_kind;      // "output" channels or "input" features
  std::vector<int64_t> pruned;  // zeroed channels
};
std::vector<LayerSummary> summarize_layers(const Model& m);

}  // namespace bdguard
