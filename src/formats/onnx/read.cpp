// Reading an ONNX model into the graph: the validated protobuf (proto.h) mapped node
// by node onto ops (op_table.h), initializers onto parameters and constants.
#include <ATen/ATen.h>

#include <map>
#include <set>

#include "bdguard/error.h"
#include "bdguard/onnx.h"
#include "formats/onnx/graph_io.h"
#include "formats/onnx/op_table.h"

namespace bdguard {

namespace onnx_io {
namespace {

// Initializer slots that hold a layer's trainable weights: Conv W and B, Gemm B and C,
// MatMul B, BatchNormalization scale and B (its mean and var are parameters that do
// not train).
bool weight_slot(const std::string& op, int slot) {
  if (op == "Conv" || op == "Gemm") return slot == 1 || slot == 2;
  if (op == "MatMul") return slot == 1;
  if (op == "BatchNormalization") return slot >= 1 && slot <= 4;
  return false;
}
bool trainable_slot(const std::string& op, int slot) {
  return op == "BatchNormalization" ? slot == 1 || slot == 2 : weight_slot(op, slot);
}

// A name for a graph node: the ONNX node's own when it has a unique one.
std::string node_name(const onnx::NodeProto& n, const Model& m) {
  std::string name = n.name().empty() ? n.op_type() + ":" + n.output(0) : n.name();
  if (m.find(name) < 0) return name;
  for (int k = 2;; ++k) {
    const std::string alt = name + "#" + std::to_string(k);
    if (m.find(alt) < 0) return alt;
  }
}

std::string fresh(const Model& m, const std::string& base) {
  if (m.find(base) < 0) return base;
  for (int k = 2;; ++k) {
    const std::string alt = base + "#" + std::to_string(k);
    if (m.find(alt) < 0) return alt;
  }
}

class Reader {
 public:
  Reader(const onnx::ModelProto& proto, std::string file, const ReadOptions& o)
      : g_(proto.graph()), file_(std::move(file)), o_(o) {
    for (const auto& op : proto.opset_import()) {
      if (op.domain().empty() || op.domain() == "ai.onnx") opset_ = op.version();
    }
    m_.origin = file_;
  }

  Model read() {
    for (const auto& t : g_.initializer()) initializers_[t.name()] = &t;
    // IR 3 lists weights as inputs too; from IR 4 an input of an initializer's name is
    // one the caller may override, and bdguard, like ONNX Runtime when it is not fed,
    // computes with the initializer. An image input shadowed so is a constant.
    for (const auto& in : g_.input()) {
      if (initializers_.count(in.name())) continue;
      add_input(in);
    }
    if (m_.inputs().empty() && g_.input_size() > 0) {
      fail<UnsupportedOp>(file_, "graph input " + quote(g_.input(0).name()),
                          "an input fed at run time (the image)",
                          "an initializer of the same name, which makes it a constant");
    }
    for (const auto& n : g_.node()) add_node(n);
    std::vector<int> outs;
    for (const auto& out : g_.output()) outs.push_back(value_for(out.name(), nullptr, -1));
    m_.set_outputs(outs);
    return std::move(m_);
  }

 private:
  void add_input(const onnx::ValueInfoProto& in) {
    const auto& type = in.type().tensor_type();
    if (!type.has_shape()) {
      fail<UnsupportedOp>(file_, "graph input " + quote(in.name()), "a shape", "none");
    }
    const at::ScalarType dtype =
        scalar_type_of(type.elem_type(), file_, "graph input " + quote(in.name()));
    Dims dims;
    for (int i = 0; i < type.shape().dim_size(); ++i) {
      const auto& d = type.shape().dim(i);
      if (d.has_dim_value() && !(o_.batch_input && i == 0)) {
        dims.push_back(d.dim_value());
      } else if (i == 0 && o_.batch_input) {
        dims.push_back(kBatch);  // symbolic ("N") or fixed: the batch the model runs on
      } else {
        fail<UnsupportedOp>(
            file_, "graph input " + quote(in.name()) + " dim " + std::to_string(i),
            "a fixed size (only the first dim may be symbolic: the batch)",
            d.has_dim_param() ? "symbolic dim " + quote(d.dim_param()) : "an unknown size");
      }
    }
    values_[in.name()] = m_.add_input(fresh(m_, in.name()), dims, dtype);
  }

  // The graph node holding the value `name` for input `slot` of ONNX node `reader`: an
  // earlier node's output, the input, or an initializer / Constant (a parameter or a
  // constant of this reader alone, so that each layer trains and prunes on its own).
  int value_for(const std::string& name, const onnx::NodeProto* reader, int slot) {
    auto v = values_.find(name);
    if (v != values_.end()) return v->second;
    auto alias = aliases_.find(name);
    const std::string& init_name = alias == aliases_.end() ? name : alias->second;
    auto c = constants_.find(init_name);
    if (c != constants_.end()) return shared_const(init_name, c->second);
    auto it = initializers_.find(init_name);
    if (it == initializers_.end()) {
      fail(file_, "value " + quote(name), "a graph input, initializer or node output", "none");
    }
    const onnx::TensorProto& t = *it->second;
    at::Tensor value = tensor_of(t);
    const std::string op = reader ? reader->op_type() : "";
    if (reader && weight_slot(op, slot) && at::isFloatingType(value.scalar_type())) {
      const int i = m_.add_param(fresh(m_, init_name), value, trainable_slot(op, slot));
      Node& n = m_.node(static_cast<size_t>(i));
      n.source = init_name;
      n.layer = reader->name();
      n.layer_class = "initializer";
      n.site_output = reader->output(0);
      n.site_slot = slot;
      return i;
    }
    return shared_const(init_name, value);
  }

  // Constants are not trained: one node serves every reader.
  int shared_const(const std::string& name, const at::Tensor& value) {
    auto done = const_nodes_.find(name);
    if (done != const_nodes_.end()) return done->second;
    const int i = m_.add_const(fresh(m_, name), value);
    m_.node(static_cast<size_t>(i)).source = name;
    const_nodes_[name] = i;
    return i;
  }

  at::Tensor tensor_of(const onnx::TensorProto& t) {
    const std::string what = "initializer " + quote(t.name());
    at::Tensor v = to_tensor(t, file_, what, o_.max_tensor_bytes);
    require_finite(v, file_, what);
    return v;
  }

  void add_node(const onnx::NodeProto& n) {
    if (n.op_type() == "Constant") return add_constant(n);
    // Identity of an initializer (PyTorch's shared weights) is the initializer itself
    // to whoever reads it.
    if (n.op_type() == "Identity" && n.input_size() == 1 && !values_.count(n.input(0)) &&
        (initializers_.count(n.input(0)) || aliases_.count(n.input(0)) ||
         constants_.count(n.input(0)))) {
      auto a = aliases_.find(n.input(0));
      aliases_[n.output(0)] = a == aliases_.end() ? n.input(0) : a->second;
      return;
    }
    Attrs attrs(n, file_);
    std::vector<int> ins;
    for (int s = 0; s < n.input_size(); ++s) {
      ins.push_back(n.input(s).empty() ? -1 : value_for(n.input(s), &n, s));
    }
    // Only now that value_for has added every node: adding one may move the others.
    std::vector<const ValueInfo*> infos;
    for (int i : ins) infos.push_back(i < 0 ? nullptr : &m_.node(static_cast<size_t>(i)).info);
    NodeContext ctx{n, attrs, opset_, file_, infos};
    BuiltOp b = build_op(ctx);
    if (b.keep_inputs >= 0 && static_cast<int>(ins.size()) > b.keep_inputs)
      ins.resize(static_cast<size_t>(b.keep_inputs));
    for (auto& e : b.extra) {
      if (ins.size() <= e.slot) ins.resize(e.slot + 1, -1);
      const int c = m_.add_const(fresh(m_, n.output(0) + "/" + std::to_string(e.slot)), e.value);
      ins[e.slot] = c;
    }
    const std::string name = node_name(n, m_);
    const int i = m_.add_op(name, std::move(b.op), ins, node_object(n));
    Node& node = m_.node(static_cast<size_t>(i));
    node.layer = n.name();
    node.layer_class = n.op_type();
    node.source = n.output(0);
    values_[n.output(0)] = i;
  }

  // A Constant node: a constant of the graph, listed by inspect like the node it was.
  void add_constant(const onnx::NodeProto& n) {
    Attrs attrs(n, file_);
    attrs.allow_only({"value", "value_float", "value_floats", "value_int", "value_ints"});
    at::Tensor v;
    const std::string what = node_object(n) + " attribute 'value'";
    if (const onnx::TensorProto* t = attrs.get_tensor("value")) {
      v = to_tensor(*t, file_, what, o_.max_tensor_bytes);
      require_finite(v, file_, what);
    } else if (attrs.has("value_float")) {
      v = at::tensor(static_cast<float>(attrs.get_float("value_float", 0)));
    } else if (attrs.has("value_int")) {
      v = at::tensor(attrs.get_int("value_int", 0), at::kLong).reshape({});
    } else if (attrs.has("value_ints")) {
      v = at::tensor(attrs.get_ints("value_ints", {}, 1 << 16), at::kLong);
    } else if (attrs.has("value_floats")) {
      std::vector<float> f;
      for (double x : attrs.get_floats("value_floats", {}, 1 << 16))
        f.push_back(static_cast<float>(x));
      v = at::tensor(f, at::kFloat);
    } else {
      fail<UnsupportedOp>(file_, node_object(n),
                          "a value, value_float(s) or value_int(s) attribute", "none of them");
    }
    constants_[n.output(0)] = v;
    const int i = shared_const(n.output(0), v);
    Node& node = m_.node(static_cast<size_t>(i));
    node.layer = n.name();
    node.layer_class = "Constant";
    values_[n.output(0)] = i;
  }

  const onnx::GraphProto& g_;
  std::string file_;
  ReadOptions o_;
  int64_t opset_ = 0;
  Model m_;
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::map<std::string, at::Tensor> constants_;  // Constant nodes' outputs
  std::map<std::string, std::string> aliases_;   // Identity outputs -> initializer
  std::map<std::string, int> values_;            // ONNX value name -> graph node
  std::map<std::string, int> const_nodes_;
};

// The names read by nodes or listed as graph outputs.
std::set<std::string> used_names(const onnx::GraphProto& g) {
  std::set<std::string> used;
  for (const auto& n : g.node()) {
    for (const auto& in : n.input()) used.insert(in);
  }
  for (const auto& o : g.output()) used.insert(o.name());
  return used;
}

}  // namespace

Model read_graph(const onnx::ModelProto& proto, const std::string& file, const ReadOptions& o) {
  // Extra outputs (Dropout's mask, MaxPool's indices, BatchNormalization's running
  // statistics) are refused wherever something reads them.
  const std::set<std::string> used = used_names(proto.graph());
  for (const auto& n : proto.graph().node()) {
    for (int i = 1; i < n.output_size(); ++i) {
      if (!n.output(i).empty() && used.count(n.output(i))) {
        fail<UnsupportedOp>(file, node_object(n) + " output " + std::to_string(i),
                            "only the first output read (the inference form)",
                            quote(n.output(i)) + ", which the graph reads");
      }
    }
  }
  return Reader(proto, file, o).read();
}

}  // namespace onnx_io

namespace {

class OnnxSource : public SourceFile {
 public:
  explicit OnnxSource(onnx::ModelProto p) : proto(std::move(p)) {}
  onnx::ModelProto proto;
};

}  // namespace

const onnx::ModelProto* onnx_io::source_proto(const Model& m) {
  const auto* s = dynamic_cast<const OnnxSource*>(m.source.get());
  return s ? &s->proto : nullptr;
}

Model load_onnx_model(const std::string& path, const LoadOptions& options) {
  onnx_io::Limits limits;
  limits.max_model_bytes = options.max_model_bytes;
  limits.max_tensor_bytes = options.max_tensor_bytes;
  onnx::ModelProto proto = onnx_io::read_model(path, limits);
  onnx_io::ReadOptions ro;
  ro.max_tensor_bytes = options.max_tensor_bytes;
  Model m = onnx_io::read_graph(proto, path, ro);
  m.preprocess = options.preprocess;
  m.format = ModelFormat::kOnnx;
  m.source_path = path;
  m.source = std::make_shared<OnnxSource>(std::move(proto));
  return m;
}

}  // namespace bdguard
