// Reading and writing models whatever their format (model_io.h).
#include "bdguard/model_io.h"

#include <fstream>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/keras.h"
#include "bdguard/onnx.h"

namespace bdguard {

ModelFormat model_file_format(const std::string& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "", "a readable file", std::strerror(errno));
  char magic[8] = {};
  in.read(magic, sizeof magic);
  if (in.gcount() == 8 && std::string(magic, 8) == std::string("\x89HDF\r\n\x1a\n", 8)) {
    return ModelFormat::kKeras;
  }
  return ModelFormat::kOnnx;
}

Model load_model(const std::string& path, const ArchSource& arch, const LoadOptions& options) {
  Model m = model_file_format(path) == ModelFormat::kKeras ? load_keras_model(path, arch, options)
                                                           : load_onnx_model(path, options);
  m.require_classifier();
  return m;
}

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

void save_model(const Model& m, const std::string& path) {
  const bool onnx =
      m.format == ModelFormat::kOnnx || (m.format == ModelFormat::kMemory && ends_with(path, ".onnx"));
  // A file named for the other format would mislead whoever opens it next.
  if ((onnx && (ends_with(path, ".h5") || ends_with(path, ".hdf5"))) ||
      (!onnx && ends_with(path, ".onnx"))) {
    fail<InvalidArgument>(path, "", std::string("a file name ending in ") + (onnx ? ".onnx" : ".h5") +
                                        " (the model's format)",
                          "another extension");
  }
  if (onnx) {
    save_onnx_model(m, path);
  } else {
    save_keras_model(m, path);
  }
}

std::string model_extension(const Model& m) {
  return m.format == ModelFormat::kOnnx ? ".onnx" : ".h5";
}

}  // namespace bdguard
