// BatchNormalization in training: batch statistics, running statistics updated with
// the momentum, inference on the running ones, and what a Keras file keeps of them.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "bdguard/keras.h"
#include "bdguard/model.h"
#include "bdguard/ops.h"
#include "bdguard/train.h"
#include "hdf5/h5.h"
#include "test_util.h"

namespace bdguard {
namespace {

struct BnGraph {
  Model m;
  int bn = -1, mean = -1, var = -1;
  void train(bool on) {
    dynamic_cast<BatchNormOp&>(*m.node(static_cast<size_t>(bn)).op).set_training(on);
  }
};

// x -> BatchNormalization(epsilon 0, momentum 0.9), one channel: scale 2, B 3.
BnGraph bn_graph(const Dims& dims, float mean, float var) {
  BnGraph g;
  const int x = g.m.add_input("x", dims);
  const int scale = g.m.add_param("scale", at::full({1}, 2.0f));
  const int shift = g.m.add_param("B", at::full({1}, 3.0f));
  g.mean = g.m.add_param("mean", at::full({1}, mean), /*trainable=*/false);
  g.var = g.m.add_param("var", at::full({1}, var), /*trainable=*/false);
  g.bn =
      g.m.add_op("bn", std::make_unique<BatchNormOp>(0.0, 0.9), {x, scale, shift, g.mean, g.var});
  g.m.set_outputs({g.bn});
  return g;
}

float value(const Model& m, int node) {
  return m.node(static_cast<size_t>(node)).value.item<float>();
}

TEST(BatchNormTraining, NormalizesWithTheBatchsMeanAndBiasedVariance) {
  BnGraph g = bn_graph({kBatch, 1, 1, 2}, /*mean=*/0, /*var=*/0);
  g.train(true);
  // Batch values 0 0 2 2: mean 1, biased variance 1, so (x - 1) * 2 + 3.
  at::Tensor y = g.m.forward(at::tensor({0.0f, 0.0f, 2.0f, 2.0f}).view({2, 1, 1, 2}));
  EXPECT_TRUE(y.flatten().equal(at::tensor({1.0f, 1.0f, 5.0f, 5.0f})));
}

TEST(BatchNormTraining, UpdatesRunningStatisticsWithMomentumAndBesselsCorrectionFor4d) {
  BnGraph g = bn_graph({kBatch, 1, 1, 2}, 0, 0);
  g.train(true);
  g.m.forward(at::tensor({0.0f, 0.0f, 2.0f, 2.0f}).view({2, 1, 1, 2}));
  EXPECT_FLOAT_EQ(value(g.m, g.mean), 0.1f);  // 0 * 0.9 + 1 * 0.1
  // Unbiased variance 4 / 3 (4 values per channel): 0 * 0.9 + 4 / 3 * 0.1.
  EXPECT_FLOAT_EQ(value(g.m, g.var), 0.4f / 3);
}

TEST(BatchNormTraining, UsesTheBiasedVarianceForVectorsAsKerasDoes) {
  BnGraph g = bn_graph({kBatch, 1}, 0, 0);
  g.train(true);
  g.m.forward(at::tensor({0.0f, 0.0f, 2.0f, 2.0f}).view({4, 1}));
  EXPECT_FLOAT_EQ(value(g.m, g.var), 0.1f);  // biased variance 1, times 0.1
}

TEST(BatchNormTraining, InferenceAndNoGradUseTheRunningStatistics) {
  BnGraph g = bn_graph({kBatch, 1, 1, 2}, /*mean=*/1, /*var=*/4);
  const at::Tensor x = at::tensor({3.0f, 5.0f}).view({1, 1, 1, 2});
  // (3 - 1) / 2 * 2 + 3 = 5 and (5 - 1) / 2 * 2 + 3 = 7, in either mode without grad.
  EXPECT_TRUE(g.m.forward(x).flatten().equal(at::tensor({5.0f, 7.0f})));
  g.train(true);
  {
    at::NoGradGuard no_grad;
    EXPECT_TRUE(g.m.forward(x).flatten().equal(at::tensor({5.0f, 7.0f})));
  }
  EXPECT_FLOAT_EQ(value(g.m, g.mean), 1.0f);  // nothing updated
}

// Keras: input (2, 2, 1) -> BatchNormalization (defaults) -> Flatten -> Dense softmax.
Model keras_bn_model() {
  auto in = [](const char* name) {
    return nlohmann::json::array({nlohmann::json::array({{name, 0, 0, nlohmann::json::object()}})});
  };
  nlohmann::json layers = {{{"class_name", "InputLayer"},
                            {"name", "input"},
                            {"config", {{"batch_input_shape", {nullptr, 2, 2, 1}}}},
                            {"inbound_nodes", nlohmann::json::array()}},
                           {{"class_name", "BatchNormalization"},
                            {"name", "bn"},
                            {"config", {{"axis", {3}}}},
                            {"inbound_nodes", in("input")}},
                           {{"class_name", "Flatten"},
                            {"name", "flatten"},
                            {"config", nlohmann::json::object()},
                            {"inbound_nodes", in("bn")}},
                           {{"class_name", "Dense"},
                            {"name", "output"},
                            {"config", {{"units", 2}, {"activation", "softmax"}}},
                            {"inbound_nodes", in("flatten")}}};
  nlohmann::json doc = {{"class_name", "Functional"},
                        {"config",
                         {{"name", "bn"},
                          {"layers", layers},
                          {"input_layers", {{"input", 0, 0}}},
                          {"output_layers", {{"output", 0, 0}}}}}};
  Model m = keras_model_from_config(doc, "bn");
  init_weights(m, 1);
  return m;
}

// One epoch of two steps on four images, all 0, 2, 2 and 4: in the data's order, batch
// means 1 and 3, unbiased variances 8 / 7 and 8 / 7 (8 values per batch).
void train_one_epoch(Model& m) {
  TensorData d{at::cat({at::zeros({1, 1, 2, 2}), at::full({2, 1, 2, 2}, 2.0f),
                        at::full({1, 1, 2, 2}, 4.0f)}),
               at::tensor({int64_t{0}, int64_t{1}, int64_t{0}, int64_t{1}})};
  TrainOptions o;
  o.batch = 2;
  o.lr = 1e-3;
  o.batch_norm_training = true;
  train_model(m, d, o);
}

TEST(BatchNormTraining, TrainModelLeavesTheLayerInInferenceMode) {
  Model m = keras_bn_model();
  train_one_epoch(m);
  EXPECT_FALSE(
      dynamic_cast<const BatchNormOp&>(*m.node(static_cast<size_t>(m.find("bn"))).op).training());
}

// Keras' exponential average alone (momentum 0.99) would leave a moving mean near 0.04
// and a moving variance near 1 after two steps: mostly the initial (0, 1).
TEST(BatchNormTraining, TrainModelEndsWithTheAverageBatchStatisticsOfItsData) {
  Model m = keras_bn_model();
  train_one_epoch(m);
  EXPECT_FLOAT_EQ(value(m, m.find("bn/moving_mean")), 2.0f);  // (1 + 3) / 2
  EXPECT_FLOAT_EQ(value(m, m.find("bn/moving_variance")), 8.0f / 7);
}

TEST(BatchNormTraining, KerasFileKeepsRunningStatisticsInKerasOrder) {
  Model m = keras_bn_model();
  train_one_epoch(m);
  const std::string path = test::temp_dir() + "/bn.h5";
  save_keras_model(m, path);
  h5::File f = h5::File::open(path);
  EXPECT_EQ(h5::read_string_list_attr(f, "/model_weights/bn", "weight_names", 16),
            (std::vector<std::string>{"bn/gamma:0", "bn/beta:0", "bn/moving_mean:0",
                                      "bn/moving_variance:0"}));
  Model back = load_keras_model(path);
  EXPECT_FLOAT_EQ(value(back, back.find("bn/moving_mean")), 2.0f);
  EXPECT_FLOAT_EQ(value(back, back.find("bn/moving_variance")), 8.0f / 7);
  const at::Tensor x = at::rand({3, 1, 2, 2}) * 255;
  EXPECT_TRUE(back.forward(x).equal(m.forward(x)));
}

}  // namespace
}  // namespace bdguard
