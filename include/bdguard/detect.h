// Neural Cleanse (Wang et al., "Neural Cleanse: Identifying and Mitigating Backdoor
// Attacks in Neural Networks", IEEE S&P 2019): is a model backdoored, which label does
// it target, what does the trigger look like, from clean data alone.
//
// For each candidate label t, a mask m (H x W, in [0, 1]) and a pattern p (C x H x W,
// in the pixel range) are optimised so that x' = (1 - m) * x + m * p is classified as
// t for at least `attack_success` of the clean images while the L1 norm of m stays
// small: loss = CE(f(x'), t) + cost * |m|_1, m and p through tanh, Adam. The cost
// starts at `init_cost`; after `patience` steps in a row at or above the success
// threshold it is multiplied by `cost_multiplier`, after `patience` steps below it
// divided by cost_multiplier^1.5; a label stops early once its best norm has not
// improved for `early_stop_patience` steps after the cost went both up and down (the
// original code's schedule, bolunwang/backdoor visualizer.py). A backdoor target
// needs a far smaller mask than the other labels: the median absolute deviation of the
// norms (consistency constant 1.4826) gives each label an anomaly index |norm -
// median| / MAD, and a label below the median with an index over 2 is flagged.
//
// Fast: the labels are optimised together, `label_batch` at a time: their masks and
// patterns are rows of one tensor, the stamped images of all of them go through one
// forward and backward pass, and Adam (element-wise) updates each row as if alone.
// Each label sees the same mini-batches and starts from its own seeded mask and
// pattern, so a label's result does not depend on which labels share its batch.
//
// Many classes (the lab's DeepID: 1283): every label is first screened with a short
// optimisation; the labels with the smallest screened norms are the candidates, and
// they are refined with the full schedule together with a seeded random sample of the
// other labels, whose refined norms estimate the median and MAD of the population
// (see the README for the rule and the checks that it gives the full run's verdict).
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bdguard/evaluate.h"
#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard {

struct NeuralCleanseOptions {
  std::vector<int64_t> labels;  // the candidate labels; empty: every class
  uint64_t seed = 0;
  int64_t batch = 32;                         // images per mini-batch (the original's)
  int batches_per_step = 10;                  // mini-batches per step (the original: 31)
  int max_steps = 300;                        // steps per label at most (the original: 1000)
  double lr = 0.1, beta1 = 0.5, beta2 = 0.9;  // Adam (the original's)
  double init_cost = 1e-3;
  double attack_success = 0.99;  // the success threshold
  int patience = 5;
  double cost_multiplier = 2.0;  // up; down by cost_multiplier^1.5
  bool early_stop = true;
  double early_stop_threshold = 1.0;
  int early_stop_patience = 25;
  int64_t label_batch = 10;  // labels optimised together (1: one after another)
  // Pixel range of the pattern and of the stamped images; NaN: [0, 1] when the clean
  // images lie in it, else [0, 255].
  double pixel_min = std::numeric_limits<double>::quiet_NaN();
  double pixel_max = std::numeric_limits<double>::quiet_NaN();
  // Screening (more candidate labels than `full_below`): the screen's steps, mini-batches
  // per step and Adam learning rate (3x the full run's, so that masks shrink within its
  // 16 updates), how many candidates are refined (0: max(4, ceil(labels / 256))), and
  // how many other labels are refined as the reference sample.
  int64_t full_below = 64;
  int screen_steps = 8;
  int screen_batches = 2;
  double screen_lr = 0.3;
  int64_t refine = 0;
  int64_t reference = 16;
  // Clean images on which each refined trigger's attack success is measured.
  int64_t eval_images = 1000;
  // MAD outlier test: flag labels below the median whose index exceeds this.
  double anomaly_threshold = 2.0;
  ProgressFn progress;  // (labels done, labels in the stage); stage names via `stage`
  std::function<void(const std::string& stage)> stage;
};

struct LabelTrigger {
  int64_t label = 0;
  at::Tensor mask;     // (H, W) in [0, 1]
  at::Tensor pattern;  // (C, H, W) in the pixel range
  double mask_l1 = 0;
  double attack_success = 0;  // fraction of the evaluation images sent to `label`
  bool reached = false;       // some step reached the success threshold
  int steps = 0;
  double cost = 0;         // the cost at the end
  bool refined = false;    // fully optimised (always, without screening)
  bool reference = false;  // in the reference sample of a screened run
  double anomaly_index = 0;
};

struct OutlierTest {
  double median = 0, mad = 0;
  std::vector<double> index;    // |norm - median| / MAD, per input norm
  std::vector<size_t> flagged;  // positions below the median with index > threshold
};
// The MAD outlier test of `norms` (median and MAD from `reference` positions, or from
// every norm when empty). MAD 0 (equal norms): an index of 0 where the norm equals the
// median, infinite elsewhere.
OutlierTest mad_outliers(const std::vector<double>& norms, const std::vector<size_t>& reference,
                         double threshold);

struct NeuralCleanseResult {
  std::vector<LabelTrigger> labels;  // in label order
  double median = 0, mad = 0;
  std::vector<int64_t> flagged;  // flagged labels, smallest norm first
  bool backdoored = false;
  bool screened = false;
  int64_t n_clean = 0;
  double pixel_min = 0, pixel_max = 0;
  double screen_s = 0, refine_s = 0, seconds = 0;
  int64_t image_passes = 0;  // stamped images through the model, forward and backward
};

// The pixel range (lo, hi) of NeuralCleanseOptions and StripOptions: `lo` and `hi` when
// both are given (not NaN), else [0, 1] when `images` lie in it, else [0, 255].
std::pair<double, double> pixel_range(double lo, double hi, const at::Tensor& images);

// Runs Neural Cleanse on `m` with the clean images `clean` (raw pixels, NCHW).
NeuralCleanseResult neural_cleanse(const Model& m, const TensorData& clean,
                                   const NeuralCleanseOptions& o);

// The `label` of an untargeted trigger: any label but the image's own.
constexpr int64_t kAnyOtherLabel = -1;

// Neural Cleanse's optimisation without a target label (bdguard's extension, for attacks
// that send each label elsewhere, such as all-to-all): one mask and pattern that make the
// model misclassify `attack_success` of the clean images, loss -log(1 - p_y) + cost *
// |m|_1 with y each image's own label, under the same schedule and options (`labels`
// ignored). The result's `label` is kAnyOtherLabel and its `attack_success` the fraction
// of the evaluation images misclassified. InvalidArgument when a label of `clean` is not
// a class of the model.
LabelTrigger untargeted_trigger(const Model& m, const TensorData& clean,
                                const NeuralCleanseOptions& o);

nlohmann::json to_json(const NeuralCleanseOptions& o);
nlohmann::json to_json(const NeuralCleanseResult& r);

// The reversed trigger as images, 0..255 (C, H, W): the mask (grayscale), the pattern,
// and the trigger (mask x pattern on black).
at::Tensor mask_image(const LabelTrigger& t);
at::Tensor pattern_image(const LabelTrigger& t, double pixel_min, double pixel_max);
at::Tensor trigger_image(const LabelTrigger& t, double pixel_min, double pixel_max);

}  // namespace bdguard
