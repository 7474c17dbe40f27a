// The pruning defense of Fine-Pruning (Liu, Dolan-Gavitt, Garg, RAID 2018).
//
// Channels of one Conv2D layer are pruned (kernel slice and bias set to zero) in
// increasing order of their mean activation on clean validation data, one per step,
// and clean accuracy and attack success rate are recorded after each step.
//
// `run_sweep` is exact and fast: it computes the layers below the pruned layer's
// "cut" (the layer, its activation and the pooling after it) once, keeps that
// output, and per step re-runs only what pruning one channel changes: images whose
// channel is already constant are skipped; the linear layers right above the cut
// (Conv2D, or Dense through Flatten) are updated by subtracting the channel's
// contribution (in float64) instead of being recomputed; a Dense fed by one of them
// alone (DeepID: fc_2 after conv_4) is updated from just the entries of that layer's
// activated output that changed; the rest is re-run, with the images split over
// `--threads` threads. Labels come from the output Dense's logits (softmax keeps their
// order), summed over the non-zero entries of its input only; an image whose logits
// provably cannot have changed order since it was last scored keeps its label without
// being scored; images whose top two scores come within `kTieMargin` are re-run the
// plain way, so every label equals the plain method's.
// `run_sweep_plain` is that plain method (zero the channel, run the whole model on
// all the data), kept as the reference for tests and benchmarks.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/dataset.h"
#include "bdguard/evaluate.h"
#include "bdguard/model.h"

namespace bdguard {

inline const std::vector<double> kDefaultDrops = {2, 4, 10};

// Output channels of a Conv2D or Dense layer whose kernel slice and bias are all zero.
std::vector<int64_t> zero_channels(const Layer& layer);
// Sets output channel `c` of a Conv2D or Dense layer to zero (kernel slice and bias).
void prune_channel(Layer& layer, int64_t c);

// The default target: the last Conv2D layer that every path from the input to the
// output passes through (DeepID: conv_3). Throws if there is none.
int default_prune_layer(const Model& m);
// The target named by `name` (must be a Conv2D layer), or the default when empty.
int resolve_prune_layer(const Model& m, const std::string& name);

struct SweepData {
  const LabDataset* clean = nullptr;     // clean validation data (required)
  const LabDataset* poisoned = nullptr;  // poisoned validation data (required)
  const LabDataset* test = nullptr;      // optional, reported only
  const LabDataset* poisoned_test = nullptr;
};

struct SweepOptions {
  std::string layer;  // empty: default_prune_layer
  // Stop once validation accuracy is more than this many points below the baseline.
  double stop_drop = std::numeric_limits<double>::infinity();
  int64_t batch = kDefaultBatch;
  ProgressFn progress;  // called with (steps done, total steps)
};

struct SweepStep {
  int step = 0;
  int64_t channel = -1;  // -1 for step 0 (the unpruned model)
  double fraction_pruned = 0;
  int64_t valid_hits = 0, valid_asr_hits = 0;
  double valid_accuracy = 0, valid_asr = 0;
  std::optional<double> test_accuracy, test_asr;
};

struct SweepTimings {
  double below_cut_s = 0;         // forward passes below the cut, once
  double sweep_s = 0;             // all pruning steps
  int64_t images_recomputed = 0;  // (image, step) pairs the fast path had to re-run
  int64_t images_skipped = 0;     // (image, step) pairs it could skip
  int64_t images_certified = 0;   // re-run pairs whose label was proven without the output layer
  int64_t ties_verified = 0;      // near ties re-run the plain way
};

struct SweepResult {
  std::string layer;      // the pruned Conv2D layer
  std::string cut_layer;  // where the mean activation is taken (DeepID: pool_3)
  int64_t channels = 0;
  std::vector<double> mean_activation;  // per channel, over clean validation data
  std::vector<int64_t> order;           // pruning order
  std::vector<SweepStep> steps;         // step 0 = unpruned
  int64_t n_clean = 0, n_poisoned = 0, n_test = 0, n_poisoned_test = 0;
  // Per step, predicted labels on the test files (empty without test files).
  std::vector<std::vector<int64_t>> test_predictions, poisoned_test_predictions;
  SweepTimings timings;
};

SweepResult run_sweep(const Model& m, const SweepData& data, const SweepOptions& options);
SweepResult run_sweep_plain(const Model& m, const SweepData& data, const SweepOptions& options);

// Mean activation per channel of the cut of `layer` over `data`, and the pruning order
// (increasing mean, ties by lower index).
std::vector<double> mean_activations(const Model& m, int layer, const LabDataset& data,
                                     int64_t batch);
std::vector<int64_t> pruning_order(const std::vector<double>& mean_activation);

// First step whose validation accuracy is at least `drop` points below step 0's; -1 if none.
int first_step_with_drop(const SweepResult& r, double drop);
// A copy of `m` with the first `count` channels of `r.order` pruned in `r.layer`.
Model pruned_copy(const Model& m, const SweepResult& r, int count);

}  // namespace bdguard
