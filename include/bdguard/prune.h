// The pruning defense of Fine-Pruning (Liu, Dolan-Gavitt, Garg, RAID 2018), on the
// graph of any model.
//
// The target is a Conv layer (its output channels: kernel slice and bias set to zero,
// and the scale and bias of a BatchNormalization reading it, so the channel is exactly
// 0 before the activation) or a Gemm / MatMul layer (its input features: the weight
// column that multiplies the feature). Channels are pruned in increasing order of
// their mean activation on clean validation data (after the Conv's activation and the
// pooling that follows; at a Gemm's input), one per step, and clean accuracy and
// attack success rate are recorded after each step.
//
// `run_sweep` is exact and fast: it computes the graph below the target's "cut" (the
// Conv and the channel-wise ops after it, or the Gemm's input) once, keeps that
// output, and per step re-runs only what pruning one channel changes: images whose
// channel is already constant are skipped; the linear layers right above the cut (a
// Conv, or a Gemm / MatMul through layout ops) are updated by subtracting the
// channel's contribution (in float64) instead of being recomputed; a Gemm fed by one
// of them alone (DeepID: fc_2 after conv_4) is updated from just the entries of that
// layer's activated output that changed; the rest is re-run, with the images split
// over `--threads` threads. Labels come from the logits (a final softmax keeps their
// order), summed over the non-zero entries of the classifier's input only; an image
// whose logits provably cannot have changed order since it was last scored keeps its
// label without being scored; images whose top two scores come within `kTieMargin`
// are re-run the plain way, so every label equals the plain method's.
// `run_sweep_plain` is that plain method (zero the channel, run the whole model on
// all the data), kept as the reference for tests and benchmarks.
#pragma once

#include <ATen/Tensor.h>

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

// ---- What pruning a channel zeroes ------------------------------------------------

enum class ChannelKind { kOutput, kInput };

// A slice of a parameter: value.select(axis, c) for channel c.
struct ChannelSlice {
  int param = -1;
  int64_t axis = 0;
  bool primary = true;  // false: a BatchNormalization's, zeroed along with the layer's
};

// The channels of one layer and the weights that pruning channel c zeroes.
struct ChannelUnit {
  int node = -1;  // the Conv, Gemm or MatMul node
  ChannelKind kind = ChannelKind::kOutput;
  int64_t channels = 0;
  std::vector<ChannelSlice> slices;
  std::vector<int> batch_norms;  // BatchNormalization nodes reading a Conv (zeroed with it)
};

// A Conv's output channels (with any BatchNormalization that reads the Conv).
ChannelUnit conv_unit(const Model& m, int conv);
// A Gemm's (transA = 0) or MatMul's input features: the weight's rows as the layer
// sees it (column c of a Linear layer's (out, in) weight).
ChannelUnit linear_input_unit(const Model& m, int node);
// A Gemm's output units (weight slice and bias): a Keras Dense's pruned outputs.
ChannelUnit linear_output_unit(const Model& m, int node);
// Sets channel c to zero in every slice of the unit.
void zero_channel(Model& m, const ChannelUnit& u, int64_t c);
// The channels whose layer slices (kernel and bias) are all exactly zero.
std::vector<int64_t> zero_channels(const Model& m, const ChannelUnit& u);

struct PrunedChannels {
  std::string layer;  // the node
  std::string kind;   // "output" (Conv, Gemm outputs) or "input" (Gemm, MatMul input features)
  std::vector<int64_t> channels;
};
// Every Conv / Gemm / MatMul's pruned channels.
std::vector<PrunedChannels> pruned_channels(const Model& m);
// Per Model::parameters() entry: a bool tensor, true on the entries of pruned channels
// (undefined where none), for training that must keep them at zero.
std::vector<at::Tensor> pruned_masks(const Model& m);

// ---- The sweep ----------------------------------------------------------------------

// The default target: the last Conv that every path from the input to the output
// crosses (DeepID: conv_3); where there is none (residual networks), the input
// features of the last Gemm / MatMul (the pooled features the classifier reads).
ChannelUnit default_prune_target(const Model& m);
// The target named by `name` (a Conv, Gemm or MatMul node), or the default when empty.
ChannelUnit resolve_prune_target(const Model& m, const std::string& name);
// "output channels of a Conv (kernel slice and bias; with BatchNormalization 'bn1'
// scale and bias)" and the like, for reports.
std::string describe_target(const Model& m, const ChannelUnit& u);

struct SweepData {
  const LabDataset* clean = nullptr;     // clean validation data (required)
  const LabDataset* poisoned = nullptr;  // poisoned validation data (required)
  const LabDataset* test = nullptr;      // optional, reported only
  const LabDataset* poisoned_test = nullptr;
};

struct SweepOptions {
  std::string layer;  // empty: default_prune_target
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
  std::string layer;                // the pruned node
  std::string target;               // describe_target()
  std::string kind;                 // "output" (a Conv's channels) or "input" (a Gemm's features)
  std::vector<std::string> zeroed;  // the parameters whose slices pruning zeroes
  std::string cut_layer;            // where the mean activation is taken (DeepID: pool_3)
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

// Mean activation per channel of the target's cut over `data`, and the pruning order
// (increasing mean, ties by lower index).
std::vector<double> mean_activations(const Model& m, const ChannelUnit& target,
                                     const LabDataset& data, int64_t batch);
std::vector<int64_t> pruning_order(const std::vector<double>& mean_activation);

// First step whose validation accuracy is at least `drop` points below step 0's; -1 if none.
int first_step_with_drop(const SweepResult& r, double drop);
// A copy of `m` with the first `count` channels of `r.order` pruned in `r.layer`.
Model pruned_copy(const Model& m, const SweepResult& r, int count);

}  // namespace bdguard
