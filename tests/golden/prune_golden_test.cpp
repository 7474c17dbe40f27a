// The fast sweep on the lab's real DeepID BadNets equals the plain method at every
// step, on lab-format data built from the fixture faces.
#include <gtest/gtest.h>

#include "bdguard/keras.h"
#include "bdguard/prune.h"
#include "data/synthetic_faces.h"
#include "sweep_compare.h"
#include "test_util.h"

namespace bdguard {
namespace {

void expect_fast_equals_plain(const std::string& model_file) {
  const std::string dir = test::temp_dir();
  auto [valid, bd_valid] = synthetic::write_pair(test::csaw_dir(), dir, "valid", 100, 3);
  auto [test, bd_test] = synthetic::write_pair(test::csaw_dir(), dir, "test", 100, 9);
  Model m = load_model(model_file, {"deepid", ""});
  LabDataset c(valid, m.input_shape()), p(bd_valid, m.input_shape());
  LabDataset t(test, m.input_shape()), pt(bd_test, m.input_shape());
  SweepOptions o;
  o.batch = 64;
  SweepResult fast = run_sweep(m, {&c, &p, &t, &pt}, o);
  SweepResult plain = run_sweep_plain(m, {&c, &p, &t, &pt}, o);
  test::expect_same_sweep(m, fast, plain);
  EXPECT_GT(fast.timings.images_recomputed, 0);
  EXPECT_GT(fast.timings.images_skipped, 0);
  // Pruning must move the curve, or the comparison proves little.
  EXPECT_LT(fast.steps.back().valid_hits, fast.steps.front().valid_hits);
}

TEST(PruneGolden, FastSweepEqualsPlainOnTheWeightsOnlyBadNet) {
  BDGUARD_REQUIRE_CSAW();
  expect_fast_equals_plain(test::csaw_dir() + "/lab3_bd_weights.h5");
}

TEST(PruneGolden, FastSweepEqualsPlainOnTheFullPrunedModel) {
  // 45 conv_3 channels are zero already: pruning them changes no image.
  BDGUARD_REQUIRE_CSAW();
  expect_fast_equals_plain(test::csaw_dir() + "/model_X=2.h5");
}

}  // namespace
}  // namespace bdguard
