// Helpers for tests that look into a model graph in Keras' terms: a layer's weights in
// Keras' layout and order, shapes channels-last, channels pruned by layer name.
#pragma once

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bdguard/model.h"
#include "bdguard/prune.h"

namespace bdguard::test {

// The parameters of layer `layer` (all its weights, Keras' order), as node indices.
inline std::vector<int> layer_params(const Model& m, const std::string& layer) {
  std::vector<int> out;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m.node(i).kind == NodeKind::kParam && m.node(i).layer == layer) {
      out.push_back(static_cast<int>(i));
    }
  }
  return out;
}

// The Keras layers of a model (the `layer` of its input and op nodes), in graph order.
inline std::vector<std::string> keras_layers(const Model& m) {
  std::vector<std::string> out;
  for (size_t i = 0; i < m.size(); ++i) {
    const Node& n = m.node(i);
    if (n.kind == NodeKind::kParam || n.kind == NodeKind::kConst) continue;
    if (out.empty() || out.back() != n.layer) out.push_back(n.layer);
  }
  return out;
}

// Parameter k of `layer` in the file's (Keras) layout.
inline at::Tensor keras_weight(const Model& m, const std::string& layer, size_t k) {
  const Node& n = m.node(static_cast<size_t>(layer_params(m, layer).at(k)));
  at::Tensor v = n.value.detach();
  return n.file_order.empty() ? v.contiguous() : v.permute(n.file_order).contiguous();
}

// Sets the weights of `layer` from Keras-layout tensors, in Keras' weight order.
inline void set_keras_weights(Model& m, const std::string& layer,
                              const std::vector<at::Tensor>& values) {
  const auto ids = layer_params(m, layer);
  if (ids.size() != values.size()) throw std::logic_error(layer + ": wrong number of weights");
  for (size_t k = 0; k < ids.size(); ++k) {
    Node& n = m.node(static_cast<size_t>(ids[k]));
    at::Tensor v = values[k].to(at::kFloat);
    if (n.file_order.empty()) {
      if (v.sizes() != n.value.sizes()) throw std::logic_error(n.name + ": wrong shape");
      n.value = v.contiguous();
      continue;
    }
    std::vector<int64_t> inv(n.file_order.size());
    for (size_t a = 0; a < inv.size(); ++a)
      inv[static_cast<size_t>(n.file_order[a])] = static_cast<int64_t>(a);
    at::Tensor g = v.permute(inv).contiguous();
    if (g.sizes() != n.value.sizes()) throw std::logic_error(n.name + ": wrong shape");
    n.value = g;
  }
}

// Keras' shape of a value: batch left out, images channels-last.
inline Shape keras_shape(const Dims& d) {
  if (d.size() == 4) return {d[2], d[3], d[1]};
  return Shape(d.begin() + 1, d.end());
}
inline Shape keras_output_shape(const Model& m) {
  return keras_shape(m.node(static_cast<size_t>(m.output_index())).info.dims);
}

// The prunable channels of a layer: a Conv's output channels, a Dense's output units.
inline ChannelUnit unit_of(const Model& m, const std::string& layer) {
  const int i = m.find(layer);
  if (i < 0) throw std::logic_error("no layer " + layer);
  return m.node(static_cast<size_t>(i)).is_op("Conv") ? conv_unit(m, i) : linear_output_unit(m, i);
}
inline void prune(Model& m, const std::string& layer, int64_t c) {
  zero_channel(m, unit_of(m, layer), c);
}
inline std::vector<int64_t> zeros_of(const Model& m, const std::string& layer) {
  return zero_channels(m, unit_of(m, layer));
}

// Every parameter of two models is bit-identical.
inline bool same_parameters(const Model& a, const Model& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a.node(i).kind != NodeKind::kParam) continue;
    if (!at::equal(a.node(i).value, b.node(i).value)) return false;
  }
  return true;
}

}  // namespace bdguard::test
