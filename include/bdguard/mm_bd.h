// MM-BD (Wang, Xiang, Miller, Kesidis, "MM-BD: Post-Training Detection of Backdoor
// Attacks with Arbitrary Backdoor Pattern Types Using a Maximum Margin Statistic",
// IEEE S&P 2024; reference code wanghangpsu/MM-BD univ_bd.py): is a model backdoored,
// without any data. A backdoor makes its target class reachable with a far larger
// margin than the others: for every class k, `starts` random inputs (uniform in the
// pixel range) are optimised to maximise logit_k - max_{j != k} logit_j, with Adam in
// the model's raw pixel space and the inputs clamped to the pixel range after each
// step; the class's statistic is the largest margin any start reached. A Gamma
// distribution is fitted (maximum likelihood, location 0) to the K - 1 statistics other
// than the largest, and the largest is tested against it: p = 1 - F(max)^K, the chance
// that the largest of K draws from the null is at least as large. The target is the
// class of the largest statistic. docs/detectors.md lists where this differs from the
// reference code.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "bdguard/model.h"

namespace bdguard {

struct MmBdOptions {
  int64_t starts = 30;  // random inputs per class (the reference's 30)
  int steps = 300;      // optimisation steps at most (the reference's NSTEP)
  // Adam's step, as a fraction of the pixel range (0.01: the reference's SGD rate on
  // [0, 1] images).
  double lr = 0.01;
  // A class stops once its loss changed by less than this, relatively, in one step
  // (the reference's rule).
  double tolerance = 1e-5;
  uint64_t seed = 0;
  // The raw pixel range of the inputs (before the model's Preprocess step); NaN:
  // [0, 255], pixels as image files store them (bdguard scan passes the clean data's
  // range when it has data, as Neural Cleanse decides it).
  double pixel_min = std::numeric_limits<double>::quiet_NaN();
  double pixel_max = std::numeric_limits<double>::quiet_NaN();
  int64_t class_batch = 16;  // classes optimised together in one forward pass
};

struct GammaFit {
  double shape = 0, scale = 0;  // k and theta: mean k * theta
  double loc = 0;               // the fit is of (x - loc)
};

struct MmBdResult {
  std::vector<double> margins;  // per class: the largest margin reached
  std::vector<int> steps;       // per class: optimisation steps taken
  int64_t target = -1;          // the class of the largest margin
  GammaFit null_fit;            // fitted to the other margins
  double p_value = 1;
  double pixel_min = 0, pixel_max = 1;
  double seconds = 0;
};

// Maximum-likelihood Gamma fit of `x - loc` (each > 0; at least 2 values, not all
// equal): the shape k solves ln k - digamma(k) = ln(mean) - mean(ln x) (Newton's
// method from Minka's closed-form start), the scale is mean / k.
GammaFit fit_gamma(const std::vector<double>& x, double loc = 0);
// The Gamma distribution's upper tail 1 - F(x) (the regularized upper incomplete gamma
// Q(k, (x - loc) / theta)), accurate far into the tail.
double gamma_sf(const GammaFit& g, double x);
// 1 - F^K for the upper tail `sf` = 1 - F of the largest of K draws, without the
// cancellation of computing F first.
double max_p_value(double sf, int64_t k);
double digamma(double x);

// Runs MM-BD on `m` (a classifier of at least 3 classes).
MmBdResult mm_bd(const Model& m, const MmBdOptions& o);

nlohmann::json to_json(const MmBdOptions& o);
nlohmann::json to_json(const MmBdResult& r);

}  // namespace bdguard
