// K-Arm (Shen, Liu, Tao, An, Xu, Cheng, Ma, Zhang, "Backdoor Scanning for Deep Neural
// Networks through K-Arm Optimization", ICML 2021; reference code
// PurduePAML/K-ARM_Backdoor_Optimization): is a model backdoored, from clean data,
// by reversing triggers only where a backdoor is likely and spending the optimisation
// steps on the most promising of them.
//
// 1. Pre-screening. The model's softmax on every clean image; its top k labels (k = 2
//    for at most 8 classes, else round(gamma * classes)). A label in the top k of more
//    than `global_theta` of the images is a candidate target of a universal backdoor
//    (an arm). Without one, a pair (target t, source s) is an arm when t is in the top k
//    of at least `local_theta` of the images predicted s (a label-specific backdoor),
//    at most `max_sources` sources per target, those of the largest summed
//    probability. bdguard adds the `min_arms` labels most often in the top k as
//    universal arms when fewer pass, so that every model gets a score, caps the arms at
//    `max_arms`, and ignores sources with fewer than `min_source_images` images.
// 2. K-Arm optimisation. Each arm has its own mask m (H x W) and pattern p (C x H x W,
//    one colour for a label-specific arm) and Adam state; x' = (1 - m) x + m p, loss
//    CE(f(x'), t) + cost * |m|_1 (Neural Cleanse's objective). Each step optimises one
//    arm on `batches_per_step` mini-batches of its images (all clean images; a source's
//    for a pair). Every arm is first optimised until it has improved its best trigger
//    `warmup_rounds` times; then an epsilon-greedy bandit picks the arm of the largest
//    velocity + beta / |m|_1 (velocity: the fall of its best mask norm since its first
//    success, per step), a random live arm with probability `epsilon`. An arm stops after `rounds`
//    improvements, when its norm stopped improving (early stop), or when it cannot reach the attack
//    success; the run stops when the arm with the smallest norm stops, or after
//    `steps` steps.
// 3. The decision. The best arm's trigger size, its mask's L1 norm as a fraction of
//    the image area, against a bound (`universal_bound`, `specific_bound`); for a pair
//    (t, s) the symmetric check reverses the trigger from t to s as well: a natural
//    feature flips both ways easily, a backdoor only one way, so the pair counts only
//    when the reverse trigger is `ratio_bound` times larger. The score (larger: more
//    suspicious) is ln(bound / size), less ln(ratio_bound / ratio) when the ratio is
//    below the bound: positive exactly when the reference code calls the model trojan.
//
// Reproducible for a seed and thread count on one machine. docs/detectors.md lists
// the defaults and where this differs from the reference code.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/evaluate.h"
#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard {

struct KArmOptions {
  uint64_t seed = 0;
  // Pre-screening (the reference's gamma, global_theta, local_theta; the rest ours).
  double gamma = 0.25;
  double global_theta = 0.95;
  double local_theta = 0.9;
  int64_t max_sources = 3;
  // Universal arms at least: every label of a 10-class model (3 missed the target of 4
  // of 6 patch BadNets of the calibration zoo: docs/detectors.md).
  int64_t min_arms = 10;
  int64_t max_arms = 14;
  int64_t min_source_images = 10;
  // Optimisation (the reference's defaults unless noted).
  int64_t batch = 32;
  int batches_per_step = 4;  // the reference: every image of the arm per step
  int steps = 1000;          // steps over all arms at most
  int rounds = 60;           // improvements of an arm's best trigger before it stops
  int warmup_rounds = 2;
  // Steps every universal arm has at least when the bandit stops (ours; 0: none): the
  // bandit stops with the smallest trigger's arm and leaves an arm it did not favour at
  // its first triggers (about half the image), so its size says nothing of its label.
  // A per-label reference (scan.h) needs every label's size (docs/detectors.md).
  int min_steps = 40;
  double lr = 0.1, beta1 = 0.5, beta2 = 0.9;
  double init_cost = 1e-3;  // the cost starts at 0 and is set to this after 2 successes
  double cost_multiplier = 1.5;
  int patience = 5;
  double attack_success = 0.99;
  double early_stop_threshold = 1.0;
  int early_stop_patience = 10;
  double epsilon = 0.3;  // the bandit's exploration
  // The bandit's objective velocity + beta / |m|_1, beta in fractions of the image area
  // (the reference's 1e4 on 224 x 224 images).
  double beta = 1e4 / (50176.0 * 50176.0);
  double central_side = 50 / 224.0;  // a pair's mask starts as this centred square
  bool symmetric_check = true;
  // Decision bounds, fractions of the image area (the reference's 1720, 1000 of 50176).
  double universal_bound = 1720 / 50176.0;
  double specific_bound = 1000 / 50176.0;
  double ratio_bound = 10;
  // Pixel range of the pattern; NaN: from the clean images (Neural Cleanse's rule).
  double pixel_min = std::numeric_limits<double>::quiet_NaN();
  double pixel_max = std::numeric_limits<double>::quiet_NaN();
  std::function<void(const std::string& stage)> stage;
  ProgressFn progress;  // (steps done, steps at most)
};

// One arm: its screen statistic (the fraction of the images, or of the source's, with
// the target in the top k) and how its optimisation went.
struct KArmArm {
  int64_t target = 0;
  int64_t source = -1;  // -1: universal
  double screen = 0;
  bool passed_screen = false;                           // false: added by min_arms
  int steps = 0;                                        // optimisation steps spent on it
  int rounds = 0;                                       // improvements of its best trigger
  double l1 = std::numeric_limits<double>::infinity();  // best mask norm (pixels)
  double size = 1;          // l1 / (H * W); 1 when it never reached the attack success
  double best_success = 0;  // the best step's attack success
  bool reached = false;
};

struct KArmResult {
  std::vector<KArmArm> arms;
  int64_t target = -1;
  int64_t source = -1;  // -1: universal
  at::Tensor mask;      // (H, W) in [0, 1]: the best arm's
  at::Tensor pattern;   // (C, H, W) in the pixel range
  at::Tensor example;   // (C, H, W): an image of the arm's stamped with its trigger
  double l1 = 0, size = 1;
  double attack_success = 0;                                 // of the trigger on the arm's images
  double sym_l1 = std::numeric_limits<double>::quiet_NaN();  // the reverse trigger's
  double ratio = std::numeric_limits<double>::quiet_NaN();   // sym_l1 / l1
  double bound = 0;
  double score = 0;
  bool backdoored = false;  // score > 0: the reference code's decision
  int64_t top_k = 0;
  int steps = 0;  // optimisation steps spent, all arms and the symmetric check
  int64_t n_clean = 0;
  int64_t classes = 0;         // the model's
  std::vector<int64_t> input;  // the model's images: (C, H, W)
  double pixel_min = 0, pixel_max = 1;
  double screen_s = 0, seconds = 0;
};

// Runs K-Arm on `m` (a classifier of at least 2 classes taking images) with the clean
// images `clean` (raw pixels, NCHW, at least one).
KArmResult k_arm(const Model& m, const TensorData& clean, const KArmOptions& o);

// The score of a trigger of `size` (fraction of the image) against `bound`, with the
// symmetric check's `ratio` (NaN: none) against `ratio_bound`.
double k_arm_score(double size, double bound, double ratio, double ratio_bound);

nlohmann::json to_json(const KArmOptions& o);
nlohmann::json to_json(const KArmResult& r);

}  // namespace bdguard
