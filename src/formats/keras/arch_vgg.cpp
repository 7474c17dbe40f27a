// The vgg architecture (see architectures.h).
#include "bdguard/architectures.h"
#include "formats/keras/arch_docs.h"

namespace bdguard {

using nlohmann::json;
using namespace keras_arch;

namespace {
constexpr int64_t kVggWidths[] = {32, 64, 128};
constexpr int64_t kVggFc = 256;
}  // namespace

json vgg_architecture(const Shape& input_shape, int64_t num_classes) {
  require_input("--arch vgg", input_shape, {1, 3}, 8, num_classes);
  json layers = json::array({input_doc(input_shape), rescaling_doc("input")});
  std::string x = "rescaling";
  for (int s = 0; s < 3; ++s) {
    const std::string p = "block" + std::to_string(s + 1);
    for (int k = 1; k <= 2; ++k) {
      const std::string n = std::to_string(k);
      layers.push_back(
          conv_doc(p + "_conv" + n, {kVggWidths[s], 3, 1, "same", "linear", false}, x));
      layers.push_back(batch_norm_doc(p + "_bn" + n, p + "_conv" + n));
      layers.push_back(relu_doc(p + "_relu" + n, p + "_bn" + n));
      x = p + "_relu" + n;
    }
    layers.push_back(max_pool_doc(p + "_pool", x));
    x = p + "_pool";
  }
  layers.push_back(flatten_doc("flatten", x));
  layers.push_back(dense_doc("fc_1", kVggFc, "relu", "flatten"));
  layers.push_back(dense_doc("output", num_classes, "softmax", "fc_1"));
  return functional_doc(std::move(layers), "output");
}

}  // namespace bdguard
