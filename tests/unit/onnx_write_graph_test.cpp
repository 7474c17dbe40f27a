// A model built in memory written as a new ONNX file: bdguard's ONNX reader gives back
// the same network (the same predictions, probabilities within float rounding).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "bdguard/architectures.h"
#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "bdguard/model_io.h"
#include "bdguard/onnx.h"
#include "bdguard/train.h"
#include "test_util.h"

namespace bdguard {
namespace {

// `arch` trained 2 steps on 8 random images, so BatchNorm's running statistics moved.
Model trained(const std::string& arch, const Shape& shape) {
  Model m = keras_model_from_config(trainable_architecture(arch, shape, 10), arch);
  init_weights(m, 5);
  at::Generator g = at::detail::createCPUGenerator(11);
  TensorData d{at::randint(0, 256, {8, shape[0], shape[1], shape[2]}, g, at::kFloat),
               at::arange(8, at::kLong).remainder(10)};
  TrainOptions o;
  o.batch = 4;
  o.max_steps = 2;
  o.batch_norm_training = true;
  train_model(m, d, o);
  return m;
}

void expect_same_network(const std::string& arch, const Shape& shape) {
  SCOPED_TRACE(arch + " " + shape_str(shape));
  Model m = trained(arch, shape);
  const std::string path = test::temp_dir() + "/" + arch + ".onnx";
  save_model(m, path);  // a model built in memory, to a .onnx name: a new ONNX file
  Model back = load_model(path);
  EXPECT_EQ(back.format, ModelFormat::kOnnx);
  EXPECT_EQ(back.num_classes(), 10);
  at::Generator g = at::detail::createCPUGenerator(12);
  const at::Tensor x = at::randint(0, 256, {16, shape[0], shape[1], shape[2]}, g, at::kFloat);
  at::NoGradGuard no_grad;
  const at::Tensor p = m.probabilities(x), q = back.probabilities(x);
  // Keras' epsilon 1e-3 is a float attribute in ONNX: the last bits may differ.
  EXPECT_TRUE(at::allclose(p, q, /*rtol=*/1e-5, /*atol=*/1e-6)) << (p - q).abs().max();
  EXPECT_TRUE(p.argmax(1).equal(q.argmax(1)));
}

TEST(OnnxWriteGraph, SmallDeepIdIsTheSameNetwork) { expect_same_network("fmnist", {1, 28, 28}); }

TEST(OnnxWriteGraph, ResbnIsTheSameNetwork) {
  expect_same_network("resbn", {1, 28, 28});
  expect_same_network("resbn", {3, 32, 32});
}

TEST(OnnxWriteGraph, VggIsTheSameNetwork) { expect_same_network("vgg", {3, 32, 32}); }

TEST(OnnxWriteGraph, PreactResnet18IsTheSameNetwork) {
  expect_same_network("preact-resnet18", {3, 32, 32});
}

TEST(OnnxWriteGraph, WritesOpset13WithTheBatchAsN) {
  Model m = trained("resbn", {1, 28, 28});
  const std::string path = test::temp_dir() + "/m.onnx";
  save_model(m, path);
  Model back = load_model(path);
  EXPECT_EQ(back.input_dims(), (Dims{kBatch, 1, 28, 28}));
  // Every BatchNormalization kept its running statistics: the file's equal the model's.
  const int mean = back.find("stem_bn/moving_mean");
  ASSERT_GE(mean, 0);
  EXPECT_TRUE(back.node(static_cast<size_t>(mean))
                  .value.equal(m.node(static_cast<size_t>(m.find("stem_bn/moving_mean"))).value));
}

TEST(OnnxWriteGraph, ModelWithAPreprocessStepIsRefused) {
  Model m = trained("resbn", {1, 28, 28});
  m.preprocess.scale = 1.0 / 255;
  EXPECT_THROW(save_model(m, test::temp_dir() + "/m.onnx"), InvalidArgument);
}

}  // namespace
}  // namespace bdguard
