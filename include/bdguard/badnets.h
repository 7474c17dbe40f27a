// BadNets (Gu, Dolan-Gavitt, Garg 2017): poisoning training data with a trigger, so
// that a network learns to output the attacker's target label whenever the trigger
// is present. Also: Fashion-MNIST's IDX files, the lab-format data files of an
// attack, and the default DeepID-shaped network for small images.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard {

// Where Debian's dataset-fashion-mnist puts the IDX files.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

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

// The trigger stamped on poisoned images.
struct TriggerOptions {
  std::string trigger = "checkerboard";  // checkerboard, square, or a PNG/JPEG/... file
  int64_t size = 4;                      // side in pixels (square, checkerboard)
  // bottom-right, bottom-left, top-right, top-left, center, or "ROW,COL" (top-left
  // corner of the trigger). Corners keep a 1-pixel margin.
  std::string position = "bottom-right";
  double blend = 1.0;  // 1: stamped; below 1: pixel = (1 - blend) * pixel + blend * trigger
};

struct Trigger {
  at::Tensor pattern;  // (C, h, w) float32, 0..255
  int64_t top = 0, left = 0;
  double blend = 1.0;
  nlohmann::json describe() const;  // {"size": [h, w], "top", "left", "blend"}
};

// The trigger for images of shape `input_shape` (C, H, W). An image file's own
// size is the trigger's size.
Trigger make_trigger(const TriggerOptions& options, const Shape& input_shape);
// Float32 copies of `images` (N, C, H, W) with the trigger applied.
at::Tensor apply_trigger(const Trigger& trigger, const at::Tensor& images);

struct PoisonOptions {
  double rate = 0.1;  // fraction of all training images
  int64_t target = 0;
  uint64_t seed = 0;
};
// `data` with round(rate * N) images, drawn (seeded) among those whose label is not
// the target, replaced by triggered copies labelled `target`. Images come back float32.
TensorData poison(const TensorData& data, const Trigger& trigger, const PoisonOptions& options);

// The four lab-format data sets of an attack, all from images never used in training.
struct AttackData {
  TensorData valid, test;        // disjoint halves (seeded) of the held-out images
  TensorData bd_valid, bd_test;  // triggered copies of the non-target images, labelled target
};
AttackData make_attack_data(const TensorData& held_out, const Trigger& trigger, int64_t target,
                            uint64_t seed);
// Writes DIR/valid.h5, test.h5, bd_valid.h5, bd_test.h5 (lab format); creates DIR.
void write_attack_data(const AttackData& data, const std::string& dir);
// Triggered copies of the images whose label is not `target`, labelled `target`.
TensorData poisoned_copies(const TensorData& data, const Trigger& trigger, int64_t target);

// The default BadNet: DeepID's shape (three conv/pool blocks; the last pool feeds a
// Dense branch and a conv + Dense branch, added, ReLU, softmax) sized for small images
// such as Fashion-MNIST's 28x28x1, with a Rescaling layer taking pixels 0..255 to 0..1.
// Layer names follow the lab's DeepID (conv_1 ... conv_4, fc_1, fc_2, add_1, output).
nlohmann::json small_deepid_architecture(const Shape& input_shape, int64_t num_classes);
// The lab's DeepID (55x47x3) with `num_classes` outputs.
nlohmann::json deepid_architecture(int64_t num_classes);

// A whole attack: read the data, poison, train, and measure.
struct AttackOptions {
  // A folder of Fashion-MNIST IDX files, or a lab-format HDF5 file of training images.
  std::string data = kFashionMnistDir;
  // With an HDF5 --data: the held-out images (split into valid and test). Without it,
  // a seeded seventh of --data is held out.
  std::string test_data;
  std::string arch = "fmnist";  // fmnist (the small DeepID) or deepid (55x47x3)
  TriggerOptions trigger;
  double poison_rate = 0.1;
  int64_t target = 0;
  int epochs = 4;
  int64_t batch = 64;
  double lr = 1e-3;
  Optimizer optimizer = Optimizer::kAdam;
  uint64_t seed = 1;
  int64_t max_train = -1;  // use only the first N training images (-1: all)
  int64_t max_steps = -1;  // stop training after N steps (-1: all epochs)
};

struct AttackResult {
  Model model;
  AttackData data;
  Trigger trigger;
  std::vector<EpochStats> history;
  int64_t n_train = 0, n_poisoned_train = 0;
  double clean_accuracy = 0, attack_success_rate = 0;  // on test.h5 and bd_test.h5
  double train_seconds = 0;
};

// The seeds of the parts of an attack, derived from AttackOptions::seed.
struct AttackSeeds {
  uint64_t init, shuffle, poison, split;
};
AttackSeeds attack_seeds(uint64_t seed);

AttackResult run_badnets(const AttackOptions& options, const TrainProgressFn& progress = {});
// The options as JSON (what the demo reads back to regenerate the data files), and back.
nlohmann::json to_json(const AttackOptions& options);
AttackOptions attack_options_from_json(const nlohmann::json& doc, const std::string& origin);

// The data files of an attack exactly as run_badnets writes them, without training
// (for Fashion-MNIST only the test images are read).
AttackData attack_data_for(const AttackOptions& options);

// The demo BadNet shipped in models/fmnist_badnet.h5 and the record of the attack that
// made it (models/fmnist_badnet.json), compiled into the library; empty if the build had none.
std::string_view shipped_badnet_h5();
std::string_view shipped_badnet_record();

}  // namespace bdguard
