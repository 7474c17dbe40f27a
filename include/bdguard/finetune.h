// Fine-pruning's second step (Liu, Dolan-Gavitt, Garg, RAID 2018): train a pruned
// network on clean data, keeping every pruned channel pruned.
//
// The clean validation data is split (seeded) into a fine-tuning part and a held-out
// part. Every weight is trained on the first; after each epoch the held-out accuracy
// is measured, and the epoch with the best held-out accuracy is kept. A pruned channel
// (prune.h: a Conv's or Gemm's output channel whose kernel slice and bias are all
// exactly zero, with a BatchNormalization's zeroed scale and bias after it; a Gemm's
// or MatMul's input feature whose weight column is zero) stays exactly zero after
// every step: its gradient is zeroed before the step, so optimizer state never moves
// it, and the entries are set to zero after it.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/dataset.h"
#include "bdguard/model.h"
#include "bdguard/prune.h"
#include "bdguard/train.h"

namespace bdguard {

// Defaults of `bdguard finetune`, `prune --finetune` and `run`.
constexpr int kFinetuneEpochs = 15;
// SGD at 0.03 with images moved by up to 1 pixel: on the demo (4,000 training images)
// the earlier 0.05 without augmentation overfit (99 % training accuracy) and ended
// every fine-pruned model 2.5 to 3.3 points below the BadNet; this recipe keeps them
// within 1.7 points on the held-out validation images and the test files (README).
constexpr double kFinetuneLr = 0.03;
constexpr int kFinetuneShift = 1;
constexpr int64_t kFinetuneBatch = 32;
constexpr double kFinetuneHoldout = 0.2;
constexpr double kFinetuneClipNorm = 10.0;

// EpochKeeper's default slack: an epoch up to this many points of held-out accuracy
// below the best one may be kept for a lower proxy ASR (about 4 of the 400 images held
// out of 2,000).
constexpr double kProxySlack = 1.0;

// Which epoch's weights a training run keeps. Without a proxy: the best held-out
// accuracy (ties: the earlier epoch). With one: among the epochs whose held-out
// accuracy is within `slack` points of the best of all epochs, the lowest proxy ASR
// (ties: the higher accuracy, then the earlier epoch). Only the weights of epochs that
// can still be kept are copied: those within `slack` of the best so far that no other
// epoch beats on both counts.
class EpochKeeper {
 public:
  EpochKeeper(bool use_proxy, double slack);
  // The weights after epoch `epoch`, its held-out accuracy and proxy ASR (ignored
  // without a proxy).
  void offer(int epoch, double accuracy, double proxy_asr, const Model& m);
  // Puts the kept epoch's weights into `m` and returns the epoch (0: nothing was
  // offered; `m` is left as it is).
  int restore(Model& m) const;
  double accuracy() const;   // of the epoch kept (-1: none)
  double proxy_asr() const;  // of the epoch kept (0 without a proxy)

 private:
  struct Entry {
    int epoch = 0;
    double accuracy = 0, proxy = 0;
    std::vector<at::Tensor> weights;
  };
  bool beats(const Entry& a, const Entry& b) const;
  const Entry* kept() const;
  bool use_proxy_;
  double slack_, best_ = -1;
  std::vector<Entry> front_;
};

struct FinetuneData {
  const LabDataset* clean = nullptr;          // clean validation data (required)
  const LabDataset* poisoned = nullptr;       // poisoned validation data: ASR, reported only
  const LabDataset* test = nullptr;           // optional, reported only
  const LabDataset* poisoned_test = nullptr;  // goes with `test`
};

struct FinetuneOptions {
  int epochs = kFinetuneEpochs;
  double lr = kFinetuneLr;
  int64_t batch = kFinetuneBatch;
  Optimizer optimizer = Optimizer::kSgd;  // momentum 0.9
  uint64_t seed = 0;
  // The learning rate falls from `lr` to 0 along a cosine over all steps: large steps
  // first wash out what clean data does not support, small ones then settle.
  bool cosine_decay = true;
  double holdout = kFinetuneHoldout;  // fraction of the clean data held out, in (0, 1)
  // Gradients are clipped to this global L2 norm before each step (0: never); see
  // TrainOptions::clip_grad_norm.
  double clip_grad_norm = kFinetuneClipNorm;
  int shift = kFinetuneShift;  // augmentation, TrainOptions::shift
  int64_t eval_batch = kDefaultBatch;
  TrainProgressFn progress;
  // A proxy of the attack (repair.h: reversed triggers stamped on the held-out images):
  // the proxy ASR of a model, in percent. When set, the epoch kept is chosen by
  // EpochKeeper's proxy rule, `proxy_slack` points; else the best held-out epoch.
  std::function<double(const Model&)> proxy;
  double proxy_slack = kProxySlack;
};

struct FinetuneMetrics {
  double holdout_accuracy = 0;
  std::optional<double> asr;  // on the poisoned validation data
  std::optional<double> test_accuracy, test_asr;
};

struct FinetuneEpoch {
  int epoch = 0;
  double loss = 0, train_accuracy = 0;  // on the fine-tuning part, during the epoch
  double holdout_accuracy = 0;
  std::optional<double> asr;
  double seconds = 0;
  std::optional<double> proxy_asr;  // with FinetuneOptions::proxy
};

struct FinetuneResult {
  FinetuneMetrics before, after;
  std::vector<FinetuneEpoch> epochs;
  int best_epoch = 0;  // the epoch whose weights were kept (0: none; the input's weights)
  // The loss became NaN or infinite in epoch `diverged_epoch` (0: never); training
  // stopped there and the best earlier epoch (or the input's weights) was kept.
  int diverged_epoch = 0;
  int64_t n_train = 0, n_holdout = 0, n_poisoned = 0, n_test = 0, n_poisoned_test = 0;
  std::vector<PrunedChannels> pruned;  // held at zero throughout
  // Labels predicted by the fine-tuned model on the test files (empty without them).
  std::vector<int64_t> test_predictions, poisoned_test_predictions;
  double seconds = 0;
};

// Fine-tunes `m` in place (see above) and measures it before and after.
FinetuneResult finetune(Model& m, const FinetuneData& data, const FinetuneOptions& options);

// The clean validation data split as finetune (and every defense, defend.h) splits it:
// a seeded `holdout` fraction held out, at least one image on each side; rows keep
// their order.
struct ValidationSplit {
  TensorData train, holdout;
};
ValidationSplit split_validation(const TensorData& clean, double holdout, uint64_t seed);

// finetune's training on data in memory: trains `m` on `train` and keeps the epoch
// EpochKeeper picks on `holdout` (with 0 epochs, the input's weights); the ASR on
// `poisoned` (may be null) is recorded per epoch, never used.
struct FinetuneRun {
  std::vector<FinetuneEpoch> epochs;
  int best_epoch = 0, diverged_epoch = 0;
  double holdout_accuracy = 0;      // of the weights kept
  std::optional<double> proxy_asr;  // of the weights kept, with a proxy
};
FinetuneRun finetune_in_memory(Model& m, const TensorData& train, const TensorData& holdout,
                               const TensorData* poisoned, const FinetuneOptions& options);

// Each epoch's figures (epoch, loss, train_accuracy, holdout_accuracy, asr, proxy_asr).
nlohmann::json to_json(const std::vector<FinetuneEpoch>& epochs);
nlohmann::json to_json(const FinetuneResult& r);

}  // namespace bdguard
