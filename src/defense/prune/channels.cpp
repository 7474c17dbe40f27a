// What pruning a channel zeroes, found from the graph (prune.h: ChannelUnit).
#include <ATen/ATen.h>

#include "bdguard/error.h"
#include "bdguard/ops.h"
#include "bdguard/prune.h"

namespace bdguard {
namespace {

const Node& at_node(const Model& m, int i) { return m.node(static_cast<size_t>(i)); }

std::string label(const Node& n) {
  return "'" + n.name + "' (" + (n.op ? n.op->type() : "not an op") + ")";
}

// Input `slot` of node `i` as a parameter that node i alone reads, or -1 when absent.
int own_param(const Model& m, int i, size_t slot, bool required) {
  const Node& n = at_node(m, i);
  const int p = slot < n.inputs.size() ? n.inputs[slot] : -1;
  if (p < 0) {
    if (required) fail<InvalidArgument>("", "layer " + label(n), "a weight", "none");
    return -1;
  }
  const Node& w = at_node(m, p);
  if (w.kind != NodeKind::kParam || !at::isFloatingType(w.info.dtype)) {
    fail<InvalidArgument>(
        "", "layer " + label(n),
        "weights stored in the model (a parameter at input " + std::to_string(slot) + ")",
        "a value computed at run time");
  }
  if (m.consumers(p).size() != 1) {
    fail<InvalidArgument>("", "layer " + label(n), "its own weight tensor",
                          "'" + w.name + "', which other layers read too");
  }
  return p;
}

int64_t size_at(const Model& m, int param, int64_t axis) {
  return at_node(m, param).info.dims[static_cast<size_t>(axis)];
}

}  // namespace

ChannelUnit conv_unit(const Model& m, int conv) {
  const Node& n = at_node(m, conv);
  if (!n.is_op("Conv"))
    fail<InvalidArgument>("", "layer " + label(n), "a Conv layer", "another op");
  ChannelUnit u;
  u.node = conv;
  u.kind = ChannelKind::kOutput;
  const int w = own_param(m, conv, 1, true);
  u.channels = size_at(m, w, 0);
  u.slices.push_back({w, 0, true});
  if (const int b = own_param(m, conv, 2, false); b >= 0) u.slices.push_back({b, 0, true});
  // A BatchNormalization reading the convolution: its scale and bias are zeroed too, so
  // the channel is exactly 0 after it, as before the activation.
  for (int c : m.consumers(conv)) {
    const Node& bn = at_node(m, c);
    if (!bn.is_op("BatchNormalization") || bn.inputs[0] != conv) continue;
    for (size_t slot : {size_t{1}, size_t{2}}) {
      const int p = bn.inputs[slot];
      if (p >= 0 && at_node(m, p).kind == NodeKind::kParam && m.consumers(p).size() == 1) {
        u.slices.push_back({p, 0, false});
      }
    }
    u.batch_norms.push_back(c);
  }
  return u;
}

ChannelUnit linear_input_unit(const Model& m, int node) {
  const Node& n = at_node(m, node);
  ChannelUnit u;
  u.node = node;
  u.kind = ChannelKind::kInput;
  int64_t axis = 0;
  if (n.is_op("Gemm")) {
    const auto& a = dynamic_cast<const GemmOp&>(*n.op).attrs();
    if (a.trans_a) {
      fail<InvalidArgument>("", "layer " + label(n), "a Gemm with transA = 0", "transA = 1");
    }
    axis = a.trans_b ? 1 : 0;  // B (out, in) with transB = 1, else (in, out)
  } else if (n.is_op("MatMul")) {
    axis = 0;  // x @ W, W (in, out)
  } else {
    fail<InvalidArgument>("", "layer " + label(n), "a Gemm or MatMul layer", "another op");
  }
  const int w = own_param(m, node, 1, true);
  if (at_node(m, w).info.dims.size() != 2) {
    fail<InvalidArgument>("", "layer " + label(n), "a 2-D weight",
                          dims_str(at_node(m, w).info.dims));
  }
  u.channels = size_at(m, w, axis);
  u.slices.push_back({w, axis, true});
  return u;
}

ChannelUnit linear_output_unit(const Model& m, int node) {
  const Node& n = at_node(m, node);
  if (!n.is_op("Gemm"))
    fail<InvalidArgument>("", "layer " + label(n), "a Gemm layer", "another op");
  const auto& a = dynamic_cast<const GemmOp&>(*n.op).attrs();
  ChannelUnit u;
  u.node = node;
  u.kind = ChannelKind::kOutput;
  const int w = own_param(m, node, 1, true);
  const int64_t axis = a.trans_b ? 0 : 1;
  u.channels = size_at(m, w, axis);
  u.slices.push_back({w, axis, true});
  if (const int b = own_param(m, node, 2, false); b >= 0) {
    const Dims& d = at_node(m, b).info.dims;
    if (d.empty() || d.back() != u.channels || per_item_elements(d) * d[0] != u.channels) {
      fail<InvalidArgument>("", "layer " + label(n), "a bias of one value per output", dims_str(d));
    }
    u.slices.push_back({b, static_cast<int64_t>(d.size()) - 1, true});
  }
  return u;
}

void zero_channel(Model& m, const ChannelUnit& u, int64_t c) {
  if (c < 0 || c >= u.channels) {
    fail<InvalidArgument>("", "layer '" + at_node(m, u.node).name + "'",
                          "a channel in [0, " + std::to_string(u.channels) + ")",
                          std::to_string(c));
  }
  at::NoGradGuard no_grad;
  for (const auto& s : u.slices)
    m.node(static_cast<size_t>(s.param)).value.select(s.axis, c).zero_();
}

std::vector<int64_t> zero_channels(const Model& m, const ChannelUnit& u) {
  at::NoGradGuard no_grad;
  at::Tensor nonzero = at::zeros({u.channels}, at::kBool);
  for (const auto& s : u.slices) {
    if (!s.primary) continue;
    const at::Tensor& v = at_node(m, s.param).value;
    nonzero.logical_or_(v.movedim(s.axis, 0).reshape({u.channels, -1}).ne(0).any(1));
  }
  std::vector<int64_t> out;
  auto acc = nonzero.accessor<bool, 1>();
  for (int64_t c = 0; c < u.channels; ++c) {
    if (!acc[c]) out.push_back(c);
  }
  return out;
}

namespace {

// Every unit whose zeroed channels training must keep at zero: Conv output channels,
// Gemm output units (a Keras Dense), Gemm / MatMul input features.
std::vector<ChannelUnit> all_units(const Model& m) {
  std::vector<ChannelUnit> out;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    auto add = [&](ChannelUnit (*make)(const Model&, int)) {
      try {
        out.push_back(make(m, static_cast<int>(i)));
      } catch (const InvalidArgument&) {
        // Not prunable this way (weights computed at run time, shared, ...).
      }
    };
    if (n.is_op("Conv")) add(conv_unit);
    if (n.is_op("Gemm")) add(linear_output_unit);
    if (n.is_op("Gemm") || n.is_op("MatMul")) add(linear_input_unit);
  }
  return out;
}

}  // namespace

std::vector<PrunedChannels> pruned_channels(const Model& m) {
  std::vector<PrunedChannels> out;
  for (const auto& u : all_units(m)) {
    auto zero = zero_channels(m, u);
    if (zero.empty()) continue;
    out.push_back({at_node(m, u.node).name, u.kind == ChannelKind::kOutput ? "output" : "input",
                   std::move(zero)});
  }
  return out;
}

std::vector<at::Tensor> pruned_masks(const Model& m) {
  std::map<int, at::Tensor> masks;
  for (const auto& u : all_units(m)) {
    const auto zero = zero_channels(m, u);
    for (const auto& s : u.slices) {
      const at::Tensor& v = at_node(m, s.param).value;
      at::Tensor& mask = masks[s.param];
      if (!mask.defined()) mask = at::zeros(v.sizes(), at::kBool);
      for (int64_t c : zero) {
        // A secondary slice (a BatchNormalization's) is held only where it is zero too.
        if (s.primary || v.select(s.axis, c).eq(0).all().item<bool>()) {
          mask.select(s.axis, c).fill_(true);
        }
      }
    }
  }
  std::vector<at::Tensor> out;
  for (int p : m.parameter_nodes()) {
    auto it = masks.find(p);
    const bool any = it != masks.end() && it->second.any().item<bool>();
    out.push_back(any ? it->second : at::Tensor());
  }
  return out;
}

}  // namespace bdguard
