// Neural Cleanse and STRIP on models built by hand, whose backdoor is known exactly: a
// bright pixel at the top-left corner sends every image to label 2; and the untargeted
// trigger on the tests' tiny all-to-all BadNet.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "bdguard/detect.h"
#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "bdguard/model_io.h"
#include "bdguard/strip.h"
#include "defend_fixture.h"
#include "keras_json.h"
#include "model_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

// input (6, 6, 1) -> flatten -> dense (classes, softmax). Each label but 2 reads its
// own band of pixels (as many for each); label 2 reads pixel (0, 0) alone, 10 times as
// strongly: a one-pixel trigger.
Model backdoored(int64_t classes) {
  json cfg = test::functional(
      {6, 6, 1},
      {test::layer_json("Flatten", "flatten", json::object(), {"input"}),
       test::layer_json("Dense", "out", {{"units", classes}, {"activation", "softmax"}},
                        {"flatten"})},
      "out");
  Model m = keras_model_from_config(cfg, "backdoored");
  at::Tensor kernel = at::zeros({36, classes});
  const int64_t per = 35 / (classes - 1);
  for (int64_t p = 1; p <= per * (classes - 1); ++p) {
    const int64_t band = (p - 1) / per;
    kernel[p][band < 2 ? band : band + 1] = 0.05;
  }
  kernel[0][2] = 0.5;
  test::set_keras_weights(m, "out", {kernel, at::zeros({classes})});
  return m;
}

// Clean images: pixel values 0..255, the trigger pixel dark.
TensorData clean_images(const Model& m, int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor x = (at::rand({n, 1, 6, 6}, gen) * 255).round();
  x.select(2, 0).select(2, 0).fill_(0);
  at::NoGradGuard no_grad;
  return {x, predict_labels(m, x)};
}

NeuralCleanseOptions fast() {
  NeuralCleanseOptions o;
  o.max_steps = 60;
  o.batches_per_step = 4;
  o.eval_images = 200;
  return o;
}

TEST(MadOutliers, FlagsOnlySmallNormsBeyondTwoMads) {
  // median 50, |deviations| 40 0 2 5 10 2 1 -> median 2, MAD 2.9652.
  const std::vector<double> norms{10, 50, 52, 55, 60, 48, 51};
  OutlierTest t = mad_outliers(norms, {}, 2.0);
  EXPECT_DOUBLE_EQ(t.median, 51);
  EXPECT_DOUBLE_EQ(t.mad, 1.4826 * 3);  // deviations from 51: 41 1 1 4 9 3 0 -> median 3
  EXPECT_NEAR(t.index[0], 41 / (1.4826 * 3), 1e-12);
  ASSERT_EQ(t.flagged, (std::vector<size_t>{0}));
  // The large norm (60, index 2.02) is above the median: never flagged.
  EXPECT_GT(t.index[4], 2.0);
}

TEST(MadOutliers, EqualNormsFlagNothing) {
  OutlierTest t = mad_outliers({5, 5, 5, 5}, {}, 2.0);
  EXPECT_EQ(t.mad, 0);
  EXPECT_TRUE(t.flagged.empty());
  EXPECT_EQ(t.index[0], 0);
}

TEST(MadOutliers, ReferenceSampleGivesMedianAndMad) {
  OutlierTest t = mad_outliers({1, 100, 10, 12, 14}, {2, 3, 4}, 2.0);
  EXPECT_DOUBLE_EQ(t.median, 12);
  EXPECT_DOUBLE_EQ(t.mad, 1.4826 * 2);
  EXPECT_EQ(t.flagged, (std::vector<size_t>{0}));
}

TEST(NeuralCleanse, FindsTheOnePixelTriggerAndItsLabel) {
  Model m = backdoored(5);
  NeuralCleanseResult r = neural_cleanse(m, clean_images(m, 256, 1), fast());
  ASSERT_EQ(r.flagged, (std::vector<int64_t>{2}));
  EXPECT_TRUE(r.backdoored);
  const LabelTrigger& t = r.labels[2];
  EXPECT_LT(t.mask_l1, 3.0);
  // The mask sits on the trigger pixel, and the pattern there is bright.
  EXPECT_EQ(t.mask.argmax().item<int64_t>(), 0);
  EXPECT_GT(t.pattern[0][0][0].item<double>(), 200);
  EXPECT_GE(t.attack_success, 0.95);
  EXPECT_EQ(r.pixel_max, 255);
}

TEST(NeuralCleanse, BatchedLabelsGiveTheResultsOfOneLabelAtATime) {
  Model m = backdoored(5);
  TensorData clean = clean_images(m, 256, 2);
  NeuralCleanseOptions o = fast();
  o.label_batch = 5;
  NeuralCleanseResult all = neural_cleanse(m, clean, o);
  o.label_batch = 1;
  NeuralCleanseResult one = neural_cleanse(m, clean, o);
  ASSERT_EQ(all.labels.size(), one.labels.size());
  for (size_t i = 0; i < all.labels.size(); ++i) {
    EXPECT_EQ(all.labels[i].steps, one.labels[i].steps) << i;
    EXPECT_NEAR(all.labels[i].mask_l1, one.labels[i].mask_l1, 1e-3 * one.labels[i].mask_l1) << i;
  }
  EXPECT_EQ(all.flagged, one.flagged);
}

TEST(NeuralCleanse, ScreeningGivesTheFullRunsVerdict) {
  Model m = backdoored(12);
  TensorData clean = clean_images(m, 256, 3);
  NeuralCleanseOptions o = fast();
  NeuralCleanseResult full = neural_cleanse(m, clean, o);
  o.full_below = 0;  // screen even 12 labels
  o.screen_steps = 3;
  o.refine = 3;
  o.reference = 5;
  NeuralCleanseResult screened = neural_cleanse(m, clean, o);
  EXPECT_TRUE(screened.screened);
  EXPECT_EQ(full.flagged, (std::vector<int64_t>{2}));
  EXPECT_EQ(screened.flagged, full.flagged);
  int64_t refined = 0, reference = 0;
  for (const auto& l : screened.labels) {
    refined += l.refined;
    reference += l.reference;
  }
  EXPECT_EQ(refined, 8);
  EXPECT_EQ(reference, 5);
}

TEST(NeuralCleanse, SameSeedSameTriggers) {
  Model m = backdoored(4);
  TensorData clean = clean_images(m, 128, 4);
  NeuralCleanseOptions o = fast();
  o.max_steps = 10;
  NeuralCleanseResult a = neural_cleanse(m, clean, o), b = neural_cleanse(m, clean, o);
  for (size_t i = 0; i < a.labels.size(); ++i) {
    EXPECT_TRUE(at::equal(a.labels[i].mask, b.labels[i].mask)) << i;
  }
}

TEST(NeuralCleanse, RefusesFewerImagesThanAMiniBatchAndUnknownLabels) {
  Model m = backdoored(4);
  EXPECT_THROW(neural_cleanse(m, clean_images(m, 16, 5), fast()), InvalidArgument);
  NeuralCleanseOptions o = fast();
  o.labels = {1, 4};
  EXPECT_THROW(neural_cleanse(m, clean_images(m, 64, 5), o), InvalidArgument);
}

TEST(NeuralCleanse, UntargetedTriggerIsTheAllToAllBadNetsSquare) {
  // The tiny all-to-all BadNet: a white 4x4 square at the bottom right sends label y to
  // y + 1, so no label has a trigger that sends every image to it; the untargeted
  // trigger, which sends images to any label but their own, is the square.
  BDGUARD_REQUIRE_TINY();
  const Model m = load_model(test::tiny_dir("all_to_all") + "/bd_net.h5");
  const TensorData clean = test::tiny_rows(m, "valid.h5", 500, "all_to_all");
  NeuralCleanseOptions o;
  o.attack_success = 0.75;
  o.eval_images = 500;
  const LabelTrigger t = untargeted_trigger(m, clean, o);
  EXPECT_EQ(t.label, kAnyOtherLabel);
  EXPECT_TRUE(t.reached);
  EXPECT_GE(t.attack_success, 0.7);
  const double corner = t.mask.narrow(0, 20, 8).narrow(1, 20, 8).sum().item<double>();
  EXPECT_GT(corner, 0.5 * t.mask_l1) << corner << " of " << t.mask_l1;
  // The same seed gives the same trigger.
  EXPECT_TRUE(at::equal(untargeted_trigger(m, clean, o).mask, t.mask));
}

TEST(NeuralCleanse, UntargetedTriggerRefusesLabelsThatAreNoClass) {
  Model m = backdoored(4);
  TensorData clean = clean_images(m, 64, 1);
  clean.labels[5] = 4;
  EXPECT_THROW(untargeted_trigger(m, clean, fast()), InvalidArgument);
}

TEST(Strip, TriggeredInputsHaveLowEntropy) {
  Model m = backdoored(5);
  TensorData valid = clean_images(m, 300, 6);
  Strip s(m, valid, StripOptions{});
  s.calibrate();
  TensorData test = clean_images(m, 200, 7);
  at::Tensor triggered = test.images.clone();
  triggered.select(2, 0).select(2, 0).fill_(255);
  const double clean_rate = flagged_rate(s, s.scores(test.images, kStripTestStream));
  const double bd_rate = flagged_rate(s, s.scores(triggered, kStripPoisonedStream));
  EXPECT_LT(clean_rate, 15.0);
  EXPECT_GT(bd_rate, 90.0);
}

TEST(Strip, ThresholdIsTheFrrQuantileOfValidationScores) {
  Model m = backdoored(5);
  StripOptions o;
  o.frr = 0.1;
  Strip s(m, clean_images(m, 200, 8), o);
  s.calibrate();
  // 10 % of the 200 validation images (20) score below the threshold, the 21st equals it.
  EXPECT_NEAR(flagged_rate(s, s.pool_scores()), 10.0, 0.5 + 1e-9);
  std::vector<double> sorted = s.pool_scores();
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(s.threshold(), sorted[20]);
}

TEST(Strip, ScoresDoNotDependOnBatching) {
  Model m = backdoored(5);
  TensorData valid = clean_images(m, 100, 9);
  StripOptions a, b;
  a.batch = 64;
  b.batch = 4096;
  Strip sa(m, valid, a), sb(m, valid, b);
  TensorData test = clean_images(m, 30, 10);
  auto x = sa.scores(test.images, kStripTestStream), y = sb.scores(test.images, kStripTestStream);
  ASSERT_EQ(x.size(), y.size());
  // Equal up to float32 rounding: the BLAS may sum a row's products in another order
  // in a batch of another size (OpenBLAS's small-matrix kernels on AVX-512 CPUs differ
  // in the last bits, about 1e-7 here).
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], y[i], 1e-5) << i;
}

}  // namespace
}  // namespace bdguard
