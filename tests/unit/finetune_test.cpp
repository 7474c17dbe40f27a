// Fine-tuning keeps pruned channels exactly zero and is reproducible.
#include "bdguard/finetune.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>

#include "bdguard/dataset.h"
#include "bdguard/keras.h"
#include "bdguard/prune.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

// input 8x8x1 -> conv_1 (4 filters, 3x3 same, relu) -> flatten -> output (3, softmax).
Model small_model() {
  auto in = [](const char* name) {
    return nlohmann::json::array({nlohmann::json::array({{name, 0, 0, nlohmann::json::object()}})});
  };
  nlohmann::json layers = {
      {{"class_name", "InputLayer"},
       {"name", "input"},
       {"config", {{"batch_input_shape", {nullptr, 8, 8, 1}}}},
       {"inbound_nodes", nlohmann::json::array()}},
      {{"class_name", "Conv2D"},
       {"name", "conv_1"},
       {"config",
        {{"filters", 4}, {"kernel_size", {3, 3}}, {"padding", "same"}, {"activation", "relu"}}},
       {"inbound_nodes", in("input")}},
      {{"class_name", "Flatten"},
       {"name", "flatten_1"},
       {"config", nlohmann::json::object()},
       {"inbound_nodes", in("conv_1")}},
      {{"class_name", "Dense"},
       {"name", "output"},
       {"config", {{"units", 3}, {"activation", "softmax"}}},
       {"inbound_nodes", in("flatten_1")}}};
  nlohmann::json doc = {{"class_name", "Functional"},
                        {"config",
                         {{"name", "small"},
                          {"layers", layers},
                          {"input_layers", {{"input", 0, 0}}},
                          {"output_layers", {{"output", 0, 0}}}}}};
  Model m = keras_model_from_config(doc, "small");
  init_weights(m, 3);
  test::prune(m, "conv_1", 1);
  test::prune(m, "conv_1", 3);
  return m;
}

// 80 images of random pixels 0..1 with random labels 0..2, as a lab file.
std::string clean_file() {
  at::Generator g = at::detail::createCPUGenerator(17);
  const std::string path = test::temp_dir() + "/clean.h5";
  write_lab_dataset(path, at::rand({80, 1, 8, 8}, g), at::randint(0, 3, {80}, g, at::kLong));
  return path;
}

FinetuneOptions options(uint64_t seed) {
  FinetuneOptions o;
  o.epochs = 3;
  o.lr = 1e-2;
  o.batch = 8;
  o.seed = seed;
  return o;
}

// True when every byte of the tensor is zero (+0.0f, not -0.0f).
bool all_bytes_zero(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  for (int64_t i = 0; i < c.numel() * 4; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

TEST(Finetune, PrunedChannelsStayExactlyZeroAndTheRestTrains) {
  Model m = small_model();
  const Model before = m.clone();
  LabDataset clean(clean_file(), m.input_shape());
  FinetuneResult r = finetune(m, {&clean, nullptr, nullptr, nullptr}, options(1));
  ASSERT_EQ(r.pruned.size(), 1u);
  EXPECT_EQ(r.pruned[0].layer, "conv_1");
  EXPECT_EQ(r.pruned[0].channels, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(r.n_train + r.n_holdout, 80);
  EXPECT_EQ(r.n_holdout, 16);  // 0.2 * 80

  EXPECT_EQ(test::zeros_of(m, "conv_1"), (std::vector<int64_t>{1, 3}));
  const at::Tensor kernel = test::keras_weight(m, "conv_1", 0);
  const at::Tensor bias = test::keras_weight(m, "conv_1", 1);
  const at::Tensor old = test::keras_weight(before, "conv_1", 0);
  for (int64_t c : {1, 3}) {
    EXPECT_TRUE(all_bytes_zero(kernel.select(3, c))) << c;
    EXPECT_TRUE(all_bytes_zero(bias.narrow(0, c, 1))) << c;
  }
  for (int64_t c : {0, 2}) {
    EXPECT_FALSE(kernel.select(3, c).equal(old.select(3, c))) << c;
  }
  EXPECT_GE(r.best_epoch, 1);
  EXPECT_LE(r.best_epoch, 3);
}

TEST(Finetune, SameSeedGivesTheSameWeights) {
  const std::string path = clean_file();
  std::vector<at::Tensor> weights[2];
  for (int run = 0; run < 2; ++run) {
    Model m = small_model();
    LabDataset clean(path, m.input_shape());
    finetune(m, {&clean, nullptr, nullptr, nullptr}, options(5));
    weights[run] = m.parameters();
  }
  for (size_t k = 0; k < weights[0].size(); ++k) {
    EXPECT_TRUE(weights[0][k].equal(weights[1][k])) << k;
  }
  Model other = small_model();
  LabDataset clean(path, other.input_shape());
  finetune(other, {&clean, nullptr, nullptr, nullptr}, options(6));
  EXPECT_FALSE(other.parameters()[0].equal(weights[0][0]));
}

TEST(Finetune, ZeroEpochsChangeNothing) {
  Model m = small_model();
  const Model before = m.clone();
  LabDataset clean(clean_file(), m.input_shape());
  FinetuneOptions o = options(1);
  o.epochs = 0;
  FinetuneResult r = finetune(m, {&clean, nullptr, nullptr, nullptr}, o);
  EXPECT_EQ(r.best_epoch, 0);
  EXPECT_DOUBLE_EQ(r.before.holdout_accuracy, r.after.holdout_accuracy);
  for (size_t k = 0; k < m.parameters().size(); ++k) {
    EXPECT_TRUE(m.parameters()[k].equal(before.parameters()[k]));
  }
}

TEST(Finetune, DivergenceInTheFirstEpochKeepsTheInputWeights) {
  Model m = small_model();
  const Model before = m.clone();
  LabDataset clean(clean_file(), m.input_shape());
  // An absurd learning rate without clipping: the weights overflow, the loss turns NaN.
  FinetuneOptions o = options(1);
  o.lr = 1e38;
  o.clip_grad_norm = 0;
  FinetuneResult r = finetune(m, {&clean, nullptr, nullptr, nullptr}, o);
  EXPECT_EQ(r.diverged_epoch, 1);
  EXPECT_EQ(r.best_epoch, 0);
  for (size_t k = 0; k < m.parameters().size(); ++k) {
    EXPECT_TRUE(m.parameters()[k].equal(before.parameters()[k])) << k;
  }
}

// A model whose first parameter is filled with `v`: which epoch's weights were kept.
Model marked(const Model& base, float v) {
  Model m = base.clone();
  m.node(static_cast<size_t>(m.parameter_nodes().front())).value.fill_(v);
  return m;
}

float mark_of(const Model& m) {
  return m.node(static_cast<size_t>(m.parameter_nodes().front())).value.flatten()[0].item<float>();
}

TEST(EpochKeeper, WithoutAProxyKeepsTheBestAccuracyAndTheEarlierOfATie) {
  const Model base = small_model();
  EpochKeeper k(false, 5);  // the slack means nothing without a proxy
  k.offer(1, 80, 90, marked(base, 1));
  k.offer(2, 85, 50, marked(base, 2));
  k.offer(3, 85, 0, marked(base, 3));
  k.offer(4, 84, 0, marked(base, 4));
  Model m = base.clone();
  EXPECT_EQ(k.restore(m), 2);
  EXPECT_EQ(mark_of(m), 2);
  EXPECT_EQ(k.accuracy(), 85);
}

TEST(EpochKeeper, WithAProxyKeepsTheLowestProxyAsrWithinTheSlackOfTheBestAccuracy) {
  const Model base = small_model();
  EpochKeeper k(true, 1);
  k.offer(1, 84.5, 10, marked(base, 1));  // within 1 point of the best (85): kept
  k.offer(2, 85, 40, marked(base, 2));
  k.offer(3, 83, 0, marked(base, 3));     // 2 points below: never kept
  k.offer(4, 84.5, 10, marked(base, 4));  // ties epoch 1: the earlier is kept
  Model m = base.clone();
  EXPECT_EQ(k.restore(m), 1);
  EXPECT_EQ(mark_of(m), 1);
  EXPECT_EQ(k.proxy_asr(), 10);
}

TEST(EpochKeeper, AnEpochLeftBehindByALaterBestAccuracyIsNotKept) {
  const Model base = small_model();
  EpochKeeper k(true, 1);
  k.offer(1, 80, 0, marked(base, 1));  // the best so far, then 6 points below the best
  k.offer(2, 86, 30, marked(base, 2));
  k.offer(3, 85.5, 20, marked(base, 3));
  Model m = base.clone();
  EXPECT_EQ(k.restore(m), 3);
  EXPECT_EQ(k.accuracy(), 85.5);
}

TEST(EpochKeeper, NothingOfferedLeavesTheModelAsItIs) {
  const Model base = small_model();
  EpochKeeper k(true, 1);
  Model m = marked(base, 7);
  EXPECT_EQ(k.restore(m), 0);
  EXPECT_EQ(mark_of(m), 7);
}

TEST(Train, GradientClippingBoundsEveryStep) {
  // One SGD step (no momentum effect on the first step) with lr 1 moves the weights by
  // exactly the clipped gradient: its global norm is at most the limit.
  Model m = small_model();
  const std::vector<at::Tensor> before = m.clone().parameters();
  at::Generator g = at::detail::createCPUGenerator(5);
  TensorData data{at::rand({8, 1, 8, 8}, g) * 255, at::randint(0, 3, {8}, g, at::kLong)};
  TrainOptions t;
  t.epochs = 1;
  t.batch = 8;
  t.lr = 1.0;
  t.optimizer = Optimizer::kSgd;
  t.clip_grad_norm = 0.5;
  train_model(m, data, t);
  double sum = 0;
  for (size_t k = 0; k < before.size(); ++k) {
    sum +=
        (m.parameters()[k].to(at::kDouble) - before[k].to(at::kDouble)).pow(2).sum().item<double>();
  }
  EXPECT_GT(std::sqrt(sum), 0.4);
  EXPECT_LE(std::sqrt(sum), 0.5 + 1e-5);
}

}  // namespace
}  // namespace bdguard
