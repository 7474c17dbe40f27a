// Training a Model's weights with LibTorch: new models (BadNets) and fine-tuning.
//
// The Model's trainable parameters (weights of Conv, Gemm, MatMul, BatchNormalization's
// scale and bias; not its running statistics) are trained: the forward pass is built
// from ATen ops, so autograd reaches them directly. The loss is cross-entropy
// on the pre-softmax output. Shuffling and initialization use their own seeded
// generator, so a run is reproducible byte for byte for a given seed and thread count.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bdguard/evaluate.h"
#include "bdguard/model.h"

namespace bdguard {

// Images and labels in memory: images (N, C, H, W) uint8 or float32 raw pixels,
// labels (N) int64.
struct TensorData {
  at::Tensor images;
  at::Tensor labels;
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  // Rows `index`, in that order.
  TensorData subset(const std::vector<int64_t>& index) const;
  std::vector<int64_t> label_vector() const;
};

// Every row of a lab data file.
TensorData read_tensor_data(const LabDataset& data);

enum class Optimizer { kSgd, kAdam };
Optimizer parse_optimizer(const std::string& name);  // "sgd" or "adam"
const char* optimizer_name(Optimizer o);

// A seeded generator whose numbers are the same on every platform (mt19937_64 is
// specified exactly; the std distributions are not, so they are not used).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();            // [0, 1)
  uint64_t below(uint64_t n);  // [0, n)
  // A random permutation of 0..n-1 (Fisher-Yates).
  std::vector<int64_t> permutation(int64_t n);

 private:
  std::mt19937_64 gen_;
};

// Fills every parameter of a model built from a Keras config: Glorot-uniform kernels
// (Keras' default, drawn in Keras' layout), zero biases, BatchNormalization gamma 1,
// beta 0, moving mean 0, moving variance 1.
void init_weights(Model& m, uint64_t seed);

struct TrainProgress {
  int epoch = 0, epochs = 0;    // epoch counts from 1
  int64_t step = 0, steps = 0;  // within the epoch, counts from 1
  double loss = 0;              // mean loss over the epoch so far
  double accuracy = 0;          // percent of training images right so far (before their step)
};
using TrainProgressFn = std::function<void(const TrainProgress&)>;

struct EpochStats {
  int epoch = 0;
  double loss = 0, accuracy = 0;  // training loss and accuracy (percent) over the epoch
  double seconds = 0;
  // The loss became NaN or infinite during this epoch: training stopped at that step
  // (the weights are not usable) and no further epoch ran.
  bool diverged = false;
};

struct TrainOptions {
  int epochs = 1;
  int64_t batch = 64;
  double lr = 1e-3;
  Optimizer optimizer = Optimizer::kAdam;
  double momentum = 0.9;  // SGD only
  // Cosine decay: the learning rate falls from `lr` to 0 over all steps (else constant).
  bool cosine_decay = false;
  uint64_t seed = 0;       // shuffling
  int64_t max_steps = -1;  // stop after this many steps in all; -1: no limit
  // BatchNormalization in training mode (batch statistics, running mean and variance
  // updated with the layer's momentum), as a network trained from scratch needs (bdguard
  // attack); after the last step, one more pass over the data (no weight changes) sets
  // the running statistics to the average of the trained network's batch statistics.
  // Off: its inference form with fixed statistics, as fine-tuning and every defense
  // train a given model.
  bool batch_norm_training = false;
  // Before each step, gradients are scaled down so that their global L2 norm is at most
  // this (0: never). Keeps a large learning rate stable on models whose inputs are raw
  // 0..255 pixels (the lab's DeepID), where the first layers' gradients are huge.
  double clip_grad_norm = 0;
  // Augmentation: each training image moved by a random (dy, dx) in [-shift, shift]
  // pixels, the uncovered border 0 (0: never). Seeded apart from the shuffling.
  int shift = 0;
  // Per parameter (in Model::parameters() order): a bool tensor of its shape whose true
  // entries are held at exactly 0 (their gradient is zeroed before each step and the
  // entries after it), so optimizer state never moves them. Undefined entries, or an
  // empty list, hold nothing.
  std::vector<at::Tensor> zero_masks;
  // Called after every optimizer step (e.g. to keep pruned channels exactly zero).
  std::function<void(Model&)> after_step;
  // Called at the end of every epoch that did not diverge.
  std::function<void(Model&, const EpochStats&)> on_epoch;
  TrainProgressFn progress;
};

// Trains every trainable parameter of `m` on `data` (cross-entropy, mini-batches in a seeded
// shuffled order per epoch). Weights stay plain tensors (no autograd) afterwards.
std::vector<EpochStats> train_model(Model& m, const TensorData& data, const TrainOptions& options);

// Predicted labels of every image (converted to float in batches).
std::vector<int64_t> predict(const Model& m, const TensorData& data, int64_t batch = kDefaultBatch);
// Percentage of the images that `m` gives their label (on poisoned images, whose
// labels are the target: the attack success rate).
double accuracy(const Model& m, const TensorData& data, int64_t batch = kDefaultBatch);

}  // namespace bdguard
