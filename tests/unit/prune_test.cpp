// The pruning sweep: helpers by hand, and the fast sweep against the plain method.
#include "bdguard/prune.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "bdguard/sweep_files.h"
#include "keras_json.h"
#include "model_util.h"
#include "sweep_compare.h"
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

// DeepID's shape in miniature: conv -> [activation] -> pool -> (flatten -> dense) +
// (conv -> flatten -> dense) -> add -> relu -> dense softmax. `act` is the pruned
// layer's activation; `pad` the padding of the conv above the cut.
json mini_deepid(const std::string& act, const std::string& pad, bool batchnorm) {
  const auto& layer = test::layer_json;
  std::vector<json> layers;
  layers.push_back(layer("Conv2D", "conv_1",
                         {{"filters", 4}, {"kernel_size", {3, 3}}, {"activation", "relu"}},
                         {"input"}));
  layers.push_back(layer("Conv2D", "conv_2",
                         {{"filters", 6}, {"kernel_size", {3, 3}}, {"activation", act}},
                         {"conv_1"}));
  std::string below_pool = "conv_2";
  if (batchnorm) {
    layers.push_back(layer("BatchNormalization", "bn", json::object(), {"conv_2"}));
    below_pool = "bn";
  }
  layers.push_back(layer("MaxPooling2D", "pool", {{"pool_size", {2, 2}}}, {below_pool}));
  layers.push_back(layer("Flatten", "flatten_1", json::object(), {"pool"}));
  layers.push_back(layer("Dense", "fc_1", {{"units", 8}}, {"flatten_1"}));
  layers.push_back(
      layer("Conv2D", "conv_3",
            {{"filters", 5}, {"kernel_size", {2, 2}}, {"padding", pad}, {"activation", "relu"}},
            {"pool"}));
  layers.push_back(layer("Flatten", "flatten_2", json::object(), {"conv_3"}));
  layers.push_back(layer("Dense", "fc_2", {{"units", 8}}, {"flatten_2"}));
  layers.push_back(layer("Add", "add", json::object(), {"fc_1", "fc_2"}));
  layers.push_back(layer("Activation", "relu", {{"activation", "relu"}}, {"add"}));
  layers.push_back(layer("Dense", "output", {{"units", 7}, {"activation", "softmax"}}, {"relu"}));
  return test::functional({12, 10, 2}, layers, "output");
}

// conv -> pool -> flatten -> dense (`act`) -> dense (relu) -> dense softmax: the first
// Dense is linear in the cut, the second follows it alone.
json dense_chain(const std::string& act) {
  const auto& layer = test::layer_json;
  std::vector<json> layers;
  layers.push_back(layer("Conv2D", "conv_1",
                         {{"filters", 6}, {"kernel_size", {3, 3}}, {"activation", "relu"}},
                         {"input"}));
  layers.push_back(layer("MaxPooling2D", "pool", {{"pool_size", {2, 2}}}, {"conv_1"}));
  layers.push_back(layer("Flatten", "flatten", json::object(), {"pool"}));
  layers.push_back(layer("Dense", "fc_1", {{"units", 12}, {"activation", act}}, {"flatten"}));
  layers.push_back(layer("Dense", "fc_2", {{"units", 9}, {"activation", "relu"}}, {"fc_1"}));
  layers.push_back(layer("Dense", "output", {{"units", 7}, {"activation", "softmax"}}, {"fc_2"}));
  return test::functional({12, 10, 2}, layers, "output");
}

Model random_model(const nlohmann::json& config, uint64_t seed, double scale = 0.3) {
  Model m = keras_model_from_config(config, "test");
  m.preprocess.scale = 1.0 / 255;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const std::string& layer : test::keras_layers(m)) {
    std::vector<at::Tensor> values;
    for (int i : test::layer_params(m, layer)) {
      const Node& n = m.node(static_cast<size_t>(i));
      at::Tensor v = at::randn(test::keras_weight(m, layer, values.size()).sizes(), gen) * scale;
      if (n.source.find("moving_variance") != std::string::npos) v = v.abs() + 0.5;
      values.push_back(v);
    }
    test::set_keras_weights(m, layer, values);
  }
  return m;
}

// Clean data labelled with the model's own predictions (some flipped), poisoned data
// labelled with the target 0: accuracy and ASR both move as channels go.
std::pair<std::string, std::string> write_data(const Model& m, const std::string& dir,
                                               const std::string& stem, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor x = at::rand({150, 2, 12, 10}, gen) * 255;
  at::Tensor y = predict_labels(m, x);
  y.narrow(0, 0, 20).fill_(3);
  at::Tensor bx = at::rand({120, 2, 12, 10}, gen) * 255;
  bx.narrow(2, 0, 4).narrow(3, 0, 4).fill_(255);  // a trigger-like bright patch
  std::string clean = dir + "/" + stem + ".h5", bd = dir + "/bd_" + stem + ".h5";
  write_lab_dataset(clean, x, y);
  write_lab_dataset(bd, bx, at::zeros({120}, at::kLong));
  return {clean, bd};
}

// Runs the fast sweep and the plain method on data made for `m`; returns the fast one.
SweepResult expect_same_sweep(const Model& m, const std::string& dir, const std::string& layer) {
  auto [clean, bd] = write_data(m, dir, "valid", 1);
  auto [test, bd_test] = write_data(m, dir, "test", 2);
  LabDataset c(clean, m.input_shape()), p(bd, m.input_shape());
  LabDataset t(test, m.input_shape()), pt(bd_test, m.input_shape());
  SweepOptions o;
  o.layer = layer;
  o.batch = 64;
  SweepResult fast = run_sweep(m, {&c, &p, &t, &pt}, o);
  SweepResult plain = run_sweep_plain(m, {&c, &p, &t, &pt}, o);
  test::expect_same_sweep(m, fast, plain);
  bool accuracy_moved = false;
  for (const auto& s : fast.steps) accuracy_moved |= s.valid_hits != fast.steps[0].valid_hits;
  EXPECT_TRUE(accuracy_moved) << "the test data should make pruning change accuracy";
  return fast;
}

TEST(Prune, ZeroChannelsNeedKernelSliceAndBiasZero) {
  Model m = random_model(mini_deepid("relu", "valid", false), 1);
  EXPECT_TRUE(test::zeros_of(m, "conv_2").empty());
  test::prune(m, "conv_2", 2);
  test::prune(m, "conv_2", 5);
  EXPECT_EQ(test::zeros_of(m, "conv_2"), (std::vector<int64_t>{2, 5}));
  m.node(static_cast<size_t>(m.find("conv_2/bias"))).value[5] = 0.5;  // bias alone keeps 5 alive
  EXPECT_EQ(test::zeros_of(m, "conv_2"), (std::vector<int64_t>{2}));
}

TEST(Prune, OrderIsIncreasingMeanTiesByLowerIndex) {
  EXPECT_EQ(pruning_order({0.5, 0.1, 0.5, 0.0, 0.1}), (std::vector<int64_t>{3, 1, 4, 0, 2}));
}

TEST(Prune, DefaultLayerIsTheLastConvOnEveryPath) {
  // conv_3 sits on one branch only; conv_2 is on every path.
  Model m = random_model(mini_deepid("relu", "valid", false), 1);
  EXPECT_EQ(m.node(static_cast<size_t>(default_prune_target(m).node)).name, "conv_2");
}

TEST(Prune, LayerMustBeAConvOrALinearLayer) {
  Model m = random_model(mini_deepid("relu", "valid", false), 1);
  EXPECT_THROW(resolve_prune_target(m, "pool"), InvalidArgument);
  EXPECT_THROW(resolve_prune_target(m, "nope"), InvalidArgument);
  const ChannelUnit conv = resolve_prune_target(m, "conv_1");
  EXPECT_EQ(conv.node, m.find("conv_1"));
  EXPECT_EQ(conv.kind, ChannelKind::kOutput);
  EXPECT_EQ(conv.channels, 4);
  // A Dense's input features: fc_1 reads pool's 4 x 3 x 6 values.
  const ChannelUnit dense = resolve_prune_target(m, "fc_1");
  EXPECT_EQ(dense.kind, ChannelKind::kInput);
  EXPECT_EQ(dense.channels, 72);
}

TEST(Prune, DropThresholdUsesHitCounts) {
  SweepResult r;
  r.n_clean = 200;
  for (int hits : {200, 197, 196, 192}) {
    SweepStep s;
    s.step = static_cast<int>(r.steps.size());
    s.valid_hits = hits;
    s.valid_accuracy = percent(hits, 200);
    r.steps.push_back(s);
  }
  EXPECT_EQ(first_step_with_drop(r, 2), 2);  // 4 of 200 lost = 2.0 points
  EXPECT_EQ(first_step_with_drop(r, 4), 3);  // 8 of 200 = 4.0 points
  EXPECT_EQ(first_step_with_drop(r, 10), -1);
}

TEST(Prune, FastSweepEqualsPlainMethod) {
  expect_same_sweep(random_model(mini_deepid("relu", "valid", false), 3), test::temp_dir(), "");
}

TEST(Prune, FastSweepEqualsPlainWithSigmoidSamePaddingAndBatchNorm) {
  // A pruned sigmoid channel outputs 0.5, BatchNormalization maps it on; the conv above
  // the cut pads with zeros ('same').
  expect_same_sweep(random_model(mini_deepid("sigmoid", "same", true), 5, 0.5), test::temp_dir(),
                    "conv_2");
}

TEST(Prune, FastSweepEqualsPlainThroughAChainOfDenseLayers) {
  // fc_2 is kept up to date from the entries of fc_1's output that pruning changes.
  for (const char* act : {"relu", "linear"}) {
    SCOPED_TRACE(act);
    expect_same_sweep(random_model(dense_chain(act), 7, 0.5), test::temp_dir(), "");
  }
}

TEST(Prune, FastSweepEqualsPlainWhenTwoClassesTie) {
  // Classes 2 and 5 get identical weights: wherever one of them is on top, both are
  // (an exact tie), and the label must be the lower index, as argmax gives.
  Model m = random_model(mini_deepid("relu", "valid", false), 3);
  at::Tensor kernel = m.node(static_cast<size_t>(m.find("output/kernel"))).value;
  at::Tensor bias = m.node(static_cast<size_t>(m.find("output/bias"))).value;
  kernel.select(1, 5).copy_(kernel.select(1, 2));
  bias[5] = bias[2];
  bias[2] += 3.0;  // and make them win often
  bias[5] += 3.0;
  {
    // Where the BLAS computes two identical weight columns with different bits (OpenBLAS's
    // AVX-512 kernels handle columns by their position in a tile), no exact tie arises:
    // the plain method's label then rests on the last bit of each column, and the
    // sweep's re-run of near ties (a batch of other rows) need not reproduce it.
    at::NoGradGuard no_grad;
    Shape dims{64};
    const Shape s = m.input_shape();
    dims.insert(dims.end(), s.begin(), s.end());
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    at::Tensor z = m.run(at::rand(dims, gen) * 255, {m.logits_index()})[0];
    if (!z.select(1, 2).equal(z.select(1, 5))) {
      GTEST_SKIP() << "this CPU's BLAS gives identical weight columns different bits: "
                      "no exact ties to break";
    }
  }
  SweepResult r = expect_same_sweep(m, test::temp_dir(), "");
  EXPECT_GT(r.timings.ties_verified, 0);
}

TEST(Prune, FastSweepEqualsPlainOnAnEarlierLayer) {
  // conv_1's consumer (conv_2) is linear; everything above is re-run.
  expect_same_sweep(random_model(mini_deepid("relu", "valid", false), 5), test::temp_dir(),
                    "conv_1");
}

TEST(Prune, StopDropEndsTheSweepEarly) {
  Model m = random_model(mini_deepid("relu", "valid", false), 3);
  std::string dir = test::temp_dir();
  auto [clean, bd] = write_data(m, dir, "valid", 1);
  LabDataset c(clean, m.input_shape()), p(bd, m.input_shape());
  SweepOptions o;
  o.stop_drop = 1.0;
  SweepResult r = run_sweep(m, {&c, &p}, o);
  ASSERT_LT(r.steps.size(), static_cast<size_t>(r.channels + 1));
  EXPECT_GT(r.steps.front().valid_accuracy - r.steps.back().valid_accuracy, 1.0);
  for (size_t s = 0; s + 1 < r.steps.size(); ++s) {
    EXPECT_LE(r.steps.front().valid_accuracy - r.steps[s].valid_accuracy, 1.0);
  }
}

}  // namespace
}  // namespace bdguard
