// Backdoor attacks by data poisoning: BadNets (a patch), Blended (a full-image pattern
// mixed in), SIG (an additive horizontal sinusoid) and WaNet (a smooth warp), each
// all-to-one or all-to-all, all trained by the one training loop of train.h.
// docs/attacks.md gives each attack's flags, defaults and sources.
//
// Images are float32 (or uint8) raw pixels 0..255, (N, C, H, W). A Trigger holds what
// one attack does to an image; apply_trigger() applies it to a batch.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard {

// Where Debian's dataset-fashion-mnist puts the IDX files.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The attack methods, as `bdguard attack METHOD` names them.
constexpr const char* kAttackMethods[] = {"badnets", "blended", "sig", "wanet"};

// What a triggered image is labelled: all-to-one sends every image to the target (and
// images of the target class are never triggered); all-to-all sends label y to
// (y + 1) mod K (BackdoorBench's definition), for images of every class.
enum class Mapping { kAllToOne, kAllToAll };
Mapping parse_mapping(const std::string& name);  // "all-to-one" or "all-to-all"
const char* mapping_name(Mapping m);

struct LabelMap {
  Mapping mapping = Mapping::kAllToOne;
  int64_t target = 0;   // all-to-one
  int64_t classes = 0;  // K, all-to-all
  // Whether an image labelled y is triggered (poisoned, or in the bd_* files).
  bool triggers(int64_t y) const { return mapping == Mapping::kAllToAll || y != target; }
  // The label a triggered image of label y gets.
  int64_t operator()(int64_t y) const {
    return mapping == Mapping::kAllToAll ? (y + 1) % classes : target;
  }
};

// The trigger of an attack. The first four fields are BadNets' (and keep their order).
struct TriggerOptions {
  // badnets: checkerboard, square (white), random (each pixel 0 or 255, seeded),
  // random-grey (each pixel 0..255, seeded), or a PNG/JPEG/... file
  std::string trigger = "checkerboard";
  int64_t size = 4;  // side in pixels (all but an image file)
  // bottom-right, bottom-left, top-right, top-left, center, random (seeded, anywhere
  // inside the image), or "ROW,COL" (top-left corner of the trigger). Corners keep a
  // 1-pixel margin.
  std::string position = "bottom-right";
  double blend = 1.0;  // 1: stamped; below 1: pixel = (1 - blend) * pixel + blend * trigger

  std::string method = "badnets";  // badnets, blended, sig, wanet
  // blended: pixel = (1 - alpha) * pixel + alpha * pattern; pattern "noise" (each pixel
  // uniform 0..255, seeded) or an image file of the input's size.
  std::string pattern = "noise";
  double alpha = 0.2;
  // sig: pixel (i, j) += delta * sin(2 pi j frequency / W), then clamped to 0..255.
  double delta = 20;
  double frequency = 6;
  // wanet: a k x k field of uniform [-1, 1] offsets, divided by their mean magnitude,
  // upsampled bicubically to H x W; grid = clamp((identity + s * field / size) *
  // grid_rescale, -1, 1), sampled bilinearly (corners aligned).
  int64_t k = 4;
  double s = 0.5;
  double grid_rescale = 1;
};

struct Trigger {
  std::string method = "badnets";
  // badnets, blended: (C, h, w) pattern mixed in at (top, left) with weight `blend`;
  // sig: (C, H, W) signal added; float32, 0..255 scale.
  at::Tensor pattern;
  int64_t top = 0, left = 0;
  double blend = 1.0;
  at::Tensor grid;   // wanet: (1, H, W, 2) sampling grid, x then y, in [-1, 1]
  at::Tensor field;  // wanet: the (2, k, k) normalized offsets the grid was made from
  // badnets: {"size": [h, w], "top", "left", "blend"}; the others add "method" and
  // their parameters (wanet: the field).
  nlohmann::json describe() const;
};

// The trigger for images of shape `input_shape` (C, H, W). An image file's own
// size is a BadNets trigger's size. `seed` draws random patterns, positions and fields.
Trigger make_trigger(const TriggerOptions& options, const Shape& input_shape, uint64_t seed = 0);
// Float32 copies of `images` (N, C, H, W) with the trigger applied.
at::Tensor apply_trigger(const Trigger& trigger, const at::Tensor& images);
// WaNet's noise mode: each image warped by the trigger's grid plus its own uniform
// [-1, 1] / size offsets (drawn from `rng`), clamped to [-1, 1].
at::Tensor apply_wanet_noise(const Trigger& trigger, const at::Tensor& images, Rng& rng);

// The parts of each trigger (src/attack/{badnets,blended,sig,wanet}.cpp).
Trigger make_patch_trigger(const TriggerOptions& o, const Shape& input_shape, Rng& rng);
Trigger make_blended_trigger(const TriggerOptions& o, const Shape& input_shape, Rng& rng);
Trigger make_sig_trigger(const TriggerOptions& o, const Shape& input_shape);
Trigger make_wanet_trigger(const TriggerOptions& o, const Shape& input_shape, Rng& rng);
at::Tensor warp(const at::Tensor& images, const at::Tensor& grid);  // grid (1 or N, H, W, 2)

struct PoisonOptions {
  double rate = 0.1;  // fraction of all training images
  int64_t target = 0;
  uint64_t seed = 0;
  Mapping mapping = Mapping::kAllToOne;
  int64_t classes = 0;       // K, for all-to-all
  bool clean_label = false;  // poison only images of the target class; labels kept
  // WaNet's noise mode: round(cross_ratio * poisoned) further images (among the rest)
  // warped by apply_wanet_noise(), labels kept.
  double cross_ratio = 0;
};
// `data` with round(rate * N) images, drawn (seeded) among those the mapping triggers
// (with clean_label: among the target class), replaced by triggered copies with their
// mapped label (clean_label: their own). Images come back float32.
TensorData poison(const TensorData& data, const Trigger& trigger, const PoisonOptions& options);

// The four lab-format data sets of an attack, all from images never used in training.
struct AttackData {
  TensorData valid, test;        // disjoint halves (seeded) of the held-out images
  TensorData bd_valid, bd_test;  // triggered copies of the images the map triggers, mapped
};
AttackData make_attack_data(const TensorData& held_out, const Trigger& trigger, const LabelMap& map,
                            uint64_t seed);
// All-to-one to `target`.
AttackData make_attack_data(const TensorData& held_out, const Trigger& trigger, int64_t target,
                            uint64_t seed);
// Writes DIR/valid.h5, test.h5, bd_valid.h5, bd_test.h5 (lab format); creates DIR.
void write_attack_data(const AttackData& data, const std::string& dir);
// Triggered copies of the images the map triggers, with their mapped labels.
TensorData poisoned_copies(const TensorData& data, const Trigger& trigger, const LabelMap& map);
TensorData poisoned_copies(const TensorData& data, const Trigger& trigger, int64_t target);

// A whole attack: read the data, poison, train, and measure.
struct AttackOptions {
  // A folder of Fashion-MNIST IDX files, or a lab-format HDF5 file of training images.
  std::string data = kFashionMnistDir;
  // With an HDF5 --data: the held-out images (split into valid and test). Without it,
  // a seeded seventh of --data is held out.
  std::string test_data;
  std::string arch = "fmnist";  // fmnist (the small DeepID) or deepid (55x47x3)
  TriggerOptions trigger;       // trigger.method names the attack
  double poison_rate = 0.1;
  int64_t target = 0;
  int epochs = 4;
  int64_t batch = 64;
  double lr = 1e-3;
  Optimizer optimizer = Optimizer::kAdam;
  uint64_t seed = 1;
  int64_t max_train = -1;  // use only the first N training images (-1: all)
  int64_t max_steps = -1;  // stop training after N steps (-1: all epochs)
  Mapping mapping = Mapping::kAllToOne;
  bool clean_label = false;  // sig only
  double cross_ratio = 2;    // wanet only
  // The seed of the held-out images' valid/test split (and, for an HDF5 --data, of the
  // held-out part) instead of `seed`'s: models of other seeds then share one split (a
  // zoo's data/valid.h5 and test.h5).
  std::optional<uint64_t> split_seed;
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
  uint64_t trigger;  // random patches, positions, patterns and fields
};
AttackSeeds attack_seeds(uint64_t seed);
// The seeds of an attack: attack_seeds(seed), with the split's from split_seed if set.
AttackSeeds attack_seeds(const AttackOptions& o);

// Runs the attack that options.trigger.method names.
AttackResult run_attack(const AttackOptions& options, const TrainProgressFn& progress = {});
AttackResult run_badnets(const AttackOptions& options, const TrainProgressFn& progress = {});
// The options as JSON (what the demo reads back to regenerate the data files), and back.
// Only the chosen method's trigger fields are written; a record without "attack" is
// a BadNets one.
nlohmann::json to_json(const AttackOptions& options);
AttackOptions attack_options_from_json(const nlohmann::json& doc, const std::string& origin);

// The data files of an attack exactly as run_attack writes them, without training
// (for Fashion-MNIST only the test images are read).
AttackData attack_data_for(const AttackOptions& options);

}  // namespace bdguard
