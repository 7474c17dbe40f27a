// Writing an ONNX model back: the file it was read from, with only the changed
// initializers' values replaced; a model built in memory as a new file (write_graph.cpp).
#include <ATen/ATen.h>

#include <map>

#include "bdguard/error.h"
#include "bdguard/onnx.h"
#include "formats/onnx/graph_io.h"

namespace bdguard {
namespace {

// How many (node, input slot) pairs read each initializer, through Identity nodes.
std::map<std::string, int> readers_of_initializers(const onnx::GraphProto& g) {
  std::map<std::string, std::string> origin;  // value name -> initializer it is
  for (const auto& t : g.initializer()) origin[t.name()] = t.name();
  std::map<std::string, int> count;
  for (const auto& n : g.node()) {
    if (n.op_type() == "Identity" && n.input_size() == 1 && origin.count(n.input(0))) {
      origin[n.output(0)] = origin[n.input(0)];
      continue;
    }
    for (const auto& in : n.input()) {
      auto o = origin.find(in);
      if (o != origin.end()) ++count[o->second];
    }
  }
  for (const auto& out : g.output()) {
    auto o = origin.find(out.name());
    if (o != origin.end()) ++count[o->second];
  }
  return count;
}

onnx::NodeProto* node_with_output(onnx::GraphProto& g, const std::string& output) {
  for (auto& n : *g.mutable_node()) {
    if (n.output_size() > 0 && n.output(0) == output) return &n;
  }
  return nullptr;
}

}  // namespace

void save_onnx_model(const Model& m, const std::string& path) {
  const onnx::ModelProto* source = onnx_io::source_proto(m);
  if (m.format == ModelFormat::kMemory && source == nullptr) {
    onnx::ModelProto fresh = onnx_io::graph_to_proto(m, path);
    onnx_io::validate_model(fresh, path);  // what bdguard's reader will ask of it
    onnx_io::write_model(fresh, path);
    return;
  }
  if (m.format != ModelFormat::kOnnx || source == nullptr) {
    fail<InvalidArgument>(
        path, "", "a model read from an ONNX file",
        std::string("a ") + format_name(m.format) + " model (bdguard writes those as Keras .h5)");
  }
  onnx::ModelProto out = *source;
  onnx::GraphProto& g = *out.mutable_graph();
  std::map<std::string, int> index;
  for (int i = 0; i < g.initializer_size(); ++i) index[g.initializer(i).name()] = i;
  const std::map<std::string, int> readers = readers_of_initializers(g);
  std::map<std::string, int> copies;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    if (n.kind != NodeKind::kParam || n.site_slot < 0) continue;
    auto it = index.find(n.source);
    if (it == index.end()) {
      fail(path, "initializer " + onnx_io::quote(n.source), "the tensor the model was read from",
           "none in the source");
    }
    const onnx::TensorProto& original = source->graph().initializer(it->second);
    const at::Tensor now =
        n.value.detach()
            .to(original.data_type() == onnx::TensorProto::FLOAT ? at::kFloat
                                                                 : n.value.scalar_type())
            .contiguous();
    const at::Tensor was = onnx_io::to_tensor(
        original, m.source_path, "initializer " + onnx_io::quote(n.source), int64_t{1} << 62);
    if (was.sizes() == now.sizes() && at::equal(was, now)) continue;
    auto r = readers.find(n.source);
    if (r != readers.end() && r->second == 1) {
      onnx_io::set_tensor(*g.mutable_initializer(it->second), now);
      continue;
    }
    // Other nodes read this initializer too (PyTorch merges equal tensors): the changed
    // node gets its own copy, under a new name, and the others keep theirs.
    std::string name;
    for (int k = ++copies[n.source];; ++k) {
      name = n.source + ".bdguard" + std::to_string(k);
      if (!index.count(name)) break;
    }
    onnx::TensorProto* copy = g.add_initializer();
    *copy = original;
    copy->set_name(name);
    onnx_io::set_tensor(*copy, now);
    index[name] = g.initializer_size() - 1;
    onnx::NodeProto* reader = node_with_output(g, n.site_output);
    if (reader == nullptr || n.site_slot >= reader->input_size()) {
      fail(path, "the node reading " + onnx_io::quote(n.source), "a node of the source",
           "none with output " + onnx_io::quote(n.site_output));
    }
    reader->set_input(n.site_slot, name);
  }
  onnx_io::write_model(out, path);
}

}  // namespace bdguard
