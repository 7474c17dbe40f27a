// `bdguard inspect`'s rows: the graph in the terms of the file it came from.
#include <ATen/ATen.h>

#include <map>

#include "bdguard/error.h"
#include "bdguard/model_io.h"
#include "bdguard/prune.h"

namespace bdguard {
namespace {

int64_t param_count(const Model& m, const Node& n) {
  int64_t total = 0;
  for (int i : n.inputs) {
    if (i >= 0 && m.node(static_cast<size_t>(i)).kind == NodeKind::kParam) {
      total += m.node(static_cast<size_t>(i)).value.numel();
    }
  }
  return total;
}

void set_pruned(const Model& m, int node, ChannelUnit (*make)(const Model&, int),
                LayerSummary& row) {
  try {
    ChannelUnit u = make(m, node);
    row.prunable = true;
    row.pruned_kind = u.kind == ChannelKind::kOutput ? "output" : "input";
    row.pruned = zero_channels(m, u);
  } catch (const InvalidArgument&) {
    // weights computed at run time: nothing to report
  }
}

// Keras: one row per layer (its nodes together), shapes channels-last.
std::vector<LayerSummary> keras_rows(const Model& m) {
  std::vector<LayerSummary> rows;
  std::map<std::string, size_t> row_of;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    if (n.kind == NodeKind::kParam || n.kind == NodeKind::kConst) continue;
    auto it = row_of.find(n.layer);
    if (it == row_of.end()) {
      it = row_of.emplace(n.layer, rows.size()).first;
      rows.push_back({});
      rows.back().name = n.layer;
      rows.back().cls = n.layer_class;
    }
    LayerSummary& row = rows[it->second];
    const Dims& d = n.info.dims;  // the layer's last node's dims are its output's
    row.shape = d.size() == 4 ? std::vector<int64_t>{-1, d[2], d[3], d[1]} : d;
    row.params += param_count(m, n);
    if (n.name == n.layer && n.is_op("Conv")) set_pruned(m, static_cast<int>(i), conv_unit, row);
    if (n.layer_class == "Dense" && n.is_op("Gemm")) {
      set_pruned(m, static_cast<int>(i), linear_output_unit, row);
    }
  }
  for (auto& r : rows) {
    r.shape_text = "(None";
    for (size_t k = 1; k < r.shape.size(); ++k) r.shape_text += ", " + std::to_string(r.shape[k]);
    r.shape_text += ")";
  }
  return rows;
}

// ONNX (and models built here): one row per node of the file.
std::vector<LayerSummary> node_rows(const Model& m) {
  std::vector<LayerSummary> rows;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    const bool constant_node = n.kind == NodeKind::kConst && n.layer_class == "Constant";
    if (n.kind != NodeKind::kOp && n.kind != NodeKind::kInput && !constant_node) continue;
    LayerSummary row;
    row.name = n.name;
    row.cls = n.kind == NodeKind::kInput ? "Input" : constant_node ? "Constant" : n.op->type();
    row.shape.assign(n.info.dims.begin(), n.info.dims.end());
    row.shape_text = dims_str(n.info.dims);
    if (n.kind == NodeKind::kOp) row.params = param_count(m, n);
    if (n.is_op("Conv")) set_pruned(m, static_cast<int>(i), conv_unit, row);
    if (n.is_op("Gemm") || n.is_op("MatMul")) {
      set_pruned(m, static_cast<int>(i), linear_input_unit, row);
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

namespace onnx_io {
std::vector<LayerSummary> node_summaries(const Model& m);  // formats/onnx/summary.cpp
}

std::vector<LayerSummary> summarize_layers(const Model& m) {
  if (m.format == ModelFormat::kOnnx) return onnx_io::node_summaries(m);
  return m.format == ModelFormat::kKeras || !m.keras_config.is_null() ? keras_rows(m)
                                                                      : node_rows(m);
}

}  // namespace bdguard
