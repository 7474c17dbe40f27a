// Writing a model built in memory (a trained `bdguard attack` network) as a new ONNX
// file: one node per op of the graph, one initializer per parameter or constant.
#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "bdguard/error.h"
#include "formats/onnx/graph_io.h"

namespace bdguard::onnx_io {
namespace {

constexpr int64_t kOpset = 13;
constexpr int64_t kIrVersion = 7;  // what torch.onnx.export writes at opset 13

// The ops whose opset-13 form takes the attributes Op::attributes() gives (Pad is
// written apart: its pads are an input since opset 11).
const std::set<std::string>& plain_ops() {
  static const std::set<std::string> ops = {"Conv",          "BatchNormalization",
                                            "Relu",          "Sigmoid",
                                            "Tanh",          "Add",
                                            "Sub",           "Mul",
                                            "Div",           "Sum",
                                            "MaxPool",       "AveragePool",
                                            "Flatten",       "GlobalAveragePool",
                                            "GlobalMaxPool", "Gemm",
                                            "MatMul",        "Softmax",
                                            "LogSoftmax",    "Transpose",
                                            "Concat",        "Identity",
                                            "Dropout",       "LeakyRelu"};
  return ops;
}

int32_t onnx_type(at::ScalarType t, const std::string& what) {
  switch (t) {
    case at::kFloat:
      return onnx::TensorProto::FLOAT;
    case at::kDouble:
      return onnx::TensorProto::DOUBLE;
    case at::kLong:
      return onnx::TensorProto::INT64;
    case at::kInt:
      return onnx::TensorProto::INT32;
    case at::kBool:
      return onnx::TensorProto::BOOL;
    case at::kByte:
      return onnx::TensorProto::UINT8;
    default:
      fail<UnsupportedOp>("", what, "a float, integer or bool tensor", c10::toString(t));
  }
}

void add_tensor(onnx::GraphProto& g, const std::string& name, const at::Tensor& value) {
  onnx::TensorProto* t = g.add_initializer();
  t->set_name(name);
  const at::Tensor v = value.detach().contiguous();
  t->set_data_type(onnx_type(v.scalar_type(), "tensor " + quote(name)));
  for (int64_t d : v.sizes()) t->add_dims(d);
  set_tensor(*t, v);
}

void add_value_info(onnx::ValueInfoProto* v, const std::string& name, const Dims& dims,
                    at::ScalarType dtype) {
  v->set_name(name);
  auto* tensor = v->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx_type(dtype, "value " + quote(name)));
  auto* shape = tensor->mutable_shape();
  for (int64_t d : dims) {
    if (d == kBatch) {
      shape->add_dim()->set_dim_param("N");
    } else {
      shape->add_dim()->set_dim_value(d);
    }
  }
}

// One attribute from Op::attributes(): an int, a float, a string or a list of ints or
// floats.
void add_attribute(onnx::NodeProto& n, const std::string& name, const nlohmann::json& v) {
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  if (v.is_number_integer() || v.is_boolean()) {
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v.is_boolean() ? (v.get<bool>() ? 1 : 0) : v.get<int64_t>());
  } else if (v.is_number_float()) {
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v.get<float>());
  } else if (v.is_string()) {
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v.get<std::string>());
  } else if (v.is_array() && std::all_of(v.begin(), v.end(), [](const nlohmann::json& e) {
               return e.is_number_integer();
             })) {
    a->set_type(onnx::AttributeProto::INTS);
    for (const auto& e : v) a->add_ints(e.get<int64_t>());
  } else if (v.is_array() && std::all_of(v.begin(), v.end(),
                                         [](const nlohmann::json& e) { return e.is_number(); })) {
    a->set_type(onnx::AttributeProto::FLOATS);
    for (const auto& e : v) a->add_floats(e.get<float>());
  } else {
    fail<UnsupportedOp>("", "node " + quote(n.name()) + " attribute " + quote(name),
                        "a number, a string or a list of numbers", v.dump());
  }
}

}  // namespace

onnx::ModelProto graph_to_proto(const Model& m, const std::string& path) {
  if (!m.preprocess.identity()) {
    fail<InvalidArgument>(path, "model", "a model without a Preprocess step (pixels in the graph)",
                          m.preprocess.to_json().dump());
  }
  onnx::ModelProto out;
  out.set_ir_version(kIrVersion);
  out.set_producer_name("bdguard");
  auto* opset = out.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  onnx::GraphProto& g = *out.mutable_graph();
  g.set_name("bdguard");
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& node = m.node(i);
    switch (node.kind) {
      case NodeKind::kInput:
        add_value_info(g.add_input(), node.name, node.info.dims, node.info.dtype);
        continue;
      case NodeKind::kParam:
      case NodeKind::kConst:
        add_tensor(g, node.name, node.value);
        continue;
      case NodeKind::kOp:
        break;
    }
    const std::string type = node.op->type();
    onnx::NodeProto& n = *g.add_node();
    n.set_name(node.name);
    n.set_op_type(type);
    for (int in : node.inputs) n.add_input(in < 0 ? "" : m.node(static_cast<size_t>(in)).name);
    nlohmann::json attrs = node.op->attributes();
    const bool squeezed_pool =
        (type == "GlobalAveragePool" || type == "GlobalMaxPool") && node.info.dims.size() == 2;
    if (squeezed_pool) {
      // ONNX keeps the (1, 1) spatial dims that Keras' pooling drops: a Flatten after it.
      n.add_output(node.name + "/keepdims");
      onnx::NodeProto& flat = *g.add_node();
      flat.set_name(node.name + "/flatten");
      flat.set_op_type("Flatten");
      flat.add_input(node.name + "/keepdims");
      flat.add_output(node.name);
      add_attribute(flat, "axis", 1);
    } else {
      n.add_output(node.name);
    }
    if (type == "Pad") {
      // Opset 11 on: pads is an int64 input, mode stays an attribute.
      const std::string pads = node.name + "/pads";
      add_tensor(g, pads, at::tensor(attrs.at("pads").get<std::vector<int64_t>>(), at::kLong));
      n.add_input(pads);
      attrs.erase("pads");
    } else if (type == "AveragePool") {
      attrs.erase("dilations");  // an attribute from opset 19 on; bdguard's are 1
    } else if (plain_ops().count(type) == 0) {
      fail<UnsupportedOp>(path, "node " + quote(node.name),
                          "an op bdguard writes to ONNX (Conv, Gemm, BatchNormalization, ...)",
                          quote(type));
    }
    for (const auto& [k, v] : attrs.items()) add_attribute(n, k, v);
  }
  for (int o : m.outputs()) {
    const Node& node = m.node(static_cast<size_t>(o));
    add_value_info(g.add_output(), node.name, node.info.dims, node.info.dtype);
  }
  return out;
}

}  // namespace bdguard::onnx_io
