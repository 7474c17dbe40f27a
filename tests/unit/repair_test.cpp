// bdguard repair's rule on hand-made candidates, the proxy's triggers and ASR on a
// hand-built model, and bad input.
#include "bdguard/repair.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "keras_json.h"
#include "model_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

RepairCandidate candidate(const std::string& method, double accuracy, double proxy,
                          bool ok = true) {
  RepairCandidate c;
  c.method = method;
  c.ok = ok;
  c.clean_accuracy = accuracy;
  c.proxy_asr = proxy;
  return c;
}

TEST(RepairPick, LowestProxyAsrAmongThoseWithinTheDrop) {
  // The model: 90 %. b loses 5 points (out at 3); c has the lowest proxy ASR within.
  const std::vector<RepairCandidate> c = {candidate("a", 89, 40), candidate("b", 85, 1),
                                          candidate("c", 87.5, 10), candidate("d", 90, 30)};
  EXPECT_EQ(pick_repair(90, c, 3), 2);
  EXPECT_EQ(pick_repair(90, c, 5), 1);  // b is within 5 points
}

TEST(RepairPick, TiesGoToTheHigherAccuracyThenTheEarlierMethod) {
  const std::vector<RepairCandidate> c = {candidate("a", 88, 2), candidate("b", 89, 2),
                                          candidate("c", 89, 2)};
  EXPECT_EQ(pick_repair(90, c, 3), 1);
}

TEST(RepairPick, FailedCandidatesAndNoneWithinTheDropPickNothing) {
  const std::vector<RepairCandidate> c = {candidate("a", 90, 0, /*ok=*/false),
                                          candidate("b", 80, 0)};
  EXPECT_EQ(pick_repair(90, c, 3), -1);
  EXPECT_EQ(pick_repair(90, {}, 3), -1);
  // Exactly at the drop is within it.
  EXPECT_EQ(pick_repair(90, {candidate("a", 87, 5)}, 3), 0);
}

LabelTrigger trigger(int64_t label, double l1, bool refined = true) {
  LabelTrigger t;
  t.label = label;
  t.mask_l1 = l1;
  t.refined = refined;
  t.mask = at::zeros({4, 4});
  t.pattern = at::zeros({1, 4, 4});
  return t;
}

// run's repair stage: repair's rule on a comparison's rows (held-out accuracy, proxy ASR).
TEST(RepairFromCompare, PicksAmongRepairsMethodsByTheRule) {
  CompareResult c;
  c.baseline_valid.clean_accuracy = 90;
  c.baseline_proxy_asr = 95;
  c.proxy = {{"labels", {3}}, {"source", "hand-made"}, {"n_holdout", 100}};
  auto row = [](const std::string& method, double acc, double proxy) {
    CompareRow r;
    r.method = method;
    r.ok = true;
    r.valid.clean_accuracy = acc;
    r.proxy_asr = proxy;
    r.model = "models/" + method + ".h5";
    return r;
  };
  c.rows = {row("finetune", 88, 10), row("clp", 89.5, 30), row("anp", 89, 1),
            row("nc-unlearn", 85, 0)};
  const RepairPick p = repair_from_compare(c, 3);
  ASSERT_EQ(p.candidates.size(), 3u);  // anp is not one of repair's methods
  ASSERT_EQ(p.picked, 0);              // nc-unlearn lost 5 points
  EXPECT_EQ(p.model, "models/finetune.h5");
  EXPECT_EQ(p.labels, std::vector<int64_t>{3});
  EXPECT_NE(repair_reason(p).find("finetune: the lowest proxy ASR (10.00 %"), std::string::npos)
      << repair_reason(p);
  EXPECT_EQ(to_json(p)["method"], "finetune");
  // Without a proxy nothing is picked.
  c.baseline_proxy_asr.reset();
  EXPECT_EQ(repair_from_compare(c, 3).picked, -1);
}

TEST(ProxyTriggers, FlaggedLabelsElseTheSmallestRefinedMask) {
  NeuralCleanseResult nc;
  nc.labels = {trigger(0, 9), trigger(1, 2, /*refined=*/false), trigger(2, 4), trigger(3, 7)};
  auto t = proxy_triggers(nc);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0]->label, 2);  // label 1 is smaller but was not fully optimised
  nc.flagged = {3, 0};
  t = proxy_triggers(nc);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0]->label, 3);
  EXPECT_EQ(t[1]->label, 0);
}

// input 4x4x1 -> flatten -> dense (2): logit 1 is 10 x pixel (0, 0), logit 0 is 5: an
// image with pixel (0, 0) above 0.5 goes to label 1.
Model corner_model() {
  json cfg = test::functional({4, 4, 1},
                              {test::layer_json("Flatten", "flatten", json::object(), {"input"}),
                               test::layer_json("Dense", "out", {{"units", 2}}, {"flatten"})},
                              "out");
  Model m = keras_model_from_config(cfg, "corner");
  at::Tensor kernel = at::zeros({16, 2});
  kernel[0][1] = 10;
  at::Tensor bias = at::tensor({5.0f, 0.0f});
  test::set_keras_weights(m, "out", {kernel, bias});
  return m;
}

TEST(ProxyAsr, StampedImagesOfOtherLabelsPutInTheTriggersLabel) {
  Model m = corner_model();
  // Four clean images of label 0 (all black) and one of label 1.
  TensorData clean{at::zeros({5, 1, 4, 4}), at::tensor({0, 0, 0, 0, 1}, at::kLong)};
  clean.images[4][0][0][0] = 1;
  LabelTrigger corner = trigger(1, 1);
  corner.mask[0][0] = 1;
  corner.pattern[0][0][0] = 1;
  LabelTrigger elsewhere = trigger(1, 1);
  elsewhere.mask[3][3] = 1;
  elsewhere.pattern[0][3][3] = 1;
  EXPECT_DOUBLE_EQ(proxy_asr(m, {&corner}, clean, 2), 100.0);
  EXPECT_DOUBLE_EQ(proxy_asr(m, {&elsewhere}, clean, 2), 0.0);
  EXPECT_DOUBLE_EQ(proxy_asr(m, {&elsewhere, &corner}, clean, 2), 100.0);  // the largest
  EXPECT_DOUBLE_EQ(proxy_asr(m, {}, clean, 2), 0.0);
}

TEST(Repair, BadInputThrowsBeforeAnyWork) {
  Model m = corner_model();
  TensorData one{at::zeros({1, 1, 4, 4}), at::tensor({0}, at::kLong)};
  RepairOptions o;
  EXPECT_THROW(repair(m, one, o), InvalidArgument);  // fewer than 2 images
  TensorData two{at::zeros({2, 1, 4, 4}), at::tensor({0, 1}, at::kLong)};
  o.methods = {"no-such-method"};
  EXPECT_THROW(repair(m, two, o), InvalidArgument);
  o.methods = {"finetune"};
  o.max_drop = -1;
  EXPECT_THROW(repair(m, two, o), InvalidArgument);
  o.max_drop = 3;
  o.params["finetune"] = {{"holdout", 0.5}};  // would measure on other images
  EXPECT_THROW(repair(m, two, o), InvalidArgument);
}

TEST(Repair, AutoLeavesOutAnpNadIbauAndSau) {
  const auto a = repair_auto_methods();
  for (const char* m : {"anp", "nad", "i-bau", "sau"})
    EXPECT_EQ(std::count(a.begin(), a.end(), m), 0);
  EXPECT_EQ(std::count(a.begin(), a.end(), "nc-unlearn"), 1);
  EXPECT_EQ(std::count(a.begin(), a.end(), "finetune"), 1);
}

}  // namespace
}  // namespace bdguard
