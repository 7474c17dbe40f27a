// The ONNX graph mapper's internal interface: the validated protobuf to the graph
// (read.cpp), and the protobuf a model was read from (for the writer, write.cpp).
#pragma once

#include <string>

#include "bdguard/model.h"
#include "formats/onnx/proto.h"

namespace bdguard::onnx_io {

struct ReadOptions {
  int64_t max_tensor_bytes = int64_t{2} << 30;
  // The graph input's first dim is the batch (kBatch), symbolic or not: a classifier
  // runs on batches. Off for ONNX's node tests, whose inputs have fixed shapes.
  bool batch_input = true;
};

// The graph of a model read_model validated. `file` names it in errors.
Model read_graph(const onnx::ModelProto& proto, const std::string& file, const ReadOptions& o);

// A new ONNX model (opset 13) of the graph of `m`, a model built in memory: the input
// node becomes the graph input (batch dim "N"), each parameter and constant an
// initializer and each op a node, all under their graph names (write_graph.cpp).
// UnsupportedOp for an op with no ONNX form here, InvalidArgument for a model with a
// Preprocess step; `path` names the file in errors.
onnx::ModelProto graph_to_proto(const Model& m, const std::string& path);

// The protobuf `m` was read from (load_onnx_model), or nullptr.
const onnx::ModelProto* source_proto(const Model& m);

}  // namespace bdguard::onnx_io
