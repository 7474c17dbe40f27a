// Training-loop pieces of nad and i-bau (own_loop.h).
#include "own_loop.h"

#include <ATen/ATen.h>

#include <cmath>

#include "bdguard/error.h"
#include "bdguard/prune.h"

namespace bdguard::defense {

TrainableScope::TrainableScope(Model& m) : m_(m) {
  for (int i : m_.parameter_nodes()) {
    at::Tensor& v = m_.node(static_cast<size_t>(i)).value;
    v = v.detach().requires_grad_(true);
    params_.push_back(v);
  }
}

TrainableScope::~TrainableScope() {
  for (int i : m_.parameter_nodes()) {
    at::Tensor& v = m_.node(static_cast<size_t>(i)).value;
    v = v.detach().requires_grad_(false);
  }
}

PrunedZeros::PrunedZeros(const Model& m) : masks_(pruned_masks(m)) {
  for (const PrunedChannels& p : pruned_channels(m)) {
    channels_ += static_cast<int64_t>(p.channels.size());
  }
}

void PrunedZeros::mask_gradients(const std::vector<at::Tensor>& params) const {
  for (size_t k = 0; k < masks_.size() && k < params.size(); ++k) {
    if (masks_[k].defined() && params[k].grad().defined()) {
      params[k].mutable_grad().masked_fill_(masks_[k], 0.0);
    }
  }
}

void PrunedZeros::reapply(const std::vector<at::Tensor>& params) const {
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < masks_.size() && k < params.size(); ++k) {
    if (masks_[k].defined()) params[k].masked_fill_(masks_[k], 0.0);
  }
}

void clip_gradients(const std::vector<at::Tensor>& params, double max_norm) {
  if (max_norm <= 0) return;
  at::NoGradGuard no_grad;
  double sum = 0;
  for (const auto& p : params) {
    if (p.grad().defined()) sum += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sum);
  if (!std::isfinite(norm) || norm <= max_norm) return;
  for (const auto& p : params) {
    if (p.grad().defined()) p.mutable_grad().mul_(max_norm / (norm + 1e-6));
  }
}

std::vector<at::Tensor> snapshot(const Model& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

void restore(Model& m, const std::vector<at::Tensor>& values) {
  const std::vector<int> nodes = m.parameter_nodes();
  if (nodes.size() != values.size()) {
    fail<InvalidArgument>("", "parameter snapshot", std::to_string(nodes.size()) + " tensors",
                          std::to_string(values.size()));
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    m.node(static_cast<size_t>(nodes[k])).value = values[k].clone();
  }
}

TensorData batch_of(const TensorData& data, const std::vector<int64_t>& index, int64_t begin,
                    int64_t end) {
  const std::vector<int64_t> rows(index.begin() + begin, index.begin() + end);
  TensorData b = data.subset(rows);
  return {b.images.to(at::kFloat), b.labels.to(at::kLong)};
}

at::Tensor logits(const Model& m, const at::Tensor& pixels) {
  return m.run(pixels, {m.logits_index()})[0];
}

}  // namespace bdguard::defense
