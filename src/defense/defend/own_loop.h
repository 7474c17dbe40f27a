// What the methods with a loss of their own (nad, i-bau, sau, ft-sam, fst) share: their
// training loops are written here, not in train_model (which trains on cross-entropy
// alone).
//
// TrainableScope makes the model's trainable parameters autograd leaves for a scope,
// and plain tensors again however it ends. PrunedZeros holds every pruned channel
// (prune.h) at exactly zero: gradients are zeroed before each step, so optimizer state
// (momentum, weight decay, Adam's moments) never moves them, and the entries are set
// to zero after it, as train_model does with TrainOptions::zero_masks.
#pragma once

#include <ATen/Tensor.h>

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "bdguard/model.h"
#include "bdguard/train.h"
#include "methods.h"

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

// The pixel range perturbations are measured in: NeuralCleanseOptions' where given,
// else detect.h's rule ([0, 1] when the clean images lie in it, else [0, 255]).
std::pair<double, double> pixel_range(const Context& c);

// The epoch loop of sau, ft-sam and fst: `epochs` passes over the training part in
// seeded shuffled batches; per batch, `step` puts the gradients into the parameters'
// .grad and returns the loss, then pruned gradients are zeroed, gradients clipped to
// `clip_grad_norm` (0: never), the optimizer steps, pruned entries are zeroed again and
// `after_step` runs (no grad). With `cosine`, the learning rate falls from `lr` to 0
// along a cosine over all steps. After each epoch the held-out accuracy (and the ASR
// on poisoned validation data, reported only) is measured; the epoch kept is
// EpochKeeper's (`keep_best`: the best held-out one, or with a proxy the lowest proxy
// ASR within `proxy_slack` points of it), or the last. A non-finite loss stops the loop, keeping
// the epoch kept before it.
struct OwnLoop {
  int epochs = 0;
  int64_t batch = 0;
  uint64_t seed = 0;
  double clip_grad_norm = 0;
  bool keep_best = true;
  bool cosine = false;
  double lr = 0;
  // With keep_best: the proxy the epoch kept is chosen by (EpochKeeper), if any.
  std::function<double(const Model&)> proxy;
  double proxy_slack = kProxySlack;
};
// The options of a fine-tuning method on the loop (ft-sam, fst), added to `schema`:
// epochs (`epochs_help`), lr (SGD, momentum 0.9, cosine decay to 0), batch,
// clip_grad_norm (bdguard's fine-tuning's), keep ("best"), select and proxy_slack.
void add_tuning_options(nlohmann::json& schema, int epochs, const std::string& epochs_help,
                        double lr, int64_t batch);
// The loop's settings from the method's options "epochs", "batch", "lr", "keep" and, where
// the method has it, "clip_grad_norm"; the shuffling seeded with the run's seed ^ `salt`.
OwnLoop own_loop(const Context& c, uint64_t salt, bool cosine);
using OwnStep =
    std::function<double(const TensorData& batch, const std::vector<at::Tensor>& params)>;
using MakeOptimizer =
    std::function<std::unique_ptr<torch::optim::Optimizer>(const std::vector<at::Tensor>& params)>;
using AfterStep = std::function<void(const std::vector<at::Tensor>& params)>;
// Trains `m` in place; returns the figures: epochs_run, best_epoch (the one kept),
// diverged_epoch, epochs (loss, held-out accuracy, ASR, seconds each) and
// pruned_channels_kept.
nlohmann::json train_own_loss(Model& m, const Context& c, const OwnLoop& loop,
                              const PrunedZeros& pruned, const MakeOptimizer& make_optimizer,
                              const OwnStep& step, const AfterStep& after_step = {});

// Cross-entropy of logits `z` against labels `y` smoothed as BackdoorBench's
// smooth_crossentropy: 1 - s on the label, s / (classes - 1) on every other (s = 0:
// plain cross-entropy); the mean over the batch.
at::Tensor smoothed_cross_entropy(const at::Tensor& z, const at::Tensor& y, double s);

}  // namespace bdguard::defense
