// One small model per Keras layer, built from a JSON config with weights set by hand
// (Keras layout), and expected values small enough to check with pencil and paper.
// Inputs and outputs are written in Keras' channels-last order; `to_internal` and
// `to_keras` convert to and from the engine's NCHW image batches.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "bdguard/model.h"
#include "keras_json.h"
#include "model_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

using test::functional;
using test::keras_output_shape;
using test::keras_shape;
using test::layer_json;
using test::set_keras_weights;

// input -> one layer "l" of class `cls`.
Model single(const Shape& input, const std::string& cls, const json& config) {
  return keras_model_from_config(functional(input, {layer_json(cls, "l", config, {"input"})}, "l"),
                                 "test");
}

at::Tensor t(const std::vector<float>& v, at::IntArrayRef shape) {
  return at::tensor(v, at::kFloat).reshape(shape);
}

// One Keras image (H, W, C), row-major values, as an internal (1, C, H, W) batch.
at::Tensor to_internal(const std::vector<float>& hwc_values, const Shape& hwc) {
  return t(hwc_values, {1, hwc[0], hwc[1], hwc[2]}).permute({0, 3, 1, 2}).contiguous();
}

// The first output of a batch as a flat list in Keras (H, W, C) order.
std::vector<float> to_keras(const at::Tensor& out) {
  at::Tensor x = out.dim() == 4 ? out.permute({0, 2, 3, 1}) : out;
  x = x[0].contiguous().reshape({-1});
  return std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
}

std::vector<float> run_image(const Model& m, const std::vector<float>& hwc_values) {
  return to_keras(m.forward(to_internal(hwc_values, keras_shape(m.input_dims()))));
}

std::vector<float> run_vector(const Model& m, const std::vector<float>& v) {
  return to_keras(m.forward(t(v, {1, static_cast<int64_t>(v.size())})));
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want, float tol = 1e-6f) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

// The message of the E thrown by f(); a test failure if f throws nothing or another type.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "nothing thrown";
  return "";
}

// ---- Conv2D ----

TEST(Conv2DLayer, ValidPaddingSlidesKernelOverInput) {
  // 3x3 input 1..9, kernel [[1, 0], [0, 1]] (x[i][j] + x[i+1][j+1]), bias 0.5.
  Model m = single({3, 3, 1}, "Conv2D", {{"filters", 1}, {"kernel_size", {2, 2}}});
  set_keras_weights(m, "l", {t({1, 0, 0, 1}, {2, 2, 1, 1}), t({0.5}, {1})});
  EXPECT_EQ(keras_output_shape(m), (Shape{2, 2, 1}));
  EXPECT_EQ(run_image(m, {1, 2, 3, 4, 5, 6, 7, 8, 9}),
            (std::vector<float>{1 + 5 + 0.5, 2 + 6 + 0.5, 4 + 8 + 0.5, 5 + 9 + 0.5}));
}

TEST(Conv2DLayer, KernelIsHeightWidthInOut) {
  // 1x1 kernel (1, 1, in=2, out=2) = [[1, 2], [3, 4]] (rows: input channel), bias [100, 200].
  // Pixel (1, 10): out0 = 1*1 + 10*3 + 100 = 131, out1 = 1*2 + 10*4 + 200 = 242.
  Model m = single({1, 1, 2}, "Conv2D", {{"filters", 2}, {"kernel_size", 1}});
  set_keras_weights(m, "l", {t({1, 2, 3, 4}, {1, 1, 2, 2}), t({100, 200}, {2})});
  EXPECT_EQ(run_image(m, {1, 10}), (std::vector<float>{131, 242}));
}

TEST(Conv2DLayer, SameStride2PutsExtraPadBottomRight) {
  // 4x4 input 1..16, 3x3 kernel of ones, stride 2, 'same': output 2x2, total pad
  // (2-1)*2 + 3 - 4 = 1 per axis, all of it after (TensorFlow). Windows start at
  // rows/cols 0 and 2: [1,2,3;5,6,7;9,10,11] = 54, [3,4;7,8;11,12] = 45,
  // [9,10,11;13,14,15] = 72, [11,12;15,16] = 54.
  Model m = single({4, 4, 1}, "Conv2D",
                   {{"filters", 1}, {"kernel_size", 3}, {"strides", 2}, {"padding", "same"}});
  set_keras_weights(m, "l", {at::ones({3, 3, 1, 1}), at::zeros({1})});
  EXPECT_EQ(keras_output_shape(m), (Shape{2, 2, 1}));
  EXPECT_EQ(run_image(m, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}),
            (std::vector<float>{54, 45, 72, 54}));
}

TEST(Conv2DLayer, SamePaddingStride1KeepsSize) {
  // 3x3 input, 3x3 kernel of ones, 'same': the centre sees all 9 = 45, a corner 4.
  Model m = single({3, 3, 1}, "Conv2D", {{"filters", 1}, {"kernel_size", 3}, {"padding", "same"}});
  set_keras_weights(m, "l", {at::ones({3, 3, 1, 1}), at::zeros({1})});
  EXPECT_EQ(keras_output_shape(m), (Shape{3, 3, 1}));
  EXPECT_EQ(run_image(m, {1, 2, 3, 4, 5, 6, 7, 8, 9}),
            (std::vector<float>{12, 21, 16, 27, 45, 33, 24, 39, 28}));
}

TEST(Conv2DLayer, SameEvenKernelPadsAfter) {
  // Row [1, 2, 3], kernel 1x2 of ones, stride 1, 'same': the one pad column goes
  // right, so windows are [1, 2], [2, 3], [3, pad] -> 3, 5, 3 (pad before: 1, 3, 5).
  Model m =
      single({1, 3, 1}, "Conv2D", {{"filters", 1}, {"kernel_size", {1, 2}}, {"padding", "same"}});
  set_keras_weights(m, "l", {at::ones({1, 2, 1, 1}), at::zeros({1})});
  EXPECT_EQ(run_image(m, {1, 2, 3}), (std::vector<float>{3, 5, 3}));
}

TEST(Conv2DLayer, DilationSpreadsKernelTaps) {
  // 2x2 kernel of ones with dilation 2 covers the corners of a 3x3 input: 1+3+7+9 = 20.
  Model m =
      single({3, 3, 1}, "Conv2D", {{"filters", 1}, {"kernel_size", 2}, {"dilation_rate", {2, 2}}});
  set_keras_weights(m, "l", {at::ones({2, 2, 1, 1}), at::zeros({1})});
  EXPECT_EQ(keras_output_shape(m), (Shape{1, 1, 1}));
  EXPECT_EQ(run_image(m, {1, 2, 3, 4, 5, 6, 7, 8, 9}), (std::vector<float>{20}));
}

TEST(Conv2DLayer, WithoutBiasHasOnlyAKernel) {
  Model m = single({2, 2, 1}, "Conv2D", {{"filters", 1}, {"kernel_size", 2}, {"use_bias", false}});
  ASSERT_EQ(test::layer_params(m, "l").size(), 1u);
  set_keras_weights(m, "l", {t({1, 2, 3, 4}, {2, 2, 1, 1})});
  EXPECT_EQ(run_image(m, {1, 1, 1, 1}), (std::vector<float>{10}));
}

TEST(Conv2DLayer, GroupsSplitInputsAndFiltersInOrder) {
  // groups 2: filter 0 sees input channels 0-1, filter 1 sees 2-3. Kernel
  // (1, 1, in/groups = 2, 2) = [[1, 2], [3, 4]]; pixel (1, 10, 100, 1000):
  // out0 = 1*1 + 10*3 = 31, out1 = 100*2 + 1000*4 = 4200.
  Model m = single({1, 1, 4}, "Conv2D",
                   {{"filters", 2}, {"kernel_size", 1}, {"groups", 2}, {"use_bias", false}});
  set_keras_weights(m, "l", {t({1, 2, 3, 4}, {1, 1, 2, 2})});
  EXPECT_EQ(run_image(m, {1, 10, 100, 1000}), (std::vector<float>{31, 4200}));
}

TEST(Conv2DLayer, StrideAndDilationTogetherAreRefused) {
  EXPECT_THROW(single({5, 5, 1}, "Conv2D",
                      {{"filters", 1}, {"kernel_size", 2}, {"strides", 2}, {"dilation_rate", 2}}),
               UnsupportedLayer);
}

TEST(Conv2DLayer, ReluActivationClampsNegatives) {
  Model m =
      single({1, 2, 1}, "Conv2D", {{"filters", 1}, {"kernel_size", 1}, {"activation", "relu"}});
  set_keras_weights(m, "l", {t({1}, {1, 1, 1, 1}), t({-2}, {1})});
  EXPECT_EQ(run_image(m, {1, 5}), (std::vector<float>{0, 3}));
}

// ---- Pooling ----

TEST(MaxPooling2DLayer, ValidTakesMaxOfEachWindow) {
  Model m = single({4, 4, 1}, "MaxPooling2D", {{"pool_size", {2, 2}}});
  EXPECT_EQ(keras_output_shape(m), (Shape{2, 2, 1}));
  EXPECT_EQ(run_image(m, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}),
            (std::vector<float>{6, 8, 14, 16}));
}

TEST(MaxPooling2DLayer, SameNeverPicksAPaddedCell) {
  // 3x3 input -1..-9, pool 2 stride 2 'same': one pad row/col after. A zero pad would
  // win every window that touches it; TensorFlow ignores padded cells.
  Model m = single({3, 3, 1}, "MaxPooling2D", {{"pool_size", 2}, {"padding", "same"}});
  EXPECT_EQ(keras_output_shape(m), (Shape{2, 2, 1}));
  EXPECT_EQ(run_image(m, {-1, -2, -3, -4, -5, -6, -7, -8, -9}),
            (std::vector<float>{-1, -3, -7, -9}));
}

TEST(AveragePooling2DLayer, SameAveragesOnlyRealCells) {
  // 3x3 input 1..9, pool 2 stride 2 'same': (1+2+4+5)/4 = 3, (3+6)/2 = 4.5,
  // (7+8)/2 = 7.5, 9/1 = 9.
  Model m = single({3, 3, 1}, "AveragePooling2D", {{"pool_size", 2}, {"padding", "same"}});
  EXPECT_EQ(keras_output_shape(m), (Shape{2, 2, 1}));
  EXPECT_EQ(run_image(m, {1, 2, 3, 4, 5, 6, 7, 8, 9}), (std::vector<float>{3, 4.5, 7.5, 9}));
}

TEST(AveragePooling2DLayer, ValidAveragesEachWindow) {
  Model m = single({2, 4, 1}, "AveragePooling2D", {{"pool_size", 2}});
  EXPECT_EQ(run_image(m, {1, 2, 3, 4, 5, 6, 7, 8}), (std::vector<float>{3.5, 5.5}));
}

TEST(GlobalAveragePooling2DLayer, AveragesEachChannel) {
  // 2x2x2: channel 0 holds 1, 2, 3, 4 (mean 2.5), channel 1 holds 10, 20, 30, 40 (25).
  Model m = single({2, 2, 2}, "GlobalAveragePooling2D", json::object());
  EXPECT_EQ(keras_output_shape(m), (Shape{2}));
  EXPECT_EQ(run_image(m, {1, 10, 2, 20, 3, 30, 4, 40}), (std::vector<float>{2.5, 25}));
}

// ---- Flatten, Dense ----

TEST(FlattenLayer, FlattensInKerasHeightWidthChannelOrder) {
  // Value of (h, w, c) is 100h + 10w + c; Keras' Flatten lists them h-major, c-minor,
  // although the engine holds the image as (C, H, W).
  Model m = single({2, 2, 2}, "Flatten", json::object());
  EXPECT_EQ(keras_output_shape(m), (Shape{8}));
  std::vector<float> hwc = {0, 1, 10, 11, 100, 101, 110, 111};
  at::Tensor out = m.forward(to_internal(hwc, {2, 2, 2}));
  ASSERT_EQ(out.dim(), 2);
  EXPECT_EQ(to_keras(out), hwc);
}

TEST(DenseLayer, MultipliesVectorByKernelInOut) {
  // [1, 2] x [[1, 2, 3], [4, 5, 6]] + [0.5, 0, -1] = [9.5, 12, 14].
  Model m = single({2}, "Dense", {{"units", 3}});
  set_keras_weights(m, "l", {t({1, 2, 3, 4, 5, 6}, {2, 3}), t({0.5, 0, -1}, {3})});
  EXPECT_EQ(keras_output_shape(m), (Shape{3}));
  EXPECT_EQ(run_vector(m, {1, 2}), (std::vector<float>{9.5, 12, 14}));
}

TEST(DenseLayer, OnAnImageActsOnTheChannelAxis) {
  // Keras applies Dense to the last axis: each pixel (a, b) becomes a + 10b.
  Model m = single({1, 2, 2}, "Dense", {{"units", 1}, {"use_bias", false}});
  set_keras_weights(m, "l", {t({1, 10}, {2, 1})});
  EXPECT_EQ(keras_output_shape(m), (Shape{1, 2, 1}));
  EXPECT_EQ(run_image(m, {1, 2, 3, 4}), (std::vector<float>{21, 43}));
}

TEST(DenseLayer, SoftmaxActivationNormalizes) {
  // Logits [0, ln 3] -> [1/4, 3/4].
  Model m = single({1}, "Dense", {{"units", 2}, {"activation", "softmax"}});
  set_keras_weights(m, "l", {t({0, std::log(3.0f)}, {1, 2}), at::zeros({2})});
  expect_near(run_vector(m, {1}), {0.25, 0.75});
}

// ---- BatchNormalization ----

TEST(BatchNormalizationLayer, UsesGammaBetaMovingStatsAndEpsilon) {
  // gamma [2, 1], beta [1, 0], mean [1, 2], var [3.5, 0.5], epsilon 0.5:
  // channel 0: (5 - 1) / sqrt(4) * 2 + 1 = 5; channel 1: (4 - 2) / sqrt(1) * 1 + 0 = 2.
  Model m = single({2}, "BatchNormalization", {{"epsilon", 0.5}, {"axis", -1}});
  set_keras_weights(m, "l", {t({2, 1}, {2}), t({1, 0}, {2}), t({1, 2}, {2}), t({3.5, 0.5}, {2})});
  EXPECT_EQ(run_vector(m, {5, 4}), (std::vector<float>{5, 2}));
}

TEST(BatchNormalizationLayer, NormalizesEachChannelOfAnImage) {
  // Same parameters, pixels (5, 4) and (3, 2.5): (3 - 1) / 2 * 2 + 1 = 3, (2.5 - 2) / 1 = 0.5.
  Model m = single({1, 2, 2}, "BatchNormalization", {{"epsilon", 0.5}, {"axis", 3}});
  set_keras_weights(m, "l", {t({2, 1}, {2}), t({1, 0}, {2}), t({1, 2}, {2}), t({3.5, 0.5}, {2})});
  EXPECT_EQ(run_image(m, {5, 4, 3, 2.5}), (std::vector<float>{5, 2, 3, 0.5}));
}

TEST(BatchNormalizationLayer, WithoutScaleOrCenterHasOnlyMovingStats) {
  // (x - 1) / sqrt(3 + 1): x = 5 -> 4 / 2 = 2.
  Model m =
      single({1}, "BatchNormalization", {{"epsilon", 1.0}, {"scale", false}, {"center", false}});
  ASSERT_EQ(test::layer_params(m, "l").size(), 2u);
  set_keras_weights(m, "l", {t({1}, {1}), t({3}, {1})});
  EXPECT_EQ(run_vector(m, {5}), (std::vector<float>{2}));
}

// ---- Add, Concatenate ----

TEST(AddLayer, SumsItsInputs) {
  // x + relu(x) for x = [-1, 2] is [-1, 4].
  json cfg = functional({2},
                        {layer_json("Activation", "a", {{"activation", "linear"}}, {"input"}),
                         layer_json("ReLU", "b", json::object(), {"input"}),
                         layer_json("Add", "sum", json::object(), {"a", "b"})},
                        "sum");
  Model m = keras_model_from_config(cfg, "test");
  EXPECT_EQ(run_vector(m, {-1, 2}), (std::vector<float>{-1, 4}));
}

json concat_model(int axis) {
  // Branch a: the input; branch b: a 1x1 convolution multiplying by 10.
  return functional(
      {1, 2, 1},
      {layer_json("Activation", "a", {{"activation", "linear"}}, {"input"}),
       layer_json("Conv2D", "b", {{"filters", 1}, {"kernel_size", 1}, {"use_bias", false}},
                  {"input"}),
       layer_json("Concatenate", "cat", {{"axis", axis}}, {"a", "b"})},
      "cat");
}

TEST(ConcatenateLayer, AxisMinusOneJoinsChannels) {
  Model m = keras_model_from_config(concat_model(-1), "test");
  set_keras_weights(m, "b", {t({10}, {1, 1, 1, 1})});
  EXPECT_EQ(keras_output_shape(m), (Shape{1, 2, 2}));
  EXPECT_EQ(run_image(m, {1, 2}), (std::vector<float>{1, 10, 2, 20}));
}

TEST(ConcatenateLayer, AxisTwoJoinsWidths) {
  Model m = keras_model_from_config(concat_model(2), "test");
  set_keras_weights(m, "b", {t({10}, {1, 1, 1, 1})});
  EXPECT_EQ(keras_output_shape(m), (Shape{1, 4, 1}));
  EXPECT_EQ(run_image(m, {1, 2}), (std::vector<float>{1, 2, 10, 20}));
}

// ---- Activation, ReLU, Dropout, ZeroPadding2D ----

TEST(ActivationLayer, Relu) {
  Model m = single({3}, "Activation", {{"activation", "relu"}});
  EXPECT_EQ(run_vector(m, {-1, 0, 2}), (std::vector<float>{0, 0, 2}));
}

TEST(ActivationLayer, SoftmaxOfZeroAndLn3IsQuarterAndThreeQuarters) {
  Model m = single({2}, "Activation", {{"activation", "softmax"}});
  expect_near(run_vector(m, {0, std::log(3.0f)}), {0.25, 0.75});
}

TEST(ActivationLayer, SoftmaxOnAnImageNormalizesOverChannels) {
  // Each pixel on its own: (0, ln 3) -> (1/4, 3/4), (5, 5) -> (1/2, 1/2).
  Model m = single({1, 2, 2}, "Activation", {{"activation", "softmax"}});
  expect_near(run_image(m, {0, std::log(3.0f), 5, 5}), {0.25, 0.75, 0.5, 0.5});
}

TEST(ActivationLayer, Sigmoid) {
  // sigmoid(0) = 1/2, sigmoid(ln 3) = 3 / (3 + 1) = 3/4.
  Model m = single({2}, "Activation", {{"activation", "sigmoid"}});
  expect_near(run_vector(m, {0, std::log(3.0f)}), {0.5, 0.75});
}

TEST(ActivationLayer, Tanh) {
  // tanh(ln 3) = (9 - 1) / (9 + 1) = 0.8.
  Model m = single({2}, "Activation", {{"activation", "tanh"}});
  expect_near(run_vector(m, {0, std::log(3.0f)}), {0, 0.8});
}

TEST(ActivationLayer, UnknownActivationIsRefused) {
  std::string msg = message_of<UnsupportedLayer>([] {
    single({2}, "Activation", {{"activation", "swishy"}});
  });
  EXPECT_NE(msg.find("swishy"), std::string::npos) << msg;
}

TEST(ReLULayer, MaxValueNegativeSlopeAndThreshold) {
  // x >= 1: x, capped at 6; below: 0.5 * (x - 1). -2 -> -1.5, 0.5 -> -0.25.
  Model m = single({5}, "ReLU", {{"max_value", 6.0}, {"negative_slope", 0.5}, {"threshold", 1.0}});
  EXPECT_EQ(run_vector(m, {-2, 0.5, 1.5, 3, 10}), (std::vector<float>{-1.5, -0.25, 1.5, 3, 6}));
}

TEST(ReLULayer, MaxValueAloneIsRelu6) {
  Model m = single({3}, "ReLU", {{"max_value", 6.0}});
  EXPECT_EQ(run_vector(m, {-1, 3, 7}), (std::vector<float>{0, 3, 6}));
}

TEST(ReLULayer, ThresholdAloneZeroesBelowIt) {
  Model m = single({3}, "ReLU", {{"threshold", 2.0}});
  EXPECT_EQ(run_vector(m, {1, 2.5, 3}), (std::vector<float>{0, 2.5, 3}));
}

TEST(ReLULayer, InputEqualToThresholdGivesZero) {
  // Keras keeps x only where x > threshold (strictly): 2 -> 0, not 2.
  Model m = single({1}, "ReLU", {{"threshold", 2.0}});
  EXPECT_EQ(run_vector(m, {2}), (std::vector<float>{0}));
}

TEST(ReLULayer, NegativeSlopeAloneIsLeaky) {
  Model m = single({3}, "ReLU", {{"negative_slope", 0.25}});
  EXPECT_EQ(run_vector(m, {-4, 0, 4}), (std::vector<float>{-1, 0, 4}));
}

TEST(DropoutLayer, IsIdentityAtInference) {
  Model m = single({3}, "Dropout", {{"rate", 0.5}});
  EXPECT_EQ(run_vector(m, {1, 2, 3}), (std::vector<float>{1, 2, 3}));
}

TEST(ZeroPadding2DLayer, PadsTopBottomLeftRight) {
  // ((top 1, bottom 0), (left 0, right 2)) around a single 5.
  Model m = single({1, 1, 1}, "ZeroPadding2D", {{"padding", {{1, 0}, {0, 2}}}});
  EXPECT_EQ(keras_output_shape(m), (Shape{2, 3, 1}));
  EXPECT_EQ(run_image(m, {5}), (std::vector<float>{0, 0, 0, 5, 0, 0}));
}

TEST(ZeroPadding2DLayer, IntPadsEverySide) {
  Model m = single({1, 1, 1}, "ZeroPadding2D", {{"padding", 1}});
  EXPECT_EQ(keras_output_shape(m), (Shape{3, 3, 1}));
  EXPECT_EQ(run_image(m, {5}), (std::vector<float>{0, 0, 0, 0, 5, 0, 0, 0, 0}));
}

// ---- Sequential configs ----

// Dense(1) with kernel [[2], [3]] and bias 1: [1, 1] -> 6.
void expect_dense_6(Model& m) {
  set_keras_weights(m, "d", {t({2, 3}, {2, 1}), t({1}, {1})});
  EXPECT_EQ(run_vector(m, {1, 1}), (std::vector<float>{6}));
}

TEST(SequentialConfig, ListFormWithoutInputLayerGetsOne) {
  json cfg = {
      {"class_name", "Sequential"},
      {"config",
       json::array(
           {{{"class_name", "Dense"},
             {"config", {{"name", "d"}, {"units", 1}, {"batch_input_shape", {nullptr, 2}}}}}})}};
  Model m = keras_model_from_config(cfg, "test");
  ASSERT_EQ(test::keras_layers(m).size(), 2u);
  EXPECT_EQ(m.node(static_cast<size_t>(m.input_index())).layer_class, "InputLayer");
  EXPECT_EQ(m.input_shape(), (Shape{2}));
  expect_dense_6(m);
}

TEST(SequentialConfig, LayersFormWithExplicitInputLayer) {
  json cfg = {{"class_name", "Sequential"},
              {"config",
               {{"name", "s"},
                {"layers",
                 json::array({{{"class_name", "InputLayer"},
                               {"config", {{"name", "in"}, {"batch_input_shape", {nullptr, 2}}}}},
                              {{"class_name", "Dense"}, {"config", {{"name", "d"}, {"units", 1}}}},
                              {{"class_name", "ReLU"}, {"config", {{"name", "r"}}}}})}}}};
  Model m = keras_model_from_config(cfg, "test");
  ASSERT_EQ(test::keras_layers(m).size(), 3u);
  EXPECT_EQ(m.node(static_cast<size_t>(m.input_index())).name, "in");
  EXPECT_EQ(m.node(static_cast<size_t>(m.output_index())).layer, "r");
  expect_dense_6(m);
}

TEST(SequentialConfig, LayersFormWithoutInputLayerGetsOne) {
  json cfg = {
      {"class_name", "Sequential"},
      {"config",
       {{"name", "s"},
        {"layers",
         json::array({{{"class_name", "Dense"},
                       {"config",
                        {{"name", "d"}, {"units", 1}, {"batch_input_shape", {nullptr, 2}}}}}})}}}};
  Model m = keras_model_from_config(cfg, "test");
  ASSERT_EQ(test::keras_layers(m).size(), 2u);
  expect_dense_6(m);
}

// ---- Refusals ----

TEST(ModelRefusal, LambdaLayerIsRefusedByName) {
  std::string msg = message_of<UnsupportedLayer>([] {
    keras_model_from_config(
        functional({2}, {layer_json("Lambda", "my_lambda", {{"function", "4wEAAAAA"}}, {"input"})},
                   "my_lambda"),
        "test");
  });
  EXPECT_NE(msg.find("my_lambda"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Lambda"), std::string::npos) << msg;
}

TEST(ModelRefusal, UnknownClassIsRefusedNamingClassAndLayer) {
  std::string msg = message_of<UnsupportedLayer>([] {
    keras_model_from_config(
        functional({2}, {layer_json("FancyLayer", "fancy_1", json::object(), {"input"})},
                   "fancy_1"),
        "test");
  });
  EXPECT_NE(msg.find("FancyLayer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fancy_1"), std::string::npos) << msg;
}

TEST(ModelRefusal, CycleIsRefused) {
  // a takes b's output and b takes a's.
  json cfg = functional({2},
                        {layer_json("Add", "a", json::object(), {"input", "b"}),
                         layer_json("ReLU", "b", json::object(), {"a"})},
                        "b");
  std::string msg = message_of<FormatError>([&] { keras_model_from_config(cfg, "test.h5"); });
  EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
  EXPECT_NE(msg.find("test.h5"), std::string::npos) << msg;
}

TEST(ModelRefusal, DuplicateLayerNamesAreRefused) {
  json cfg = functional({2},
                        {layer_json("ReLU", "r", json::object(), {"input"}),
                         layer_json("Dropout", "r", json::object(), {"input"})},
                        "r");
  std::string msg = message_of<FormatError>([&] { keras_model_from_config(cfg, "test"); });
  EXPECT_NE(msg.find("'r'"), std::string::npos) << msg;
}

TEST(ModelRefusal, DanglingInboundNameIsRefused) {
  json cfg = functional({2}, {layer_json("ReLU", "r", json::object(), {"ghost"})}, "r");
  std::string msg = message_of<FormatError>([&] { keras_model_from_config(cfg, "test"); });
  EXPECT_NE(msg.find("ghost"), std::string::npos) << msg;
}

TEST(ModelRefusal, ChannelsFirstIsRefused) {
  std::string msg = message_of<UnsupportedLayer>([] {
    single({3, 3, 1}, "Conv2D",
           {{"filters", 1}, {"kernel_size", 2}, {"data_format", "channels_first"}});
  });
  EXPECT_NE(msg.find("channels_first"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'l'"), std::string::npos) << msg;
}

TEST(ModelRefusal, ChannelsFirstPoolingIsRefused) {
  EXPECT_THROW(single({2, 2, 1}, "MaxPooling2D", {{"data_format", "channels_first"}}),
               UnsupportedLayer);
}

}  // namespace
}  // namespace bdguard
