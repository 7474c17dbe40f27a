// The model graph: building it node by node, and asking it about itself (run.cpp runs
// it).
#include "bdguard/model.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>

#include "bdguard/error.h"
#include "bdguard/ops.h"
#include "graph/node_errors.h"

namespace bdguard {
namespace {

constexpr size_t kMaxNodes = 100000;
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxItemElements = int64_t{1} << 28;

}  // namespace

namespace graph {

std::string node_label(const Node& n) {
  return "node '" + n.name + "'" + (n.op ? std::string(" (") + n.op->type() + ")" : "");
}

// Rethrows an op's complaint with the file and the node in front.
[[noreturn]] void rethrow_for(const std::string& origin, const std::string& label) {
  const std::string where = (origin.empty() ? "<input>" : origin) + ": " + label + " ";
  try {
    throw;
  } catch (const ShapeMismatch& e) {
    throw ShapeMismatch(where + e.what());
  } catch (const LimitExceeded& e) {
    throw LimitExceeded(where + e.what());
  } catch (const UnsupportedOp& e) {
    throw UnsupportedOp(where + e.what());
  } catch (const Error& e) {
    throw FormatError(where + e.what());
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw ShapeMismatch(where + "could not be computed: " + msg.substr(0, msg.find('\n')));
  }
}

}  // namespace graph

using graph::node_label;
using graph::rethrow_for;

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

bool Node::is_op(const char* type) const {
  return kind == NodeKind::kOp && op && std::string(op->type()) == type;
}

Node Node::clone() const {
  Node n;
  n.kind = kind;
  n.name = name;
  if (op) n.op = op->clone();
  n.inputs = inputs;
  n.info = info;
  if (value.defined()) n.value = value.detach().clone();
  n.trainable = trainable;
  n.layer = layer;
  n.layer_class = layer_class;
  n.source = source;
  n.file_order = file_order;
  n.site_output = site_output;
  n.site_slot = site_slot;
  return n;
}

bool Preprocess::identity() const { return scale == 1.0 && mean.empty() && std.empty(); }

nlohmann::json Preprocess::to_json() const {
  return {{"input_scale", scale}, {"mean", mean}, {"std", std}};
}

const char* format_name(ModelFormat f) {
  switch (f) {
    case ModelFormat::kKeras:
      return "keras";
    case ModelFormat::kOnnx:
      return "onnx";
    default:
      return "memory";
  }
}

Model::Model() = default;
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Model Model::clone() const {
  Model m;
  m.origin = origin;
  for (const auto& n : nodes_) m.nodes_.push_back(n.clone());
  m.by_name_ = by_name_;
  m.inputs_ = inputs_;
  m.outputs_ = outputs_;
  m.preprocess = preprocess;
  m.format = format;
  m.source_path = source_path;
  m.weights_only = weights_only;
  m.keras_config = keras_config;
  m.source = source;
  return m;
}

int Model::add_node(Node n) {
  if (nodes_.size() >= kMaxNodes) {
    fail<LimitExceeded>(origin, "graph", "at most " + std::to_string(kMaxNodes) + " nodes", "more");
  }
  if (n.name.empty() || n.name.size() > 4096) {
    fail(origin, "a node name", "1 to 4096 characters", std::to_string(n.name.size()));
  }
  const int index = static_cast<int>(nodes_.size());
  if (!by_name_.emplace(n.name, index).second) {
    fail(origin, "node '" + n.name + "'", "unique names", "the name twice");
  }
  nodes_.push_back(std::move(n));
  return index;
}

int Model::add_input(const std::string& name, const Dims& dims, at::ScalarType dtype) {
  Node n;
  n.kind = NodeKind::kInput;
  n.name = name;
  n.layer = name;
  n.info = {dims, dtype, std::nullopt};
  for (int64_t d : dims) {
    if (d != kBatch && (d < 0 || d > kMaxDim)) {
      fail<LimitExceeded>(origin, "input '" + name + "'",
                          "dimensions in [0, " + std::to_string(kMaxDim) + "]", dims_str(dims));
    }
  }
  const int i = add_node(std::move(n));
  inputs_.push_back(i);
  return i;
}

namespace {
ValueInfo info_of(const at::Tensor& t) {
  ValueInfo v{Dims(t.sizes().begin(), t.sizes().end()), t.scalar_type(), std::nullopt};
  if ((t.scalar_type() == at::kLong || t.scalar_type() == at::kInt) && t.numel() <= 1024) {
    at::Tensor c = t.to(at::kLong).contiguous();
    std::vector<int64_t> known(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
    // -2^63 in known values stands for the batch size (kBatchValue): a constant holding
    // it would pass for a shape computed from the input.
    if (std::find(known.begin(), known.end(), kBatchValue) == known.end()) v.known = known;
  }
  return v;
}
}  // namespace

int Model::add_param(const std::string& name, at::Tensor value, bool trainable) {
  Node n;
  n.kind = NodeKind::kParam;
  n.name = name;
  n.info = info_of(value);
  n.value = std::move(value);
  n.trainable = trainable;
  return add_node(std::move(n));
}

int Model::add_const(const std::string& name, at::Tensor value) {
  Node n;
  n.kind = NodeKind::kConst;
  n.name = name;
  n.info = info_of(value);
  n.value = std::move(value);
  return add_node(std::move(n));
}

int Model::add_op(const std::string& name, std::unique_ptr<Op> op, std::vector<int> inputs,
                  const std::string& label) {
  Node n;
  n.kind = NodeKind::kOp;
  n.name = name;
  n.layer = name;
  n.layer_class = op->type();
  n.op = std::move(op);
  n.inputs = std::move(inputs);
  std::vector<const ValueInfo*> in;
  for (int i : n.inputs) {
    if (i < -1 || i >= static_cast<int>(nodes_.size())) {
      fail(origin, node_label(n), "inputs that are earlier nodes", std::to_string(i));
    }
    in.push_back(i < 0 ? nullptr : &nodes_[static_cast<size_t>(i)].info);
  }
  try {
    n.info = n.op->infer(in);
  } catch (...) {
    rethrow_for(origin, label.empty() ? node_label(n) : label);
  }
  int64_t total = 1;
  for (int64_t d : n.info.dims) {
    if (d == kBatch) continue;
    if (d < 0 || d > kMaxDim || (d > 0 && total > kMaxItemElements / d)) {
      throw LimitExceeded(describe(origin, (label.empty() ? node_label(n) : label) + " output",
                                   "dimensions of at most 2^20, at most 2^28 elements per item",
                                   dims_str(n.info.dims)));
    }
    total *= d;
  }
  return add_node(std::move(n));
}

void Model::set_outputs(std::vector<int> outputs) {
  for (int o : outputs) {
    if (o < 0 || o >= static_cast<int>(nodes_.size())) {
      fail(origin, "graph outputs", "nodes of the graph", std::to_string(o));
    }
  }
  outputs_ = std::move(outputs);
}

int Model::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

std::vector<int> Model::consumers(int i) const {
  std::vector<int> out;
  for (size_t j = 0; j < nodes_.size(); ++j) {
    for (int in : nodes_[j].inputs) {
      if (in == i) {
        out.push_back(static_cast<int>(j));
        break;
      }
    }
  }
  return out;
}

int Model::input_index() const {
  if (inputs_.size() != 1) {
    fail<InvalidArgument>(origin, "graph", "one input (the image)",
                          std::to_string(inputs_.size()) + " inputs");
  }
  return inputs_[0];
}

int Model::output_index() const {
  if (outputs_.size() != 1) {
    fail<InvalidArgument>(origin, "graph", "one output (the class scores)",
                          std::to_string(outputs_.size()) + " outputs");
  }
  return outputs_[0];
}

Shape Model::input_shape() const {
  const Dims& d = input_dims();
  return Shape(d.begin() + (d.empty() ? 0 : 1), d.end());
}

int64_t Model::num_classes() const {
  const Dims& d = node(static_cast<size_t>(output_index())).info.dims;
  return d.empty() ? 1 : d.back();
}

OutputKind Model::output_kind() const {
  const Node& out = node(static_cast<size_t>(output_index()));
  const auto rank = static_cast<int64_t>(out.info.dims.size());
  if (out.is_op("Softmax") && softmax_axis(*out.op, rank) == rank - 1) {
    return OutputKind::kProbabilities;
  }
  if (out.is_op("LogSoftmax") && softmax_axis(*out.op, rank) == rank - 1) {
    return OutputKind::kLogProbabilities;
  }
  return OutputKind::kLogits;
}

int Model::logits_index() const {
  if (output_kind() == OutputKind::kLogits) return output_index();
  return node(static_cast<size_t>(output_index())).inputs[0];
}

void Model::require_classifier() const {
  const Node& in = node(static_cast<size_t>(input_index()));
  const Dims& d = in.info.dims;
  if ((d.size() != 4 && d.size() != 2) || d[0] != kBatch || !at::isFloatingType(in.info.dtype)) {
    fail<InvalidArgument>(origin, "input '" + in.name + "'",
                          "a float batch (N, C, H, W) or (N, F) with a free batch size",
                          dims_str(d) + " " + c10::toString(in.info.dtype));
  }
  for (size_t i = 1; i < d.size(); ++i) {
    if (d[i] < 1)
      fail<InvalidArgument>(origin, "input '" + in.name + "'", "positive dims", dims_str(d));
  }
  const Node& out = node(static_cast<size_t>(output_index()));
  const Dims& o = out.info.dims;
  if (o.size() != 2 || o[0] != kBatch || o[1] < 1 || !at::isFloatingType(out.info.dtype)) {
    fail<InvalidArgument>(origin, "output '" + out.name + "'",
                          "class scores of dims (N, classes), one row per input", dims_str(o));
  }
  const int64_t channels = d[1];
  for (const auto* v : {&preprocess.mean, &preprocess.std}) {
    if (v->size() > 1 && static_cast<int64_t>(v->size()) != channels) {
      fail<InvalidArgument>(origin, v == &preprocess.mean ? "--mean" : "--std",
                            "1 or " + std::to_string(channels) + " values (the input's channels)",
                            std::to_string(v->size()));
    }
  }
  for (double s : preprocess.std) {
    if (!(s != 0) || !std::isfinite(s))
      fail<InvalidArgument>(origin, "--std", "finite non-zero values", std::to_string(s));
  }
}

at::Tensor Model::preprocessed(const at::Tensor& pixels) const {
  if (preprocess.identity()) return pixels;
  at::Tensor x = preprocess.scale == 1.0 ? pixels : pixels * preprocess.scale;
  auto per_channel = [&](const std::vector<double>& v) {
    at::Tensor t = at::tensor(std::vector<float>(v.begin(), v.end()), x.options());
    if (v.size() == 1 || x.dim() < 2) return t.reshape({});
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[1] = static_cast<int64_t>(v.size());
    return t.view(shape);
  };
  if (!preprocess.mean.empty()) x = x - per_channel(preprocess.mean);
  if (!preprocess.std.empty()) x = x / per_channel(preprocess.std);
  return x;
}

std::vector<at::Tensor> Model::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& n : nodes_) {
    if (n.kind == NodeKind::kParam && n.trainable) out.push_back(n.value);
  }
  return out;
}

std::vector<int> Model::parameter_nodes() const {
  std::vector<int> out;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].kind == NodeKind::kParam && nodes_[i].trainable)
      out.push_back(static_cast<int>(i));
  }
  return out;
}

}  // namespace bdguard
