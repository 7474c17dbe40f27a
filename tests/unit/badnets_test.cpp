// Triggers, poisoning and the attack's data split, on small hand-made data.
#include "bdguard/badnets.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "bdguard/prune.h"

namespace bdguard {
namespace {

TEST(Trigger, SquareSitsBottomRightWithAOnePixelMargin) {
  Trigger t = make_trigger({"square", 4, "bottom-right", 1.0}, {1, 28, 28});
  EXPECT_EQ(t.top, 23);  // 28 - 4 - 1
  EXPECT_EQ(t.left, 23);
  at::Tensor x = apply_trigger(t, at::zeros({1, 1, 28, 28}, at::kByte));
  EXPECT_EQ(x.sum().item<double>(), 16 * 255.0);
  EXPECT_EQ(x[0][0][23][23].item<float>(), 255.0f);
  EXPECT_EQ(x[0][0][22][23].item<float>(), 0.0f);
}

TEST(Trigger, CheckerboardAlternatesStartingWhite) {
  Trigger t = make_trigger({"checkerboard", 3, "0,0", 1.0}, {1, 8, 8});
  EXPECT_EQ(t.pattern[0][0][0].item<float>(), 255.0f);
  EXPECT_EQ(t.pattern[0][0][1].item<float>(), 0.0f);
  EXPECT_EQ(t.pattern[0][1][1].item<float>(), 255.0f);
  EXPECT_EQ(t.pattern.sum().item<double>(), 5 * 255.0);  // 5 of 9 cells white
}

TEST(Trigger, BlendMixesPixelAndTrigger) {
  Trigger t = make_trigger({"square", 1, "2,3", 0.5}, {1, 4, 4});
  at::Tensor x = apply_trigger(t, at::full({1, 1, 4, 4}, 100.0));
  EXPECT_FLOAT_EQ(x[0][0][2][3].item<float>(), 177.5f);  // 0.5 * 100 + 0.5 * 255
  EXPECT_FLOAT_EQ(x[0][0][0][0].item<float>(), 100.0f);
}

TEST(Trigger, PositionOutsideTheImageIsRefused) {
  EXPECT_THROW(make_trigger({"square", 4, "26,0", 1.0}, {1, 28, 28}), InvalidArgument);
  EXPECT_THROW(make_trigger({"square", 40, "center", 1.0}, {1, 28, 28}), InvalidArgument);
}

TensorData labelled(int64_t n, int64_t classes) {
  at::Tensor labels = at::arange(n, at::kLong).remainder(classes);
  return {at::zeros({n, 1, 4, 4}, at::kByte), labels};
}

TEST(Poison, ReplacesTheRateOfNonTargetImagesWithTriggeredTargetCopies) {
  TensorData d = labelled(100, 10);  // labels 0..9, ten of each
  Trigger t = make_trigger({"square", 1, "0,0", 1.0}, {1, 4, 4});
  TensorData p = poison(d, t, {0.1, /*target=*/0, /*seed=*/7});
  at::Tensor stamped = p.images.select(1, 0).select(1, 0).select(1, 0).eq(255);
  EXPECT_EQ(stamped.sum().item<int64_t>(), 10);
  // Every stamped image now says 0 and was not a 0 before.
  EXPECT_TRUE(p.labels.masked_select(stamped).eq(0).all().item<bool>());
  EXPECT_TRUE(d.labels.masked_select(stamped).ne(0).all().item<bool>());
  // Unstamped images keep their labels.
  EXPECT_TRUE(p.labels.masked_select(stamped.logical_not())
                  .equal(d.labels.masked_select(stamped.logical_not())));
}

TEST(Poison, SameSeedSameImages) {
  TensorData d = labelled(100, 10);
  Trigger t = make_trigger({"square", 1, "0,0", 1.0}, {1, 4, 4});
  EXPECT_TRUE(poison(d, t, {0.2, 3, 1}).images.equal(poison(d, t, {0.2, 3, 1}).images));
  EXPECT_FALSE(poison(d, t, {0.2, 3, 1}).images.equal(poison(d, t, {0.2, 3, 2}).images));
}

TEST(AttackData, ValidAndTestAreDisjointHalvesAndPoisonedFilesSkipTheTarget) {
  TensorData d = labelled(10, 5);  // labels 0 1 2 3 4 0 1 2 3 4
  d.images = at::arange(10, at::kFloat).view({10, 1, 1, 1}).expand({10, 1, 4, 4}).contiguous();
  Trigger t = make_trigger({"square", 1, "3,3", 1.0}, {1, 4, 4});
  AttackData a = make_attack_data(d, t, /*target=*/0, /*seed=*/5);
  ASSERT_EQ(a.valid.size(), 5);
  ASSERT_EQ(a.test.size(), 5);
  std::set<float> ids;
  for (const TensorData* part : {&a.valid, &a.test}) {
    for (int64_t i = 0; i < 5; ++i) ids.insert(part->images[i][0][0][0].item<float>());
  }
  EXPECT_EQ(ids.size(), 10u);  // every image once
  int64_t non_target = a.valid.labels.ne(0).sum().item<int64_t>();
  EXPECT_EQ(a.bd_valid.size(), non_target);
  EXPECT_TRUE(a.bd_valid.labels.eq(0).all().item<bool>());
  EXPECT_TRUE(a.bd_valid.images.select(2, 3).select(2, 3).eq(255).all().item<bool>());
}

TEST(SmallDeepId, HasTheLabsLayerNamesAndConv3AsThePruningTarget) {
  Model m = keras_model_from_config(small_deepid_architecture({1, 28, 28}, 10), "test");
  for (const char* name :
       {"conv_1", "pool_1", "conv_2", "pool_2", "conv_3", "pool_3", "flatten_1", "fc_1", "conv_4",
        "flatten_2", "fc_2", "add_1", "activation_1", "output"}) {
    EXPECT_GE(m.find(name), 0) << name;
  }
  EXPECT_EQ(m.num_classes(), 10);
  EXPECT_EQ(default_prune_target(m).node, m.find("conv_3"));
}

}  // namespace
}  // namespace bdguard
