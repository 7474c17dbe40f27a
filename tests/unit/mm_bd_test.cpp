// MM-BD: the Gamma fit and tail against hand-computed values, the p-value of a
// maximum, and the detector on linear models built by hand whose margins are known.
#include "bdguard/mm_bd.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "keras_json.h"
#include "model_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

TEST(Digamma, MatchesClosedForms) {
  const double euler = 0.5772156649015329;
  EXPECT_NEAR(digamma(1), -euler, 1e-13);
  EXPECT_NEAR(digamma(0.5), -euler - 2 * std::log(2.0), 1e-13);
  EXPECT_NEAR(digamma(3), 1.5 - euler, 1e-13);  // psi(n) = H(n-1) - gamma
}

TEST(GammaFit, MaximumLikelihoodOfOneTwoFour) {
  // mean 7/3, mean log = ln 2: ln k - psi(k) = ln(7/6); k = 3.40120058789985 (mpmath
  // findroot), theta = mean / k.
  GammaFit g = fit_gamma({1, 2, 4});
  EXPECT_NEAR(g.shape, 3.40120058789985, 1e-10);
  EXPECT_NEAR(g.scale, 0.686032262147205, 1e-10);
  EXPECT_NEAR(std::log(g.shape) - digamma(g.shape), std::log(7.0 / 6), 1e-12);
  EXPECT_EQ(g.loc, 0);
}

TEST(GammaFit, LocationShiftsTheValues) {
  GammaFit g = fit_gamma({-4, -3, -1}, /*loc=*/-5);  // the values 1, 2, 4 again
  EXPECT_NEAR(g.shape, 3.40120058789985, 1e-10);
  EXPECT_EQ(g.loc, -5);
}

TEST(GammaFit, RejectsTooFewEqualOrNonPositiveValues) {
  EXPECT_THROW(fit_gamma({2}), InvalidArgument);
  EXPECT_THROW(fit_gamma({2, 2, 2}), InvalidArgument);
  EXPECT_THROW(fit_gamma({1, 0, 3}), InvalidArgument);
}

TEST(GammaTail, MatchesClosedForms) {
  // k = 1: exponential, sf = exp(-x / theta); k = 2: sf = exp(-x)(1 + x); k = 1/2,
  // theta = 2: chi-square with 1 degree, sf = erfc(sqrt(x / 2)).
  EXPECT_NEAR(gamma_sf({1, 2, 0}, 3), std::exp(-1.5), 1e-14);
  EXPECT_NEAR(gamma_sf({2, 1, 0}, 1), 2 / std::exp(1.0), 1e-14);
  EXPECT_NEAR(gamma_sf({2, 1, 0}, 30) / (31 * std::exp(-30.0)), 1, 1e-12);  // far tail
  EXPECT_NEAR(gamma_sf({0.5, 2, 0}, 3), std::erfc(std::sqrt(1.5)), 1e-13);
  EXPECT_EQ(gamma_sf({2, 1, 0}, -1), 1);
  EXPECT_NEAR(gamma_sf({1, 1, 10}, 11), std::exp(-1.0), 1e-14);  // location 10
}

TEST(MaxPValue, IsOneMinusFToTheK) {
  EXPECT_NEAR(max_p_value(0.1, 10), 1 - std::pow(0.9, 10), 1e-15);  // 0.6513215599
  // Far in the tail, 1 - (1 - 1e-20)^10 = 1e-19, which 1 - F^K in doubles makes 0.
  EXPECT_NEAR(max_p_value(1e-20, 10) / 1e-19, 1, 1e-12);
  EXPECT_EQ(max_p_value(1, 10), 1);
  EXPECT_EQ(max_p_value(0, 10), 0);
}

// input (7, 7, 1) -> flatten -> dense (10 logits). Label c reads its own band of pixels
// 1..36 (sizes 2 3 4 5 6 2 3 4 5 2), weight 1 each: with the pixels in [0, 1] its
// largest margin is its band's size (own band 1, every other 0). The backdoored model's
// label 2 also reads pixel 0 with weight 20: a one-pixel trigger, margin 4 + 20.
Model linear_model(bool backdoor) {
  json cfg = test::functional(
      {7, 7, 1},
      {test::layer_json("Flatten", "flatten", json::object(), {"input"}),
       test::layer_json("Dense", "out", {{"units", 10}, {"activation", "linear"}}, {"flatten"})},
      "out");
  Model m = keras_model_from_config(cfg, backdoor ? "backdoored" : "clean");
  const int sizes[10] = {2, 3, 4, 5, 6, 2, 3, 4, 5, 2};
  at::Tensor kernel = at::zeros({49, 10});
  int64_t p = 1;
  for (int c = 0; c < 10; ++c) {
    for (int i = 0; i < sizes[c]; ++i) kernel[p++][c] = 1.0;
  }
  if (backdoor) kernel[0][2] = 20.0;
  test::set_keras_weights(m, "out", {kernel, at::zeros({10})});
  return m;
}

MmBdOptions fast() {
  MmBdOptions o;
  o.starts = 4;
  o.steps = 150;
  o.lr = 0.02;
  o.seed = 1;
  o.pixel_min = 0;
  o.pixel_max = 1;
  return o;
}

TEST(MmBd, TheOnePixelTriggersLabelHasTheSmallestPValue) {
  MmBdResult bd = mm_bd(linear_model(true), fast());
  EXPECT_EQ(bd.target, 2);
  EXPECT_NEAR(bd.margins[2], 24, 1e-3);
  EXPECT_NEAR(bd.margins[4], 6, 1e-3);
  EXPECT_NEAR(bd.margins[0], 2, 1e-3);
  EXPECT_LT(bd.p_value, 1e-6);
  MmBdResult clean = mm_bd(linear_model(false), fast());
  EXPECT_EQ(clean.target, 4);  // the widest band: margin 6 against 2 to 5
  EXPECT_NEAR(clean.margins[4], 6, 1e-3);
  EXPECT_GT(clean.p_value, 0.05);
  EXPECT_GT(clean.p_value, 1e4 * bd.p_value);
}

TEST(MmBd, ClassBatchesGiveTheResultsOfOneClassAtATime) {
  MmBdOptions o = fast();
  o.steps = 20;  // before convergence, so that any coupling would show
  o.class_batch = 10;
  MmBdResult all = mm_bd(linear_model(true), o);
  o.class_batch = 1;
  MmBdResult one = mm_bd(linear_model(true), o);
  for (size_t c = 0; c < 10; ++c) {
    EXPECT_NEAR(all.margins[c], one.margins[c], 1e-5) << c;
    EXPECT_EQ(all.steps[c], one.steps[c]) << c;
  }
}

TEST(MmBd, DefaultPixelRangeIsZeroTo255) {
  MmBdOptions o = fast();
  o.pixel_min = o.pixel_max = NAN;
  o.steps = 2;
  MmBdResult r = mm_bd(linear_model(false), o);
  EXPECT_EQ(r.pixel_min, 0);
  EXPECT_EQ(r.pixel_max, 255);
}

TEST(MmBd, RejectsAModelOfTwoClasses) {
  json cfg = test::functional(
      {2, 2, 1},
      {test::layer_json("Flatten", "flatten", json::object(), {"input"}),
       test::layer_json("Dense", "out", {{"units", 2}, {"activation", "softmax"}}, {"flatten"})},
      "out");
  Model m = keras_model_from_config(cfg, "two");
  EXPECT_THROW(mm_bd(m, fast()), InvalidArgument);
}

}  // namespace
}  // namespace bdguard
