// The residual architectures: resbn and preact-resnet18 (see architectures.h).
#include "bdguard/architectures.h"
#include "formats/keras/arch_docs.h"

namespace bdguard {
namespace {

using nlohmann::json;
using namespace keras_arch;

// A 3x3 convolution without bias at `stride`: 'same' padding at stride 1, one pixel of
// zeros on every side and 'valid' at stride 2 (PyTorch's padding=1). Returns its name.
std::string conv3x3(json& layers, const std::string& name, int64_t filters, int64_t stride,
                    const std::string& from) {
  std::string in = from;
  ConvSpec c{filters, 3, stride, "same", "linear", false};
  if (stride != 1) {
    layers.push_back(zero_pad_doc(name + "_pad", 1, from));
    in = name + "_pad";
    c.padding = "valid";
  }
  layers.push_back(conv_doc(name, c, in));
  return name;
}

std::string conv1x1(json& layers, const std::string& name, int64_t filters, int64_t stride,
                    const std::string& from) {
  layers.push_back(conv_doc(name, {filters, 1, stride, "valid", "linear", false}, from));
  return name;
}

std::string bn_relu(json& layers, const std::string& bn, const std::string& relu,
                    const std::string& from) {
  layers.push_back(batch_norm_doc(bn, from));
  layers.push_back(relu_doc(relu, bn));
  return relu;
}

// resbn's block: conv-BN-ReLU-conv-BN + shortcut, ReLU.
std::string res_block(json& layers, const std::string& p, int64_t in_channels, int64_t filters,
                      int64_t stride, const std::string& from) {
  std::string x = conv3x3(layers, p + "_conv1", filters, stride, from);
  x = bn_relu(layers, p + "_bn1", p + "_relu1", x);
  x = conv3x3(layers, p + "_conv2", filters, 1, x);
  layers.push_back(batch_norm_doc(p + "_bn2", x));
  std::string shortcut = from;
  if (stride != 1 || in_channels != filters) {
    conv1x1(layers, p + "_proj", filters, stride, from);
    layers.push_back(batch_norm_doc(p + "_proj_bn", p + "_proj"));
    shortcut = p + "_proj_bn";
  }
  layers.push_back(add_doc(p + "_add", {p + "_bn2", shortcut}));
  layers.push_back(relu_doc(p + "_relu2", p + "_add"));
  return p + "_relu2";
}

// BackdoorBench's PreActBlock: out = relu(bn1(x)); shortcut = conv1x1(out) or x;
// conv2(relu(bn2(conv1(out)))) + shortcut.
std::string preact_block(json& layers, const std::string& p, int64_t in_channels, int64_t filters,
                         int64_t stride, const std::string& from) {
  const std::string out = bn_relu(layers, p + "_bn1", p + "_relu1", from);
  std::string shortcut = from;
  if (stride != 1 || in_channels != filters) {
    shortcut = conv1x1(layers, p + "_shortcut", filters, stride, out);
  }
  std::string x = conv3x3(layers, p + "_conv1", filters, stride, out);
  x = bn_relu(layers, p + "_bn2", p + "_relu2", x);
  x = conv3x3(layers, p + "_conv2", filters, 1, x);
  layers.push_back(add_doc(p + "_add", {x, shortcut}));
  return p + "_add";
}

constexpr int64_t kResbnWidths[] = {16, 32, 64};
constexpr int64_t kPreactWidths[] = {64, 128, 256, 512};

}  // namespace

json resbn_architecture(const Shape& input_shape, int64_t num_classes) {
  require_input("--arch resbn", input_shape, {1, 3}, 8, num_classes);
  json layers = json::array({input_doc(input_shape), rescaling_doc("input")});
  std::string x = conv3x3(layers, "stem_conv", kResbnWidths[0], 1, "rescaling");
  x = bn_relu(layers, "stem_bn", "stem_relu", x);
  int64_t channels = kResbnWidths[0];
  for (int b = 0; b < 3; ++b) {
    const int64_t stride = b == 0 ? 1 : 2;
    x = res_block(layers, "block" + std::to_string(b + 1), channels, kResbnWidths[b], stride, x);
    channels = kResbnWidths[b];
  }
  layers.push_back(global_average_pool_doc("gap", x));
  layers.push_back(dense_doc("output", num_classes, "softmax", "gap"));
  return functional_doc(std::move(layers), "output");
}

json preact_resnet18_architecture(const Shape& input_shape, int64_t num_classes) {
  require_input("--arch preact-resnet18", input_shape, {1, 3}, 16, num_classes);
  json layers = json::array({input_doc(input_shape), rescaling_doc("input")});
  std::string x = conv3x3(layers, "conv1", kPreactWidths[0], 1, "rescaling");
  int64_t channels = kPreactWidths[0];
  for (int stage = 0; stage < 4; ++stage) {
    for (int b = 0; b < 2; ++b) {
      const int64_t stride = stage > 0 && b == 0 ? 2 : 1;
      const std::string p = "layer" + std::to_string(stage + 1) + "_" + std::to_string(b);
      x = preact_block(layers, p, channels, kPreactWidths[stage], stride, x);
      channels = kPreactWidths[stage];
    }
  }
  layers.push_back(global_average_pool_doc("avgpool", x));
  layers.push_back(dense_doc("linear", num_classes, "softmax", "avgpool"));
  return functional_doc(std::move(layers), "linear");
}

}  // namespace bdguard
