// The architectures `bdguard attack --arch` trains, as Keras 2.x Functional model_config
// documents (so a trained model is saved as a full Keras .h5 that every command reads).
// Each takes raw pixels 0..255 (a Rescaling layer divides by 255 first) and ends in a
// Dense softmax over `num_classes`. docs/architectures.md lists their layers and sizes.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/model.h"

namespace bdguard {

// fmnist, deepid, resbn, vgg, preact-resnet18.
std::vector<std::string> trainable_architecture_names();

// The architecture called `name` for images of `input_shape` (C, H, W) and
// `num_classes` classes: InvalidArgument for an unknown name, ShapeMismatch for an
// input it cannot take (deepid takes 3x55x47 only).
nlohmann::json trainable_architecture(const std::string& name, const Shape& input_shape,
                                      int64_t num_classes);

// resbn: a narrow ResNet. Stem conv 3x3 (16) - BN - ReLU, then three residual blocks of
// 16, 32 and 64 channels (strides 1, 2, 2; conv-BN-ReLU-conv-BN, added to the input or
// to a 1x1 conv-BN projection, ReLU), global average pooling, Dense softmax.
// 1 or 3 channels, at least 8x8 pixels.
nlohmann::json resbn_architecture(const Shape& input_shape, int64_t num_classes);

// vgg: three stages of two conv 3x3 - BN - ReLU blocks (32, 64, 128 channels), each
// stage ending in 2x2 max-pooling, then Flatten, Dense 256 ReLU, Dense softmax.
// 1 or 3 channels, at least 8x8 pixels.
nlohmann::json vgg_architecture(const Shape& input_shape, int64_t num_classes);

// preact-resnet18: BackdoorBench's PreActResNet18 (He et al. 2016, identity mappings):
// conv 3x3 (64), four stages of two pre-activation blocks (64, 128, 256, 512 channels;
// strides 1, 2, 2, 2; BN-ReLU-conv-BN-ReLU-conv added to the input or to a 1x1 conv of
// the first BN-ReLU), global average pooling, Dense softmax. Convolutions have no bias;
// a stride-2 conv pads one pixel on every side first (ZeroPadding2D), as PyTorch's
// padding=1 does. 1 or 3 channels, at least 16x16 pixels (BackdoorBench: 3x32x32).
nlohmann::json preact_resnet18_architecture(const Shape& input_shape, int64_t num_classes);

}  // namespace bdguard
