// What the methods with a loss of their own (nad, i-bau) share: their training loops
// are written here, not in train_model (which trains on cross-entropy alone).
//
// TrainableScope makes the model's trainable parameters autograd leaves for a scope,
// and plain tensors again however it ends. PrunedZeros holds every pruned channel
// (prune.h) at exactly zero: gradients are zeroed before each step, so optimizer state
// (momentum, weight decay, Adam's moments) never moves them, and the entries are set
// to zero after it, as train_model does with TrainOptions::zero_masks.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <vector>

#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard::defense {

class TrainableScope {
 public:
  explicit TrainableScope(Model& m);
  ~TrainableScope();
  TrainableScope(const TrainableScope&) = delete;
  TrainableScope& operator=(const TrainableScope&) = delete;
  // The leaves, in Model::parameters() order.
  const std::vector<at::Tensor>& params() const { return params_; }

 private:
  Model& m_;
  std::vector<at::Tensor> params_;
};

class PrunedZeros {
 public:
  // The pruned entries of `m`'s parameters as they are now.
  explicit PrunedZeros(const Model& m);
  void mask_gradients(const std::vector<at::Tensor>& params) const;
  void reapply(const std::vector<at::Tensor>& params) const;
  int64_t channels() const { return channels_; }

 private:
  std::vector<at::Tensor> masks_;
  int64_t channels_ = 0;
};

// Scales the gradients down to a global L2 norm of `max_norm` when above it (0: never).
void clip_gradients(const std::vector<at::Tensor>& params, double max_norm);

// The parameters' values (copies), and putting them back.
std::vector<at::Tensor> snapshot(const Model& m);
void restore(Model& m, const std::vector<at::Tensor>& values);

// Rows `index[begin, end)` of `data` as float images and int64 labels.
TensorData batch_of(const TensorData& data, const std::vector<int64_t>& index, int64_t begin,
                    int64_t end);

// The pre-softmax scores of raw pixels (Model::logits_index()).
at::Tensor logits(const Model& m, const at::Tensor& pixels);

}  // namespace bdguard::defense
