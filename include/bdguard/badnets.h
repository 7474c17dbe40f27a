// What the attacks read and train besides attack.h (which this includes): Fashion-MNIST's
// IDX files and the default DeepID-shaped network for small images, and the shipped
// demo BadNet.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bdguard/attack.h"
#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard {

// Reads an IDX image file (magic 0x00000803, uint8 (N, rows, cols)) and its IDX label
// file (magic 0x00000801), gzip-compressed or not. Images come back (N, 1, rows, cols)
// uint8. Magic numbers, sizes and the file lengths are checked before use.
TensorData read_idx(const std::string& images_path, const std::string& labels_path);

// The path of IDX file `name` in `dir`, gzip-compressed (name.gz) or not; IoError
// naming the package when neither exists.
std::string idx_file(const std::string& dir, const std::string& name);

struct TrainTestData {
  TensorData train, test;
};
// Fashion-MNIST from `dir`: train-{images,labels} and t10k-{images,labels}, with or
// without .gz (60,000 training and 10,000 test images of 28x28 pixels, 10 classes).
TrainTestData read_fashion_mnist(const std::string& dir = kFashionMnistDir);

// The default BadNet: DeepID's shape (three conv/pool blocks; the last pool feeds a
// Dense branch and a conv + Dense branch, added, ReLU, softmax) sized for small images
// such as Fashion-MNIST's 28x28x1, with a Rescaling layer taking pixels 0..255 to 0..1.
// Layer names follow the lab's DeepID (conv_1 ... conv_4, fc_1, fc_2, add_1, output).
nlohmann::json small_deepid_architecture(const Shape& input_shape, int64_t num_classes);
// The lab's DeepID (55x47x3) with `num_classes` outputs.
nlohmann::json deepid_architecture(int64_t num_classes);

// The demo BadNet shipped in models/fmnist_badnet.h5 and the record of the attack that
// made it (models/fmnist_badnet.json), compiled into the library; empty if the build had none.
std::string_view shipped_badnet_h5();
std::string_view shipped_badnet_record();

}  // namespace bdguard
