// The attack as a whole: its input images, seeds, network, poisoning, training and
// measurement, for every method (the triggers are badnets.cpp, blended.cpp, sig.cpp,
// wanet.cpp; the poisoning poison.cpp; the training loop src/defense/train.cpp).
#include "bdguard/attack.h"
#include "bdguard/architectures.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "bdguard/badnets.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "hdf5/h5.h"

namespace bdguard {
namespace {

struct AttackInput {
  TensorData train, held_out;
  Shape shape;  // (C, H, W)
  int64_t classes = 0;
};

// The (C, H, W) shape of a lab data file's images: (N, C, H, W) when axis 1 holds
// 1 or 3 channels, (N, H, W, C) when the last axis does, (N, H, W) for grayscale.
Shape lab_file_shape(const std::string& path) {
  h5::File f = h5::File::open(path);
  const Shape d = h5::dataset_info(f, "/data").dims;
  auto channels = [](int64_t c) { return c == 1 || c == 3; };
  if (d.size() == 3) return {1, d[1], d[2]};
  if (d.size() == 4 && channels(d[1]) && !channels(d[3])) return {d[1], d[2], d[3]};
  if (d.size() == 4 && channels(d[3])) return {d[3], d[1], d[2]};
  fail<ShapeMismatch>(path, "data", "(N, C, H, W), (N, H, W, C) or (N, H, W) images", shape_str(d));
}

AttackInput load_attack_input(const AttackOptions& o, uint64_t split_seed) {
  AttackInput in;
  if (std::filesystem::is_directory(o.data)) {
    TrainTestData fm = read_fashion_mnist(o.data);
    in.train = std::move(fm.train);
    in.held_out = std::move(fm.test);
    in.shape = {1, in.train.images.size(2), in.train.images.size(3)};
  } else {
    in.shape = o.arch == "deepid" ? Shape{3, 55, 47} : lab_file_shape(o.data);
    in.train = read_tensor_data(LabDataset(o.data, in.shape));
    if (!o.test_data.empty()) {
      in.held_out = read_tensor_data(LabDataset(o.test_data, in.shape));
    } else {
      // Hold out a seventh (Fashion-MNIST's 10,000 of 70,000).
      std::vector<int64_t> order = Rng(split_seed ^ 0x5eedULL).permutation(in.train.size());
      const auto cut = static_cast<std::ptrdiff_t>(in.train.size() / 7);
      std::vector<int64_t> held(order.begin(), order.begin() + cut),
          kept(order.begin() + cut, order.end());
      std::sort(held.begin(), held.end());
      std::sort(kept.begin(), kept.end());
      in.held_out = in.train.subset(held);
      in.train = in.train.subset(kept);
    }
  }
  if (o.max_train >= 0 && o.max_train < in.train.size()) {
    in.train = {in.train.images.narrow(0, 0, o.max_train),
                in.train.labels.narrow(0, 0, o.max_train)};
  }
  if (in.train.size() == 0 || in.held_out.size() < 2) {
    fail<InvalidArgument>(
        o.data, "images", "training images and at least 2 held-out images",
        std::to_string(in.train.size()) + " and " + std::to_string(in.held_out.size()));
  }
  int64_t hi =
      std::max(in.train.labels.max().item<int64_t>(), in.held_out.labels.max().item<int64_t>());
  in.classes = std::max<int64_t>(hi + 1, 2);
  return in;
}

// The Keras config of network `arch` for (C, H, W) inputs and `classes` outputs.
}  // namespace

Mapping parse_mapping(const std::string& name) {
  if (name == "all-to-one") return Mapping::kAllToOne;
  if (name == "all-to-all") return Mapping::kAllToAll;
  fail<InvalidArgument>("--mapping", "", "all-to-one or all-to-all", "'" + name + "'");
}

const char* mapping_name(Mapping m) {
  return m == Mapping::kAllToAll ? "all-to-all" : "all-to-one";
}

AttackSeeds attack_seeds(uint64_t seed) {
  // splitmix64: well-separated streams for neighbouring seeds.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  // The trigger's stream is mixed twice so that it never equals another seed's four.
  return {mix(seed * 4), mix(seed * 4 + 1), mix(seed * 4 + 2), mix(seed * 4 + 3),
          mix(mix(seed) ^ 0x7472696767657273ULL)};
}

AttackSeeds attack_seeds(const AttackOptions& o) {
  AttackSeeds s = attack_seeds(o.seed);
  if (o.split_seed) s.split = attack_seeds(*o.split_seed).split;
  return s;
}

AttackResult run_attack(const AttackOptions& o, const TrainProgressFn& progress) {
  if (o.clean_label && o.mapping == Mapping::kAllToAll) {
    fail<InvalidArgument>("--clean-label", "", "an all-to-one attack", "--mapping all-to-all");
  }
  if (!(o.cross_ratio >= 0) || !std::isfinite(o.cross_ratio)) {
    fail<InvalidArgument>("--cross-ratio", "", "a number >= 0", std::to_string(o.cross_ratio));
  }
  const AttackSeeds seeds = attack_seeds(o);
  AttackInput in = load_attack_input(o, seeds.split);
  const nlohmann::json arch = trainable_architecture(o.arch, in.shape, in.classes);
  if (o.target < 0 || o.target >= in.classes) {
    fail<InvalidArgument>("--target", "", "a class in [0, " + std::to_string(in.classes) + ")",
                          std::to_string(o.target));
  }
  AttackResult r;
  r.model = keras_model_from_config(arch, "--arch " + o.arch);
  init_weights(r.model, seeds.init);
  r.trigger = make_trigger(o.trigger, r.model.input_shape(), seeds.trigger);
  PoisonOptions p{o.poison_rate,
                  o.target,
                  seeds.poison,
                  o.mapping,
                  in.classes,
                  o.clean_label,
                  o.trigger.method == "wanet" ? o.cross_ratio : 0.0};
  TensorData train = poison(in.train, r.trigger, p);
  r.n_train = train.size();
  r.n_poisoned_train =
      static_cast<int64_t>(std::llround(o.poison_rate * static_cast<double>(train.size())));
  in.train = {};
  TrainOptions t;
  t.epochs = o.epochs;
  t.batch = o.batch;
  t.lr = o.lr;
  t.optimizer = o.optimizer;
  t.seed = seeds.shuffle;
  t.max_steps = o.max_steps;
  t.cosine_decay = true;
  t.batch_norm_training = true;  // a network trained from scratch
  t.progress = progress;
  auto start = std::chrono::steady_clock::now();
  r.history = train_model(r.model, train, t);
  r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.data = make_attack_data(in.held_out, r.trigger, {o.mapping, o.target, in.classes}, seeds.split);
  r.clean_accuracy = match_rate(predict(r.model, r.data.test), r.data.test.label_vector());
  r.attack_success_rate =
      match_rate(predict(r.model, r.data.bd_test), r.data.bd_test.label_vector());
  return r;
}

AttackResult run_badnets(const AttackOptions& o, const TrainProgressFn& progress) {
  AttackOptions b = o;
  b.trigger.method = "badnets";
  return run_attack(b, progress);
}

AttackData attack_data_for(const AttackOptions& o) {
  const AttackSeeds seeds = attack_seeds(o);
  AttackInput in;
  if (std::filesystem::is_directory(o.data)) {
    // Fashion-MNIST's test images hold every class: the training images are not needed.
    in.held_out = read_idx(idx_file(o.data, "t10k-images-idx3-ubyte"),
                           idx_file(o.data, "t10k-labels-idx1-ubyte"));
    in.shape = {1, in.held_out.images.size(2), in.held_out.images.size(3)};
    in.classes = std::max<int64_t>(in.held_out.labels.max().item<int64_t>() + 1, 2);
  } else {
    in = load_attack_input(o, seeds.split);
  }
  const Trigger trigger = make_trigger(o.trigger, in.shape, seeds.trigger);
  return make_attack_data(in.held_out, trigger, {o.mapping, o.target, in.classes}, seeds.split);
}

}  // namespace bdguard
