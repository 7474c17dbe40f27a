// Reading and writing models whatever their format (model_io.h).
#include "bdguard/model_io.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/keras.h"
#include "bdguard/onnx.h"

namespace bdguard {

namespace {

// Whether the first bytes can start a serialized onnx.ModelProto: the tag of one of its
// fields with that field's wire type (protobuf writes them in field order, ir_version
// first, but any may come first).
bool starts_like_model_proto(const unsigned char* b, std::streamsize n) {
  if (n < 1) return false;
  const unsigned tag = b[0] < 0x80 ? b[0] : (n > 1 ? (b[0] & 0x7f) | (b[1] << 7) : 0);
  const unsigned field = tag >> 3, wire = tag & 7;
  switch (field) {
    case 1:  // ir_version
    case 5:  // model_version
      return wire == 0;
    case 2:   // producer_name
    case 3:   // producer_version
    case 4:   // domain
    case 6:   // doc_string
    case 7:   // graph
    case 8:   // opset_import
    case 14:  // metadata_props
    case 20:  // training_info
    case 25:  // functions
      return wire == 2;
    default:
      return false;
  }
}

}  // namespace

ModelFormat model_file_format(const std::string& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "", "a readable file", std::strerror(errno));
  unsigned char head[8] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const std::streamsize n = in.gcount();
  if (n == 8 && std::memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0) return ModelFormat::kKeras;
  if (starts_like_model_proto(head, n)) return ModelFormat::kOnnx;
  fail(path, "", "a Keras .h5 (HDF5) or ONNX model file",
       n == 0 ? "an empty file" : "no HDF5 signature and no ONNX protobuf");
}

Model load_model(const std::string& path, const ArchSource& arch, const LoadOptions& options) {
  const ModelFormat format = model_file_format(path);
  // Before either parser sees the file (the ONNX reader checks again, on what it reads).
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) fail<IoError>(path, "", "a readable file", ec.message());
  if (size > static_cast<uintmax_t>(options.max_model_bytes)) {
    fail<LimitExceeded>(path, "",
                        "a model file of at most " + std::to_string(options.max_model_bytes) +
                            " bytes (--max-model-bytes)",
                        std::to_string(size) + " bytes");
  }
  Model m = format == ModelFormat::kKeras ? load_keras_model(path, arch, options)
                                          : load_onnx_model(path, options);
  m.require_classifier();
  return m;
}

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool writes_onnx(const Model& m, const std::string& path) {
  return m.format == ModelFormat::kOnnx ||
         (m.format == ModelFormat::kMemory && ends_with(path, ".onnx"));
}
}  // namespace

void check_output_path(const Model& m, const std::string& path) {
  const bool onnx = writes_onnx(m, path);
  // A file named for the other format would mislead whoever opens it next.
  if ((onnx && (ends_with(path, ".h5") || ends_with(path, ".hdf5"))) ||
      (!onnx && ends_with(path, ".onnx"))) {
    fail<InvalidArgument>(
        path, "",
        std::string("a file name ending in ") + (onnx ? ".onnx" : ".h5") + " (the model's format)",
        "another extension");
  }
}

void save_model(const Model& m, const std::string& path) {
  check_output_path(m, path);
  if (writes_onnx(m, path)) {
    save_onnx_model(m, path);
  } else {
    save_keras_model(m, path);
  }
}

std::string model_extension(const Model& m) {
  return m.format == ModelFormat::kOnnx ? ".onnx" : ".h5";
}

}  // namespace bdguard
