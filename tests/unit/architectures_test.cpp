// The trainable architectures: each builds for its input shapes, has the documented
// size, trains a few steps, and reloads from its Keras file with equal predictions.
#include "bdguard/architectures.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "bdguard/train.h"
#include "test_util.h"

namespace bdguard {
namespace {

int64_t parameter_count(const Model& m) {
  int64_t n = 0;
  for (const at::Tensor& p : m.parameters()) n += p.numel();
  return n;
}

int64_t node_count(const Model& m, const char* type) {
  int64_t n = 0;
  for (size_t i = 0; i < m.size(); ++i) n += m.node(i).is_op(type) ? 1 : 0;
  return n;
}

Model built(const std::string& arch, const Shape& shape, int64_t classes = 10) {
  return keras_model_from_config(trainable_architecture(arch, shape, classes), arch);
}

// Trainable parameters (BatchNorm's gamma and beta included, its running statistics
// not), counted by hand in docs/architectures.md.
TEST(Architectures, ResbnSizes) {
  EXPECT_EQ(parameter_count(built("resbn", {1, 28, 28})), 77'754);
  EXPECT_EQ(parameter_count(built("resbn", {3, 32, 32})), 78'042);  // stem conv sees 3 channels
}

TEST(Architectures, VggSizes) {
  EXPECT_EQ(parameter_count(built("vgg", {1, 28, 28})), 584'618);  // flatten 3x3x128
  EXPECT_EQ(parameter_count(built("vgg", {3, 32, 32})), 814'570);  // flatten 4x4x128
}

TEST(Architectures, PreactResnet18HasBackdoorBenchsParameterCount) {
  Model m = built("preact-resnet18", {3, 32, 32});
  EXPECT_EQ(parameter_count(m), 11'171'146);  // PyTorch's count of PreActResNet18(10)
  EXPECT_EQ(node_count(m, "Conv"), 20);       // 1 + 8 blocks x 2 + 3 shortcuts
  EXPECT_EQ(node_count(m, "BatchNormalization"), 16);
  EXPECT_EQ(node_count(m, "Add"), 8);  // one per block
}

TEST(Architectures, ResidualArchitecturesHaveBatchNormAddAndGlobalPooling) {
  Model m = built("resbn", {1, 28, 28});
  EXPECT_EQ(node_count(m, "BatchNormalization"), 9);  // stem, 3 x 2, 2 projections
  EXPECT_EQ(node_count(m, "GlobalAveragePool"), 1);
  EXPECT_EQ(m.num_classes(), 10);
}

TEST(Architectures, UnknownNameAndWrongShapesAreRefused) {
  EXPECT_THROW(trainable_architecture("resnet50", {3, 32, 32}, 10), InvalidArgument);
  EXPECT_THROW(trainable_architecture("deepid", {1, 28, 28}, 10), ShapeMismatch);
  EXPECT_THROW(trainable_architecture("vgg", {2, 32, 32}, 10), ShapeMismatch);
  EXPECT_THROW(trainable_architecture("resbn", {1, 4, 4}, 10), ShapeMismatch);
  EXPECT_THROW(trainable_architecture("vgg", {1, 28, 28}, 1), InvalidArgument);
}

TensorData random_images(const Shape& shape, int64_t n, int64_t classes) {
  at::Generator g = at::detail::createCPUGenerator(7);
  return {at::randint(0, 256, {n, shape[0], shape[1], shape[2]}, g, at::kFloat),
          at::arange(n, at::kLong).remainder(classes)};
}

// Trains `steps` steps on 8 random images, saves, reloads: the same predictions, and
// the BatchNorm running statistics moved off their initial 0 and 1.
void train_save_reload(const std::string& arch, const Shape& shape, int64_t steps) {
  SCOPED_TRACE(arch + " " + shape_str(shape));
  Model m = built(arch, shape);
  init_weights(m, 3);
  const TensorData d = random_images(shape, 8, 10);
  TrainOptions o;
  o.batch = 4;
  o.epochs = 1;
  o.max_steps = steps;
  o.batch_norm_training = true;
  train_model(m, d, o);
  const int mean = m.find(arch == "preact-resnet18" ? "layer1_0_bn1/moving_mean"
                          : arch == "vgg"           ? "block1_bn1/moving_mean"
                                                    : "stem_bn/moving_mean");
  ASSERT_GE(mean, 0);
  EXPECT_GT(m.node(static_cast<size_t>(mean)).value.abs().sum().item<float>(), 0.0f);
  const std::string path = test::temp_dir() + "/" + arch + ".h5";
  save_keras_model(m, path);
  Model back = load_keras_model(path);
  EXPECT_EQ(parameter_count(back), parameter_count(m));
  at::NoGradGuard no_grad;
  EXPECT_TRUE(back.forward(d.images).equal(m.forward(d.images)));
}

TEST(Architectures, ResbnTrainsSavesAndReloads) {
  train_save_reload("resbn", {1, 28, 28}, 2);
  train_save_reload("resbn", {3, 32, 32}, 2);
}

TEST(Architectures, VggTrainsSavesAndReloads) {
  train_save_reload("vgg", {1, 28, 28}, 2);
  train_save_reload("vgg", {3, 32, 32}, 2);
}

TEST(Architectures, PreactResnet18TrainsSavesAndReloads) {
  train_save_reload("preact-resnet18", {3, 32, 32}, 2);
}

}  // namespace
}  // namespace bdguard
