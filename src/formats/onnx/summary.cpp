// `bdguard inspect` on an ONNX model: every node of the file, in file order.
#include <map>

#include "bdguard/error.h"
#include "bdguard/model_io.h"
#include "bdguard/prune.h"
#include "formats/onnx/graph_io.h"

namespace bdguard::onnx_io {

std::vector<LayerSummary> node_summaries(const Model& m) {
  const onnx::ModelProto* proto = source_proto(m);
  if (proto == nullptr) return {};
  const onnx::GraphProto& g = proto->graph();
  std::map<std::string, const onnx::TensorProto*> init;
  for (const auto& t : g.initializer()) init[t.name()] = &t;
  // Graph nodes by the ONNX node they came from: by its first output's name.
  std::map<std::string, int> by_output;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    if (n.kind == NodeKind::kOp || (n.kind == NodeKind::kConst && n.layer_class == "Constant")) {
      by_output.emplace(n.source, static_cast<int>(i));
    }
  }
  std::vector<LayerSummary> rows;
  for (const auto& n : g.node()) {
    LayerSummary row;
    row.name = n.name().empty() ? n.output(0) : n.name();
    row.cls = n.op_type();
    for (const auto& in : n.input()) {
      auto t = init.find(in);
      if (t == init.end()) continue;
      int64_t numel = 1;
      for (int64_t d : t->second->dims()) numel *= d;
      if (t->second->data_type() == onnx::TensorProto::FLOAT) row.params += numel;
    }
    auto it = by_output.find(n.output(0));
    if (it != by_output.end()) {
      const Node& node = m.node(static_cast<size_t>(it->second));
      row.shape.assign(node.info.dims.begin(), node.info.dims.end());
      row.shape_text = dims_str(node.info.dims);
      auto unit = [&](ChannelUnit (*make)(const Model&, int)) {
        try {
          const ChannelUnit u = make(m, it->second);
          row.prunable = true;
          row.pruned_kind = u.kind == ChannelKind::kOutput ? "output" : "input";
          row.pruned = zero_channels(m, u);
        } catch (const InvalidArgument&) {
        }
      };
      if (node.is_op("Conv")) unit(conv_unit);
      if (node.is_op("Gemm") || node.is_op("MatMul")) unit(linear_input_unit);
    } else {
      row.shape_text = "(shared weight)";  // an Identity of an initializer
      if (n.input_size() == 1 && init.count(n.input(0))) {
        const auto* t = init[n.input(0)];
        row.shape.assign(t->dims().begin(), t->dims().end());
        row.shape_text = dims_str(Dims(t->dims().begin(), t->dims().end()));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace bdguard::onnx_io
