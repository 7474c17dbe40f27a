// The triggers of BadNets (random patches and positions), Blended, SIG and WaNet, the
// all-to-all mapping and clean-label poisoning, on small hand-made images.
#include "bdguard/attack.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "test_util.h"

namespace bdguard {
namespace {

TriggerOptions method(const std::string& name) {
  TriggerOptions o;
  o.method = name;
  return o;
}

TEST(RandomPatch, BinaryPatchHoldsOnly0And255AndFollowsTheSeed) {
  TriggerOptions o{"random", 5, "0,0", 1.0};
  Trigger t = make_trigger(o, {1, 8, 8}, /*seed=*/3);
  at::Tensor p = t.pattern;
  EXPECT_EQ(p.eq(0).logical_or(p.eq(255)).sum().item<int64_t>(), 25);
  EXPECT_GT(p.eq(0).sum().item<int64_t>(), 0);
  EXPECT_GT(p.eq(255).sum().item<int64_t>(), 0);
  EXPECT_TRUE(make_trigger(o, {1, 8, 8}, 3).pattern.equal(p));
  EXPECT_FALSE(make_trigger(o, {1, 8, 8}, 4).pattern.equal(p));
}

TEST(RandomPatch, GreyPatchHoldsWholeGreyLevels) {
  Trigger t = make_trigger({"random-grey", 6, "0,0", 1.0}, {3, 8, 8}, /*seed=*/1);
  EXPECT_EQ(t.pattern.sizes(), (at::IntArrayRef{3, 6, 6}));
  EXPECT_TRUE(t.pattern.equal(t.pattern.round()));
  EXPECT_GE(t.pattern.min().item<float>(), 0.0f);
  EXPECT_LE(t.pattern.max().item<float>(), 255.0f);
  // More than two levels: not a binary patch.
  EXPECT_GT(std::get<0>(at::_unique(t.pattern)).numel(), 2);
}

TEST(RandomPosition, StaysInsideTheImageAndFollowsTheSeed) {
  TriggerOptions o{"square", 3, "random", 1.0};
  std::set<std::pair<int64_t, int64_t>> seen;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Trigger t = make_trigger(o, {1, 10, 12}, seed);
    EXPECT_GE(t.top, 0);
    EXPECT_LE(t.top, 7);  // 10 - 3
    EXPECT_GE(t.left, 0);
    EXPECT_LE(t.left, 9);  // 12 - 3
    seen.insert({t.top, t.left});
    Trigger again = make_trigger(o, {1, 10, 12}, seed);
    EXPECT_EQ(again.top, t.top);
    EXPECT_EQ(again.left, t.left);
  }
  EXPECT_GT(seen.size(), 5u);
}

TEST(Blended, MixesTheImageFileAtAlpha) {
  const std::string path = test::temp_dir() + "-grey200.png";
  write_png(path, at::full({1, 4, 4}, 200.0f));
  TriggerOptions o = method("blended");
  o.pattern = path;
  Trigger t = make_trigger(o, {1, 4, 4});
  at::Tensor x = apply_trigger(t, at::full({2, 1, 4, 4}, 100.0f));
  // 0.8 * 100 + 0.2 * 200 = 120 everywhere.
  EXPECT_TRUE(x.sub(120).abs().max().item<float>() < 1e-4f);
  std::filesystem::remove(path);
}

TEST(Blended, NoiseIsSeededWholeLevelsAndMixedAtAlpha) {
  TriggerOptions o = method("blended");
  o.alpha = 0.5;
  Trigger t = make_trigger(o, {1, 6, 6}, /*seed=*/9);
  EXPECT_TRUE(t.pattern.equal(t.pattern.round()));
  EXPECT_TRUE(make_trigger(o, {1, 6, 6}, 9).pattern.equal(t.pattern));
  EXPECT_FALSE(make_trigger(o, {1, 6, 6}, 10).pattern.equal(t.pattern));
  at::Tensor x = apply_trigger(t, at::zeros({1, 1, 6, 6}));
  EXPECT_FLOAT_EQ(x[0][0][2][3].item<float>(), 0.5f * t.pattern[0][2][3].item<float>());
}

TEST(Sig, AddsTheSinusoidAlongEachRowAndClamps) {
  // W = 24, f = 6: column j gets 20 sin(pi j / 2): 0, +20, 0, -20, 0, ...
  Trigger t = make_trigger(method("sig"), {1, 2, 24});
  at::Tensor x = apply_trigger(t, at::full({1, 1, 2, 24}, 100.0f));
  EXPECT_NEAR(x[0][0][0][0].item<float>(), 100.0f, 1e-4);
  EXPECT_NEAR(x[0][0][0][1].item<float>(), 120.0f, 1e-4);
  EXPECT_NEAR(x[0][0][1][1].item<float>(), 120.0f, 1e-4);  // every row the same
  EXPECT_NEAR(x[0][0][0][2].item<float>(), 100.0f, 1e-4);
  EXPECT_NEAR(x[0][0][0][3].item<float>(), 80.0f, 1e-4);
  at::Tensor bright = apply_trigger(t, at::full({1, 1, 2, 24}, 250.0f));
  EXPECT_FLOAT_EQ(bright[0][0][0][1].item<float>(), 255.0f);  // 270 clamped
  at::Tensor dark = apply_trigger(t, at::full({1, 1, 2, 24}, 5.0f));
  EXPECT_FLOAT_EQ(dark[0][0][0][3].item<float>(), 0.0f);  // -15 clamped
}

TEST(Wanet, IdentityGridReturnsTheImage) {
  at::Tensor img = at::arange(30, at::kFloat).view({1, 1, 5, 6});
  at::Tensor xs = at::linspace(-1, 1, 6).view({1, 6}).expand({5, 6});
  at::Tensor ys = at::linspace(-1, 1, 5).view({5, 1}).expand({5, 6});
  at::Tensor grid = at::stack({xs, ys}, 2).unsqueeze(0);
  EXPECT_LT(warp(img, grid).sub(img).abs().max().item<float>(), 1e-4f);
  // One pixel to the right in grid units (2 / (W - 1)): column j shows column j + 1.
  at::Tensor shifted = grid.clone();
  shifted.select(3, 0).add_(2.0 / 5);
  at::Tensor out = warp(img, shifted);
  EXPECT_NEAR(out[0][0][2][0].item<float>(), 13.0f, 1e-4);  // row 2, column 1
  EXPECT_NEAR(out[0][0][4][4].item<float>(), 29.0f, 1e-4);
  // Half a pixel down: the mean of rows 1 and 2.
  shifted = grid.clone();
  shifted.select(3, 1).add_(0.5 * 2.0 / 4);
  EXPECT_NEAR(warp(img, shifted)[0][0][1][3].item<float>(), (9.0f + 15.0f) / 2, 1e-4);
}

TEST(Wanet, GridIsTheNormalizedFieldScaledBySOverTheSize) {
  Trigger t = make_trigger(method("wanet"), {1, 28, 28}, /*seed=*/2);
  ASSERT_EQ(t.field.sizes(), (at::IntArrayRef{2, 4, 4}));
  EXPECT_NEAR(t.field.abs().mean().item<double>(), 1.0, 1e-5);
  ASSERT_EQ(t.grid.sizes(), (at::IntArrayRef{1, 28, 28, 2}));
  EXPECT_LE(t.grid.abs().max().item<float>(), 1.0f);
  // Bicubic upsampling with aligned corners keeps the field's corner: at the top-left
  // pixel the grid is (-1 + 0.5 f_x / 28, -1 + 0.5 f_y / 28), clamped to [-1, 1].
  for (int c = 0; c < 2; ++c) {
    const double expected = std::clamp(-1 + 0.5 * t.field[c][0][0].item<double>() / 28, -1.0, 1.0);
    EXPECT_NEAR(t.grid[0][0][0][c].item<double>(), expected, 1e-5);
  }
  // Near the identity everywhere: s * max|field| / 28, doubled for bicubic overshoot.
  at::Tensor xs = at::linspace(-1, 1, 28).view({1, 28}).expand({28, 28});
  const double bound = 2 * 0.5 * t.field.abs().max().item<double>() / 28;
  EXPECT_LE(t.grid[0].select(2, 0).sub(xs).abs().max().item<double>(), bound);
  EXPECT_TRUE(make_trigger(method("wanet"), {1, 28, 28}, 2).grid.equal(t.grid));
  EXPECT_FALSE(make_trigger(method("wanet"), {1, 28, 28}, 3).grid.equal(t.grid));
}

TEST(Wanet, BadParametersAreRefused) {
  TriggerOptions o = method("wanet");
  o.k = 1;
  EXPECT_THROW(make_trigger(o, {1, 28, 28}), InvalidArgument);
  o = method("wanet");
  o.s = 0;
  EXPECT_THROW(make_trigger(o, {1, 28, 28}), InvalidArgument);
}

TensorData labelled(int64_t n, int64_t classes) {
  at::Tensor labels = at::arange(n, at::kLong).remainder(classes);
  return {at::zeros({n, 1, 4, 4}, at::kByte), labels};
}

TEST(LabelMapping, AllToAllSendsYToYPlusOneModK) {
  LabelMap m{Mapping::kAllToAll, /*target=*/0, /*classes=*/10};
  EXPECT_EQ(m(0), 1);
  EXPECT_EQ(m(9), 0);
  EXPECT_TRUE(m.triggers(0));
  LabelMap one{Mapping::kAllToOne, 3, 10};
  EXPECT_EQ(one(7), 3);
  EXPECT_FALSE(one.triggers(3));
  EXPECT_EQ(parse_mapping("all-to-all"), Mapping::kAllToAll);
  EXPECT_THROW(parse_mapping("one-to-one"), InvalidArgument);
}

TEST(LabelMapping, AllToAllPoisonsEveryClassWithTheNextLabel) {
  TensorData d = labelled(100, 10);
  Trigger t = make_trigger({"square", 1, "0,0", 1.0}, {1, 4, 4});
  TensorData p = poison(d, t, {0.5, 0, 7, Mapping::kAllToAll, 10});
  at::Tensor stamped = p.images.select(1, 0).select(1, 0).select(1, 0).eq(255);
  EXPECT_EQ(stamped.sum().item<int64_t>(), 50);
  EXPECT_TRUE(
      p.labels.masked_select(stamped).equal(d.labels.masked_select(stamped).add(1).remainder(10)));
  EXPECT_GT(d.labels.masked_select(stamped).eq(0).sum().item<int64_t>(), 0);  // class 0 too
}

TEST(LabelMapping, AllToAllTestFilesHoldEveryImageMapped) {
  TensorData d = labelled(10, 5);
  Trigger t = make_trigger({"square", 1, "3,3", 1.0}, {1, 4, 4});
  AttackData a = make_attack_data(d, t, LabelMap{Mapping::kAllToAll, 0, 5}, /*seed=*/5);
  ASSERT_EQ(a.bd_test.size(), a.test.size());
  EXPECT_TRUE(a.bd_test.labels.equal(a.test.labels.add(1).remainder(5)));
  EXPECT_TRUE(a.bd_test.images.select(2, 3).select(2, 3).eq(255).all().item<bool>());
}

TEST(CleanLabel, PoisonsOnlyTargetImagesAndKeepsTheirLabels) {
  TensorData d = labelled(100, 10);  // ten images of class 4
  TriggerOptions o = method("sig");
  Trigger t = make_trigger(o, {1, 4, 4});
  PoisonOptions p{0.05, /*target=*/4, /*seed=*/1};
  p.clean_label = true;
  TensorData out = poison(d, t, p);
  at::Tensor changed = out.images.ne(0).flatten(1).any(1);
  EXPECT_EQ(changed.sum().item<int64_t>(), 5);
  EXPECT_TRUE(d.labels.masked_select(changed).eq(4).all().item<bool>());
  EXPECT_TRUE(out.labels.equal(d.labels));
  p.rate = 0.2;  // 20 images, but class 4 has 10
  EXPECT_THROW(poison(d, t, p), InvalidArgument);
}

TEST(WanetNoiseMode, WarpsCrossRatioTimesMoreImagesKeepingTheirLabels) {
  TensorData d = labelled(100, 10);
  d.images = at::arange(16, at::kFloat).mul(15).view({1, 1, 4, 4}).expand({100, 1, 4, 4}).clone();
  Trigger t = make_trigger(method("wanet"), {1, 4, 4}, /*seed=*/1);
  PoisonOptions p{0.1, /*target=*/0, /*seed=*/3};
  p.cross_ratio = 2;
  TensorData out = poison(d, t, p);
  at::Tensor changed = out.images.sub(d.images).abs().flatten(1).amax(1).gt(1e-3);
  at::Tensor relabelled = out.labels.ne(d.labels);
  EXPECT_EQ(changed.sum().item<int64_t>(), 30);  // 10 poisoned + 20 noise-mode
  // The 10 poisoned non-target images now say 0; the noise-mode ones keep their labels.
  EXPECT_EQ(relabelled.sum().item<int64_t>(), 10);
  EXPECT_TRUE(changed.masked_select(relabelled).all().item<bool>());
  EXPECT_TRUE(poison(d, t, p).images.equal(out.images));
}

TEST(AttackRecord, EveryMethodsOptionsRoundTrip) {
  for (const char* name : kAttackMethods) {
    AttackOptions a;
    a.trigger.method = name;
    a.mapping = Mapping::kAllToAll;
    a.trigger.alpha = 0.3;
    a.trigger.delta = 30;
    a.trigger.k = 5;
    a.clean_label = std::string(name) == "sig";
    a.cross_ratio = 1.5;
    const nlohmann::json doc = to_json(a);
    EXPECT_EQ(doc["attack"], name);
    EXPECT_EQ(to_json(attack_options_from_json(doc, "test")), doc) << name;
  }
  // A record from before other methods existed is a BadNets one, all-to-one.
  nlohmann::json old = to_json(AttackOptions{});
  old.erase("attack");
  old.erase("mapping");
  AttackOptions back = attack_options_from_json(old, "old");
  EXPECT_EQ(back.trigger.method, "badnets");
  EXPECT_EQ(back.mapping, Mapping::kAllToOne);
}

TEST(AttackSeedsTest, TheFirstFourStreamsAreUnchanged) {
  // splitmix64(4): BadNets models made before the trigger stream existed train identically.
  AttackSeeds s = attack_seeds(1);
  EXPECT_EQ(s.init, 0x6e73e372e2338acaULL);
  EXPECT_NE(s.trigger, attack_seeds(2).init);
}

}  // namespace
}  // namespace bdguard
