// ONNX models: reading them into the graph, writing them back.
//
// One serialized onnx.ModelProto, default domain, opsets 7 to 17 (see the README for
// the operators). The file is untrusted: it is checked before anything is allocated
// (src/formats/onnx/proto.cpp), and external data, sparse initializers, model-local
// functions, training_info, subgraphs (If, Loop, Scan) and other domains are refused.
// Each ONNX node becomes one op of the graph; initializers become parameters (the
// float weights of Conv, Gemm, MatMul and BatchNormalization's scale and bias) or
// constants. An initializer that several nodes read (PyTorch's exporter merges equal
// tensors) becomes one parameter per reader, so each layer trains and prunes alone.
#pragma once

#include <string>

#include "bdguard/model.h"
#include "bdguard/model_io.h"

namespace bdguard {

Model load_onnx_model(const std::string& path, const LoadOptions& options = {});

// Writes an ONNX model to `path` atomically: a model read from an ONNX file as that
// file with only the changed initializers' values replaced (a changed initializer
// that other nodes also read is copied first, under a new name, for the changed node
// alone); a model built in memory as a new ONNX file (opset 13).
void save_onnx_model(const Model& m, const std::string& path);

}  // namespace bdguard
