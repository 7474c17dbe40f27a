// Small ONNX models built in C++ for tests: no Python, no exporter, deterministic values.
// Models are written as PyTorch writes them: weights as raw_data initializers, node
// names like PyTorch's module paths, the batch dim as dim_param "N".
#pragma once

#include <ATen/ATen.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bdguard::test {

// An empty model: a graph named "g", the default domain at `opset`, ir_version 7 up to
// opset 13 and 8 above (as torch.onnx.export writes).
onnx::ModelProto onnx_model(int64_t opset = 13);

// A TensorProto of `value`'s dims and dtype, its payload in raw_data.
onnx::TensorProto onnx_tensor(const std::string& name, const at::Tensor& value);
onnx::TensorProto& add_initializer(onnx::ModelProto& m, const std::string& name,
                                   const at::Tensor& value);

// A graph input or output of a tensor type with these dims; -1 is the batch, written as
// dim_param "N".
onnx::ValueInfoProto& add_input(onnx::ModelProto& m, const std::string& name,
                                const std::vector<int64_t>& dims,
                                int32_t elem_type = onnx::TensorProto::FLOAT);
onnx::ValueInfoProto& add_output(onnx::ModelProto& m, const std::string& name,
                                 const std::vector<int64_t>& dims,
                                 int32_t elem_type = onnx::TensorProto::FLOAT);

onnx::NodeProto& add_node(onnx::ModelProto& m, const std::string& op_type, const std::string& name,
                          const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs);

// Attributes of a node, of the type each name says; they return the attribute, for tests
// that tamper with it.
onnx::AttributeProto& attr_int(onnx::NodeProto& node, const std::string& name, int64_t value);
onnx::AttributeProto& attr_ints(onnx::NodeProto& node, const std::string& name,
                                const std::vector<int64_t>& values);
onnx::AttributeProto& attr_float(onnx::NodeProto& node, const std::string& name, float value);
onnx::AttributeProto& attr_floats(onnx::NodeProto& node, const std::string& name,
                                  const std::vector<float>& values);
onnx::AttributeProto& attr_string(onnx::NodeProto& node, const std::string& name,
                                  const std::string& value);
onnx::AttributeProto& attr_tensor(onnx::NodeProto& node, const std::string& name,
                                  const at::Tensor& value);

// Values in [-0.5, 0.5] from a fixed formula (the same on every machine), float32.
at::Tensor test_values(at::IntArrayRef sizes, int64_t offset = 0);

// input [N, 3, 8, 8] -> /conv1/Conv (4 filters 3x3, pads 1) -> /relu/Relu
// -> /pool/GlobalAveragePool -> /Flatten (axis 1) -> /fc/Gemm (transB 1, 5 classes)
// -> output [N, 5]. Initializers conv1.weight [4, 3, 3, 3], conv1.bias [4],
// fc.weight [5, 4], fc.bias [5].
onnx::ModelProto onnx_classifier();

// The model's bytes as they are (no checks; deterministic), and the same into a file.
std::string onnx_bytes(const onnx::ModelProto& m);
void save_onnx(const onnx::ModelProto& m, const std::string& path);
void save_bytes(const std::string& path, const std::string& bytes);

}  // namespace bdguard::test
