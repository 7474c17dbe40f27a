// Training: initialization, reproducibility, and a tiny BadNet on real Fashion-MNIST.
#include "bdguard/train.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "bdguard/badnets.h"
#include "bdguard/keras.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

// input (H, W, 1) -> Rescaling -> conv_1 (filters, 3x3 same, relu) -> pool_1 -> flatten
// -> output (classes, softmax): small enough to train in seconds.
Model tiny_model(int64_t side, int64_t filters, int64_t classes) {
  nlohmann::json layers = {{{"class_name", "InputLayer"},
                            {"name", "input"},
                            {"config", {{"batch_input_shape", {nullptr, side, side, 1}}}},
                            {"inbound_nodes", nlohmann::json::array()}},
                           {{"class_name", "Rescaling"},
                            {"name", "rescaling"},
                            {"config", {{"scale", 1.0 / 255}, {"offset", 0.0}}},
                            {"inbound_nodes", {{{"input", 0, 0, nlohmann::json::object()}}}}},
                           {{"class_name", "Conv2D"},
                            {"name", "conv_1"},
                            {"config",
                             {{"filters", filters},
                              {"kernel_size", {3, 3}},
                              {"padding", "same"},
                              {"activation", "relu"}}},
                            {"inbound_nodes", {{{"rescaling", 0, 0, nlohmann::json::object()}}}}},
                           {{"class_name", "MaxPooling2D"},
                            {"name", "pool_1"},
                            {"config", {{"pool_size", {2, 2}}}},
                            {"inbound_nodes", {{{"conv_1", 0, 0, nlohmann::json::object()}}}}},
                           {{"class_name", "Flatten"},
                            {"name", "flatten_1"},
                            {"config", nlohmann::json::object()},
                            {"inbound_nodes", {{{"pool_1", 0, 0, nlohmann::json::object()}}}}},
                           {{"class_name", "Dense"},
                            {"name", "output"},
                            {"config", {{"units", classes}, {"activation", "softmax"}}},
                            {"inbound_nodes", {{{"flatten_1", 0, 0, nlohmann::json::object()}}}}}};
  nlohmann::json doc = {{"class_name", "Functional"},
                        {"config",
                         {{"name", "tiny"},
                          {"layers", layers},
                          {"input_layers", {{"input", 0, 0}}},
                          {"output_layers", {{"output", 0, 0}}}}}};
  return keras_model_from_config(doc, "tiny");
}

TensorData random_data(int64_t n, int64_t side, int64_t classes, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  return {at::randint(0, 256, {n, 1, side, side}, g, at::kFloat),
          at::randint(0, classes, {n}, g, at::kLong)};
}

TEST(InitWeights, GlorotUniformKernelsZeroBiasesKerasNames) {
  Model m = tiny_model(8, 4, 3);
  init_weights(m, 1);
  const auto out = test::layer_params(m, "output");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(m.node(static_cast<size_t>(out[0])).source, "output/kernel:0");
  const at::Tensor kernel = test::keras_weight(m, "output", 0);
  // Dense (64, 3): limit sqrt(6 / (64 + 3)) = 0.2993.
  EXPECT_LE(kernel.abs().max().item<double>(), std::sqrt(6.0 / 67));
  EXPECT_GT(kernel.abs().max().item<double>(), 0.2);
  EXPECT_EQ(test::keras_weight(m, "output", 1).abs().sum().item<double>(), 0.0);
  // Conv2D (3, 3, 1, 4): fan_in 9, fan_out 36, limit sqrt(6 / 45) = 0.3651.
  EXPECT_LE(test::keras_weight(m, "conv_1", 0).abs().max().item<double>(), std::sqrt(6.0 / 45));
}

TEST(Rng, PermutationIsAPermutationAndSeeded) {
  auto p = Rng(3).permutation(50);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_EQ(p, Rng(3).permutation(50));
  EXPECT_NE(p, Rng(4).permutation(50));
}

// The weights of tiny_model(8, 4, 3) (initialised with seed 5) after training on `d`
// for `epochs` epochs of batch 16, shuffling seed 9, with `shift` augmentation.
std::vector<at::Tensor> trained_weights(const TensorData& d, int epochs, int shift) {
  Model m = tiny_model(8, 4, 3);
  init_weights(m, 5);
  TrainOptions o;
  o.epochs = epochs;
  o.batch = 16;
  o.seed = 9;
  o.shift = shift;
  train_model(m, d, o);
  return m.parameters();
}

TEST(TrainModel, SameSeedAndThreadsGiveTheSameWeights) {
  TensorData d = random_data(96, 8, 3, 11);
  auto first = trained_weights(d, 2, 0), second = trained_weights(d, 2, 0);
  for (size_t k = 0; k < first.size(); ++k) EXPECT_TRUE(second[k].equal(first[k])) << k;
}

TEST(TrainModel, ShiftAugmentationIsSeededAndChangesTraining) {
  TensorData d = random_data(96, 8, 3, 12);
  auto a = trained_weights(d, 1, 1), b = trained_weights(d, 1, 1), plain = trained_weights(d, 1, 0);
  bool differs = false;
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_TRUE(a[k].equal(b[k])) << k;
    differs = differs || !a[k].equal(plain[k]);
  }
  EXPECT_TRUE(differs);
  // The training data itself is left alone.
  EXPECT_TRUE(d.images.equal(random_data(96, 8, 3, 12).images));
}

TEST(TrainModel, LossFallsOnALearnableTask) {
  // Label 1: a bright left half; label 0: a bright right half; plus noise.
  TensorData d = random_data(256, 8, 2, 3);
  at::Tensor left = d.labels.to(at::kFloat).view({-1, 1, 1, 1});
  d.images = d.images * 0.3;
  d.images.narrow(3, 0, 4).add_(left * 180);
  d.images.narrow(3, 4, 4).add_((1 - left) * 180);
  Model m = tiny_model(8, 4, 2);
  init_weights(m, 1);
  TrainOptions o;
  o.epochs = 6;
  o.batch = 32;
  o.lr = 1e-2;
  auto h = train_model(m, d, o);
  ASSERT_EQ(h.size(), 6u);
  EXPECT_LT(h.back().loss, h.front().loss);
  EXPECT_GT(h.back().accuracy, 80.0);
}

// A tiny BadNet on 3,000 real Fashion-MNIST images, one epoch: the trigger must win far
// above chance (10 %), and the written .h5 must reload with identical outputs.
TEST(TinyBadNet, LearnsTheTriggerAndReloadsIdentically) {
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << kFashionMnistDir << " is absent (package dataset-fashion-mnist)";
  }
  at::set_num_threads(2);
  TrainTestData fm = read_fashion_mnist();
  TensorData train{fm.train.images.narrow(0, 0, 3000), fm.train.labels.narrow(0, 0, 3000)};
  TensorData test{fm.test.images.narrow(0, 0, 1000), fm.test.labels.narrow(0, 0, 1000)};
  Trigger trigger = make_trigger({"checkerboard", 4, "bottom-right", 1.0}, {1, 28, 28});
  TensorData poisoned = poison(train, trigger, {0.2, /*target=*/0, /*seed=*/1});
  Model m = tiny_model(28, 8, 10);
  init_weights(m, 1);
  TrainOptions o;
  o.epochs = 1;
  o.batch = 32;
  o.lr = 3e-3;
  train_model(m, poisoned, o);

  TensorData bd = poisoned_copies(test, trigger, 0);
  double asr = 0, accuracy = 0;
  {
    auto p = predict(m, bd);
    asr = 100.0 * static_cast<double>(std::count(p.begin(), p.end(), 0)) /
          static_cast<double>(p.size());
    auto c = predict(m, test);
    auto truth = test.label_vector();
    int64_t hits = 0;
    for (size_t i = 0; i < c.size(); ++i) hits += c[i] == truth[i];
    accuracy = 100.0 * static_cast<double>(hits) / static_cast<double>(c.size());
  }
  EXPECT_GT(asr, 60.0) << "chance is 10 %";
  EXPECT_GT(accuracy, 50.0);

  const std::string path = test::temp_dir() + "/tiny_badnet.h5";
  save_model(m, path);
  Model back = load_model(path);
  at::NoGradGuard no_grad;
  at::Tensor x = bd.images.narrow(0, 0, 200).to(at::kFloat);
  EXPECT_TRUE(back.forward(x).equal(m.forward(x)));
  EXPECT_EQ(predict(back, test), predict(m, test));
}

}  // namespace
}  // namespace bdguard
