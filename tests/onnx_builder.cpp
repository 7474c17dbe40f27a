#include "onnx_builder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <fstream>
#include <stdexcept>

#include "formats/onnx/proto.h"

namespace bdguard::test {
namespace {

int32_t onnx_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return onnx::TensorProto::FLOAT;
    case at::kDouble:
      return onnx::TensorProto::DOUBLE;
    case at::kHalf:
      return onnx::TensorProto::FLOAT16;
    case at::kLong:
      return onnx::TensorProto::INT64;
    case at::kInt:
      return onnx::TensorProto::INT32;
    case at::kShort:
      return onnx::TensorProto::INT16;
    case at::kChar:
      return onnx::TensorProto::INT8;
    case at::kByte:
      return onnx::TensorProto::UINT8;
    case at::kBool:
      return onnx::TensorProto::BOOL;
    default:
      throw std::invalid_argument("onnx_tensor: no ONNX type for this dtype");
  }
}

onnx::ValueInfoProto& value(onnx::ValueInfoProto* v, const std::string& name,
                            const std::vector<int64_t>& dims, int32_t elem_type) {
  v->set_name(name);
  auto* tensor = v->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elem_type);
  auto* shape = tensor->mutable_shape();
  for (int64_t d : dims) {
    if (d < 0) {
      shape->add_dim()->set_dim_param("N");
    } else {
      shape->add_dim()->set_dim_value(d);
    }
  }
  return *v;
}

onnx::AttributeProto& attr(onnx::NodeProto& node, const std::string& name,
                           onnx::AttributeProto::AttributeType type) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(type);
  return *a;
}

}  // namespace

onnx::ModelProto onnx_model(int64_t opset) {
  onnx::ModelProto m;
  m.set_ir_version(opset <= 13 ? 7 : 8);
  m.set_producer_name("bdguard-test");
  auto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

onnx::TensorProto onnx_tensor(const std::string& name, const at::Tensor& value) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx_type(value.scalar_type()));
  for (int64_t d : value.sizes()) t.add_dims(d);
  onnx_io::set_tensor(t, value);
  return t;
}

onnx::TensorProto& add_initializer(onnx::ModelProto& m, const std::string& name,
                                   const at::Tensor& value) {
  return *m.mutable_graph()->add_initializer() = onnx_tensor(name, value);
}

onnx::ValueInfoProto& add_input(onnx::ModelProto& m, const std::string& name,
                                const std::vector<int64_t>& dims, int32_t elem_type) {
  return value(m.mutable_graph()->add_input(), name, dims, elem_type);
}

onnx::ValueInfoProto& add_output(onnx::ModelProto& m, const std::string& name,
                                 const std::vector<int64_t>& dims, int32_t elem_type) {
  return value(m.mutable_graph()->add_output(), name, dims, elem_type);
}

onnx::NodeProto& add_node(onnx::ModelProto& m, const std::string& op_type, const std::string& name,
                          const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs) {
  onnx::NodeProto* n = m.mutable_graph()->add_node();
  n->set_op_type(op_type);
  n->set_name(name);
  for (const auto& s : inputs) n->add_input(s);
  for (const auto& s : outputs) n->add_output(s);
  return *n;
}

onnx::AttributeProto& attr_int(onnx::NodeProto& node, const std::string& name, int64_t value) {
  onnx::AttributeProto& a = attr(node, name, onnx::AttributeProto::INT);
  a.set_i(value);
  return a;
}

onnx::AttributeProto& attr_ints(onnx::NodeProto& node, const std::string& name,
                                const std::vector<int64_t>& values) {
  onnx::AttributeProto& a = attr(node, name, onnx::AttributeProto::INTS);
  for (int64_t v : values) a.add_ints(v);
  return a;
}

onnx::AttributeProto& attr_float(onnx::NodeProto& node, const std::string& name, float value) {
  onnx::AttributeProto& a = attr(node, name, onnx::AttributeProto::FLOAT);
  a.set_f(value);
  return a;
}

onnx::AttributeProto& attr_floats(onnx::NodeProto& node, const std::string& name,
                                  const std::vector<float>& values) {
  onnx::AttributeProto& a = attr(node, name, onnx::AttributeProto::FLOATS);
  for (float v : values) a.add_floats(v);
  return a;
}

onnx::AttributeProto& attr_string(onnx::NodeProto& node, const std::string& name,
                                  const std::string& value) {
  onnx::AttributeProto& a = attr(node, name, onnx::AttributeProto::STRING);
  a.set_s(value);
  return a;
}

onnx::AttributeProto& attr_tensor(onnx::NodeProto& node, const std::string& name,
                                  const at::Tensor& value) {
  onnx::AttributeProto& a = attr(node, name, onnx::AttributeProto::TENSOR);
  *a.mutable_t() = onnx_tensor("", value);
  return a;
}

at::Tensor test_values(at::IntArrayRef sizes, int64_t offset) {
  // (37 i + offset) mod 101 runs over 0..100 in a scrambled order: exact in float32.
  const at::Tensor i = at::arange(c10::multiply_integers(sizes), at::kLong);
  return (i * 37 + offset).remainder(101).to(at::kFloat).div(100).sub(0.5).reshape(sizes);
}

onnx::ModelProto onnx_classifier() {
  onnx::ModelProto m = onnx_model(13);
  add_input(m, "input", {-1, 3, 8, 8});
  add_output(m, "output", {-1, 5});
  add_initializer(m, "conv1.weight", test_values({4, 3, 3, 3}));
  add_initializer(m, "conv1.bias", test_values({4}, 1));
  add_initializer(m, "fc.weight", test_values({5, 4}, 2));
  add_initializer(m, "fc.bias", test_values({5}, 3));
  onnx::NodeProto& conv = add_node(
      m, "Conv", "/conv1/Conv", {"input", "conv1.weight", "conv1.bias"}, {"/conv1/Conv_output_0"});
  attr_ints(conv, "dilations", {1, 1});
  attr_int(conv, "group", 1);
  attr_ints(conv, "kernel_shape", {3, 3});
  attr_ints(conv, "pads", {1, 1, 1, 1});
  attr_ints(conv, "strides", {1, 1});
  add_node(m, "Relu", "/relu/Relu", {"/conv1/Conv_output_0"}, {"/relu/Relu_output_0"});
  add_node(m, "GlobalAveragePool", "/pool/GlobalAveragePool", {"/relu/Relu_output_0"},
           {"/pool/GlobalAveragePool_output_0"});
  attr_int(add_node(m, "Flatten", "/Flatten", {"/pool/GlobalAveragePool_output_0"},
                    {"/Flatten_output_0"}),
           "axis", 1);
  onnx::NodeProto& fc =
      add_node(m, "Gemm", "/fc/Gemm", {"/Flatten_output_0", "fc.weight", "fc.bias"}, {"output"});
  attr_float(fc, "alpha", 1);
  attr_float(fc, "beta", 1);
  attr_int(fc, "transB", 1);
  return m;
}

std::string onnx_bytes(const onnx::ModelProto& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    if (!m.SerializeToCodedStream(&out)) throw std::runtime_error("onnx_bytes: cannot serialize");
  }  // the streams trim `bytes` to what was written
  return bytes;
}

void save_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void save_onnx(const onnx::ModelProto& m, const std::string& path) {
  save_bytes(path, onnx_bytes(m));
}

}  // namespace bdguard::test
