// STRIP (Gao et al., "STRIP: A Defence Against Trojan Attacks on Deep Neural Networks",
// ACSAC 2019): is this input triggered? A trigger keeps forcing the attacker's label
// whatever else the image holds, so the model's output on the input superimposed with
// other clean images stays confident (low entropy), while a clean input's prediction
// scatters. Each input is superimposed with `overlays` clean validation images drawn
// at random (x + alpha * x_clean, clipped to the pixel range); its score is the mean
// entropy (log2, over the classes) of the model's output over them. The threshold is
// the `frr` quantile of the clean validation images' own scores (each superimposed
// with the others): an input scoring below it is flagged. Only validation data
// chooses anything; test data is reported.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/evaluate.h"
#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard {

struct StripOptions {
  int overlays = 64;
  double alpha = 0.5;  // weight of the overlaid clean image
  double frr = 0.05;   // false rejection rate the threshold allows on validation data
  uint64_t seed = 0;
  // Pixel range the superimposed images are clipped to; NaN: [0, 1] when the clean
  // images lie in it, else [0, 255].
  double pixel_min = std::numeric_limits<double>::quiet_NaN();
  double pixel_max = std::numeric_limits<double>::quiet_NaN();
  int64_t batch = 512;  // superimposed images per forward pass
};

class Strip {
 public:
  // `pool`: the clean validation images (raw pixels), the overlays' source. At least 2.
  Strip(const Model& m, TensorData pool, const StripOptions& o);

  // The score of every image of `images` (raw pixels, NCHW). Each image's overlays are
  // drawn from its own seeded stream (`stream`, its index), so scores do not depend on
  // batching or threads.
  std::vector<double> scores(const at::Tensor& images, uint64_t stream,
                             const ProgressFn& progress = {}) const;
  // Scores the pool (each image superimposed with the others) and sets the threshold.
  void calibrate(const ProgressFn& progress = {});
  double threshold() const { return threshold_; }
  const std::vector<double>& pool_scores() const { return pool_scores_; }
  bool flagged(double score) const { return score < threshold_; }
  double pixel_min() const { return lo_; }
  double pixel_max() const { return hi_; }
  const StripOptions& options() const { return o_; }

 private:
  std::vector<double> score_rows(const at::Tensor& images, uint64_t stream, bool in_pool,
                                 const ProgressFn& progress) const;
  const Model& m_;
  TensorData pool_;
  StripOptions o_;
  double lo_ = 0, hi_ = 1;
  double threshold_ = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> pool_scores_;
};

// The STRIP evaluation: rates in percent.
struct StripReport {
  double threshold = 0;
  double valid_frr = 0;       // validation images flagged (what the threshold allows)
  double frr = 0;             // clean test images flagged
  double detection_rate = 0;  // poisoned test images flagged
  int64_t n_valid = 0, n_test = 0, n_poisoned = 0;
  std::vector<double> test_scores, poisoned_scores;
  double seconds = 0;
};
// Percentage of `scores` below the threshold.
double flagged_rate(const Strip& s, const std::vector<double>& scores);

nlohmann::json to_json(const StripOptions& o);
nlohmann::json to_json(const StripReport& r);

// Stream ids for the data sets STRIP scores (the pool uses its own).
constexpr uint64_t kStripTestStream = 1, kStripPoisonedStream = 2, kStripImageStream = 3;

}  // namespace bdguard
