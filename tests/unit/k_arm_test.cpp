// K-Arm on models built by hand whose answer is known: a bright pixel at the top-left
// corner sends every image to label 2 (a one-pixel trigger), or nothing does.
#include "bdguard/k_arm.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "keras_json.h"
#include "model_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

// input (8, 8, 1) -> flatten -> dense (5, softmax). Labels 0, 1, 3, 4 each read their
// own band of 15 pixels (1..60) with weight 0.05; label 2 reads none but has the bias
// 105, a little above a band's mean logit (0.05 * 15 * 127.5 = 95.6), so that it is
// among the top 2 of most images (the pre-screen's candidate). With `backdoor`, label 2
// also reads pixel 0 with weight 0.5: a 255 there adds 127.5, a one-pixel trigger.
Model hand_model(bool backdoor) {
  json cfg = test::functional(
      {8, 8, 1},
      {test::layer_json("Flatten", "flatten", json::object(), {"input"}),
       test::layer_json("Dense", "out", {{"units", 5}, {"activation", "softmax"}}, {"flatten"})},
      "out");
  Model m = keras_model_from_config(cfg, backdoor ? "backdoored" : "clean");
  at::Tensor kernel = at::zeros({64, 5});
  for (int64_t p = 1; p <= 60; ++p) {
    const int64_t band = (p - 1) / 15;
    kernel[p][band < 2 ? band : band + 1] = 0.05;
  }
  if (backdoor) kernel[0][2] = 0.5;
  at::Tensor bias = at::zeros({5});
  bias[2] = 105;
  test::set_keras_weights(m, "out", {kernel, bias});
  return m;
}

// Clean images: pixels 0..255, the trigger pixel dark.
TensorData clean_images(const Model& m, int64_t n) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  at::Tensor x = (at::rand({n, 1, 8, 8}, gen) * 255).round();
  x.select(2, 0).select(2, 0).fill_(0);
  at::NoGradGuard no_grad;
  return {x, predict_labels(m, x)};
}

KArmOptions fast() {
  KArmOptions o;
  o.steps = 300;
  o.batches_per_step = 2;
  o.seed = 1;
  return o;
}

TEST(KArmScore, IsTheLogOfBoundOverSizeLessTheSymmetricPenalty) {
  EXPECT_NEAR(k_arm_score(0.01, 0.02, NAN, 10), std::log(2.0), 1e-15);
  EXPECT_NEAR(k_arm_score(0.04, 0.02, NAN, 10), -std::log(2.0), 1e-15);
  // The reverse trigger only 5 times larger: ln 2 - ln(10 / 5) = 0.
  EXPECT_NEAR(k_arm_score(0.01, 0.02, 5, 10), 0, 1e-15);
  EXPECT_NEAR(k_arm_score(0.01, 0.02, 20, 10), std::log(2.0), 1e-15);  // no penalty
}

TEST(KArm, FindsTheOnePixelTriggerOfLabelTwo) {
  Model m = hand_model(true);
  KArmResult r = k_arm(m, clean_images(m, 200), fast());
  EXPECT_EQ(r.target, 2);
  EXPECT_EQ(r.source, -1);
  // Pixel (0, 0) at a fifth of 255 already sends every image to 2: the norm is below 1.
  EXPECT_LT(r.l1, 1);
  EXPECT_GT(r.score, 0);
  EXPECT_TRUE(r.backdoored);
  EXPECT_GE(r.attack_success, 0.95);  // 99% on the mini-batches, a little less on all 200
  EXPECT_EQ(r.mask.argmax().item<int64_t>(), 0);  // the mask's weight is on pixel (0, 0)
  ASSERT_FALSE(r.arms.empty());
  EXPECT_EQ(r.arms[0].target, 2);  // the pre-screen ranks it first
  EXPECT_EQ(r.mask.sizes(), (at::IntArrayRef{8, 8}));
  EXPECT_EQ(r.pattern.sizes(), (at::IntArrayRef{1, 8, 8}));
}

TEST(KArm, FindsNoSmallTriggerInTheCleanModel) {
  Model m = hand_model(false);
  KArmResult r = k_arm(m, clean_images(m, 200), fast());
  EXPECT_GT(r.size, 0.05);  // several pixels of the bands must darken or brighten
  EXPECT_LT(r.score, 0);
  EXPECT_FALSE(r.backdoored);
}

TEST(KArm, EveryUniversalArmGetsTheMinimumOfSteps) {
  Model m = hand_model(true);
  const TensorData clean = clean_images(m, 200);
  KArmOptions o = fast();
  o.min_steps = 0;
  const KArmResult free = k_arm(m, clean, o);
  o.min_steps = 40;
  const KArmResult r = k_arm(m, clean, o);
  int short_before = 0;
  for (const KArmArm& a : free.arms) short_before += a.source < 0 && a.steps < 40;
  EXPECT_GT(short_before, 0) << "the bandit alone leaves some arm short";
  ASSERT_EQ(r.arms.size(), free.arms.size());
  for (size_t i = 0; i < r.arms.size(); ++i) {
    const KArmArm& a = r.arms[i];
    // An arm that cannot reach the attack success stops on its own (K-Arm's rule).
    if (a.source < 0 && a.best_success >= 0.3) {
      EXPECT_GE(a.steps, 40) << a.target;
    }
    // The extra steps only shrink an arm's trigger.
    if (a.reached) {
      EXPECT_LE(a.size, free.arms[i].size) << a.target;
    }
  }
  EXPECT_EQ(r.target, 2);
}

TEST(KArm, SameSeedSameResult) {
  Model m = hand_model(true);
  const TensorData clean = clean_images(m, 100);
  KArmOptions o = fast();
  o.steps = 40;
  KArmResult a = k_arm(m, clean, o), b = k_arm(m, clean, o);
  EXPECT_EQ(a.score, b.score);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_TRUE(at::equal(a.mask, b.mask));
  ASSERT_EQ(a.arms.size(), b.arms.size());
  for (size_t i = 0; i < a.arms.size(); ++i) EXPECT_EQ(a.arms[i].steps, b.arms[i].steps);
}

TEST(KArm, RejectsOneClassAndDataOfTheWrongShape) {
  json cfg = test::functional(
      {8, 8, 1},
      {test::layer_json("Flatten", "flatten", json::object(), {"input"}),
       test::layer_json("Dense", "out", {{"units", 1}, {"activation", "sigmoid"}}, {"flatten"})},
      "out");
  Model one = keras_model_from_config(cfg, "one");
  const TensorData eight{at::zeros({4, 1, 8, 8}), at::zeros({4}, at::kLong)};
  EXPECT_THROW(k_arm(one, eight, fast()), InvalidArgument);
  Model m = hand_model(true);
  const TensorData six{at::zeros({4, 1, 6, 6}), at::zeros({4}, at::kLong)};
  EXPECT_THROW(k_arm(m, six, fast()), ShapeMismatch);
  const TensorData none{at::zeros({0, 1, 8, 8}), at::zeros({0}, at::kLong)};
  EXPECT_THROW(k_arm(m, none, fast()), InvalidArgument);
}

}  // namespace
}  // namespace bdguard
