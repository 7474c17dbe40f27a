// ONNX operators as graph ops: one builder per op type, reading the node's attributes
// for its opset (op_table.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bdguard/op.h"
#include "formats/onnx/proto.h"

namespace bdguard::onnx_io {

// What a builder may need to know of the node's inputs at build time.
struct NodeContext {
  const onnx::NodeProto& node;
  const Attrs& attrs;
  int64_t opset = 0;
  std::string file;
  // Dims of input i (nullptr when absent).
  std::vector<const ValueInfo*> inputs;
};

// A constant input the builder adds in the node's place (an attribute of older opsets
// that newer opsets take as an input: Clip's min and max, Pad's pads and value).
struct ExtraInput {
  size_t slot = 0;
  at::Tensor value;
};

struct BuiltOp {
  std::unique_ptr<Op> op;
  std::vector<ExtraInput> extra;
  // Inputs past this many are dropped (Dropout's ratio and training_mode, which the
  // inference form ignores); -1 keeps all.
  int keep_inputs = -1;
};

// The op for a node, or UnsupportedOp naming the node and its op type.
BuiltOp build_op(const NodeContext& ctx);
// The op types the table knows, for messages and docs.
std::vector<std::string> supported_op_types();
// ONNX TensorProto.DataType as an ATen dtype (UnsupportedOp for others).
at::ScalarType scalar_type_of(int32_t data_type, const std::string& file, const std::string& what);

}  // namespace bdguard::onnx_io
