// BadNets: triggers, poisoning, the attack data files and the attack (its IDX reading is
// src/data/idx.cpp, its default network src/formats/keras/architectures.cpp).
#include "bdguard/badnets.h"

#include <ATen/ATen.h>
#include <stb/stb_image.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "bdguard/architectures.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "hdf5/h5.h"

namespace bdguard {
namespace {

std::pair<int64_t, int64_t> trigger_position(const TriggerOptions& o, int64_t H, int64_t W,
                                             int64_t h, int64_t w) {
  const std::string& p = o.position;
  auto clamp0 = [](int64_t v) { return std::max<int64_t>(v, 0); };
  const int64_t bottom = clamp0(H - h - 1), right = clamp0(W - w - 1);
  const int64_t top = H > h ? 1 : 0, left = W > w ? 1 : 0;
  if (p == "bottom-right") return {bottom, right};
  if (p == "bottom-left") return {bottom, left};
  if (p == "top-right") return {top, right};
  if (p == "top-left") return {top, left};
  if (p == "center") return {(H - h) / 2, (W - w) / 2};
  long long r = -1, c = -1;
  char extra = 0;
  if (std::sscanf(p.c_str(), "%lld,%lld%c", &r, &c, &extra) != 2 || r < 0 || c < 0 || r + h > H ||
      c + w > W) {
    fail<InvalidArgument>("--position", "'" + p + "'",
                          "a corner, center, or ROW,COL with the " + std::to_string(h) + "x" +
                              std::to_string(w) + " trigger inside the " + std::to_string(H) + "x" +
                              std::to_string(W) + " image",
                          "another value");
  }
  return {r, c};
}

}  // namespace

nlohmann::json Trigger::describe() const {
  return {
      {"size", {pattern.size(1), pattern.size(2)}}, {"top", top}, {"left", left}, {"blend", blend}};
}

Trigger make_trigger(const TriggerOptions& o, const Shape& input_shape) {
  if (input_shape.size() != 3) {
    fail<ShapeMismatch>("", "trigger", "a model taking images (C, H, W)", shape_str(input_shape));
  }
  const int64_t C = input_shape[0], H = input_shape[1], W = input_shape[2];
  if (!(o.blend > 0 && o.blend <= 1)) {
    fail<InvalidArgument>("--blend", "", "a value in (0, 1]", std::to_string(o.blend));
  }
  Trigger t;
  t.blend = o.blend;
  if (o.trigger == "square" || o.trigger == "checkerboard") {
    if (o.size < 1 || o.size > std::min(H, W)) {
      fail<InvalidArgument>("--trigger-size", "",
                            "a size in [1, " + std::to_string(std::min(H, W)) + "]",
                            std::to_string(o.size));
    }
    t.pattern = at::full({C, o.size, o.size}, 255.0f);
    if (o.trigger == "checkerboard") {
      for (int64_t i = 0; i < o.size; ++i) {
        for (int64_t j = 0; j < o.size; ++j) {
          if ((i + j) % 2) t.pattern.select(1, i).select(1, j).fill_(0.0);
        }
      }
    }
  } else {
    int w = 0, h = 0, n = 0;
    if (!stbi_info(o.trigger.c_str(), &w, &h, &n)) {
      fail(o.trigger, "--trigger", "square, checkerboard, or a readable image file",
           stbi_failure_reason() ? stbi_failure_reason() : "no such image");
    }
    if (h > H || w > W) {
      fail<ShapeMismatch>(o.trigger, "trigger image",
                          "at most " + std::to_string(W) + "x" + std::to_string(H) + " pixels",
                          std::to_string(w) + "x" + std::to_string(h));
    }
    t.pattern = load_image(o.trigger, {C, h, w}).squeeze(0);
  }
  std::tie(t.top, t.left) = trigger_position(o, H, W, t.pattern.size(1), t.pattern.size(2));
  return t;
}

at::Tensor apply_trigger(const Trigger& t, const at::Tensor& images) {
  at::Tensor x = images.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  if (x.size(0) == 0) return x;
  at::Tensor region = x.narrow(2, t.top, t.pattern.size(1)).narrow(3, t.left, t.pattern.size(2));
  if (t.blend >= 1.0) {
    region.copy_(t.pattern.unsqueeze(0).expand_as(region));
  } else {
    region.mul_(1.0 - t.blend).add_(t.pattern.unsqueeze(0) * t.blend);
  }
  return x;
}

TensorData poison(const TensorData& data, const Trigger& trigger, const PoisonOptions& o) {
  if (!(o.rate >= 0 && o.rate <= 1)) {
    fail<InvalidArgument>("--poison-rate", "", "a fraction in [0, 1]", std::to_string(o.rate));
  }
  std::vector<int64_t> labels = data.label_vector();
  std::vector<int64_t> candidates;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != o.target) candidates.push_back(static_cast<int64_t>(i));
  }
  const auto count = static_cast<int64_t>(std::llround(o.rate * static_cast<double>(data.size())));
  if (count > static_cast<int64_t>(candidates.size())) {
    fail<InvalidArgument>(
        "--poison-rate", "",
        "at most " + std::to_string(candidates.size()) + " images whose label is not the target",
        std::to_string(count) + " images");
  }
  Rng rng(o.seed);
  std::vector<int64_t> order = rng.permutation(static_cast<int64_t>(candidates.size()));
  std::vector<int64_t> chosen;
  for (int64_t k = 0; k < count; ++k)
    chosen.push_back(candidates[static_cast<size_t>(order[static_cast<size_t>(k)])]);
  std::sort(chosen.begin(), chosen.end());
  TensorData out{data.images.to(at::kFloat, false, /*copy=*/true),
                 data.labels.to(at::kLong).clone()};
  if (chosen.empty()) return out;
  TensorData picked = out.subset(chosen);
  at::Tensor ix = at::tensor(chosen, at::kLong);
  out.images.index_copy_(0, ix, apply_trigger(trigger, picked.images));
  out.labels.index_fill_(0, ix, o.target);
  return out;
}

TensorData poisoned_copies(const TensorData& data, const Trigger& trigger, int64_t target) {
  std::vector<int64_t> labels = data.label_vector();
  std::vector<int64_t> keep;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != target) keep.push_back(static_cast<int64_t>(i));
  }
  TensorData picked = data.subset(keep);
  return {apply_trigger(trigger, picked.images), at::full({picked.size()}, target, at::kLong)};
}

AttackData make_attack_data(const TensorData& held_out, const Trigger& trigger, int64_t target,
                            uint64_t seed) {
  Rng rng(seed);
  std::vector<int64_t> order = rng.permutation(held_out.size());
  const auto half = static_cast<std::ptrdiff_t>(held_out.size() / 2);
  std::vector<int64_t> a(order.begin(), order.begin() + half), b(order.begin() + half, order.end());
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  AttackData d;
  d.valid = held_out.subset(a);
  d.test = held_out.subset(b);
  d.valid.images = d.valid.images.to(at::kFloat);
  d.test.images = d.test.images.to(at::kFloat);
  d.bd_valid = poisoned_copies(d.valid, trigger, target);
  d.bd_test = poisoned_copies(d.test, trigger, target);
  return d;
}

void write_attack_data(const AttackData& d, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail<IoError>(dir, "", "a folder bdguard can create", ec.message());
  write_lab_dataset(dir + "/valid.h5", d.valid.images, d.valid.labels);
  write_lab_dataset(dir + "/test.h5", d.test.images, d.test.labels);
  write_lab_dataset(dir + "/bd_valid.h5", d.bd_valid.images, d.bd_valid.labels);
  write_lab_dataset(dir + "/bd_test.h5", d.bd_test.images, d.bd_test.labels);
}

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

}  // namespace

AttackSeeds attack_seeds(uint64_t seed) {
  // splitmix64: well-separated streams for neighbouring seeds.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return {mix(seed * 4), mix(seed * 4 + 1), mix(seed * 4 + 2), mix(seed * 4 + 3)};
}

AttackResult run_badnets(const AttackOptions& o, const TrainProgressFn& progress) {
  const AttackSeeds seeds = attack_seeds(o.seed);
  AttackInput in = load_attack_input(o, seeds.split);
  const nlohmann::json arch = trainable_architecture(o.arch, in.shape, in.classes);
  if (o.target < 0 || o.target >= in.classes) {
    fail<InvalidArgument>("--target", "", "a class in [0, " + std::to_string(in.classes) + ")",
                          std::to_string(o.target));
  }
  AttackResult r;
  r.model = keras_model_from_config(arch, "--arch " + o.arch);
  init_weights(r.model, seeds.init);
  r.trigger = make_trigger(o.trigger, r.model.input_shape());
  TensorData train = poison(in.train, r.trigger, {o.poison_rate, o.target, seeds.poison});
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
  t.progress = progress;
  auto start = std::chrono::steady_clock::now();
  r.history = train_model(r.model, train, t);
  r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.data = make_attack_data(in.held_out, r.trigger, o.target, seeds.split);
  r.clean_accuracy = match_rate(predict(r.model, r.data.test), r.data.test.label_vector());
  r.attack_success_rate =
      match_rate(predict(r.model, r.data.bd_test), r.data.bd_test.label_vector());
  return r;
}

nlohmann::json to_json(const AttackOptions& o) {
  return {{"data", o.data},
          {"test_data", o.test_data},
          {"arch", o.arch},
          {"trigger", o.trigger.trigger},
          {"trigger_size", o.trigger.size},
          {"position", o.trigger.position},
          {"blend", o.trigger.blend},
          {"poison_rate", o.poison_rate},
          {"target", o.target},
          {"epochs", o.epochs},
          {"batch", o.batch},
          {"lr", o.lr},
          {"optimizer", optimizer_name(o.optimizer)},
          {"seed", o.seed},
          {"max_train", o.max_train},
          {"max_steps", o.max_steps}};
}

AttackOptions attack_options_from_json(const nlohmann::json& doc, const std::string& origin) {
  AttackOptions o;
  try {
    o.data = doc.at("data").get<std::string>();
    o.test_data = doc.at("test_data").get<std::string>();
    o.arch = doc.at("arch").get<std::string>();
    o.trigger.trigger = doc.at("trigger").get<std::string>();
    o.trigger.size = doc.at("trigger_size").get<int64_t>();
    o.trigger.position = doc.at("position").get<std::string>();
    o.trigger.blend = doc.at("blend").get<double>();
    o.poison_rate = doc.at("poison_rate").get<double>();
    o.target = doc.at("target").get<int64_t>();
    o.epochs = doc.at("epochs").get<int>();
    o.batch = doc.at("batch").get<int64_t>();
    o.lr = doc.at("lr").get<double>();
    o.optimizer = parse_optimizer(doc.at("optimizer").get<std::string>());
    o.seed = doc.at("seed").get<uint64_t>();
    o.max_train = doc.at("max_train").get<int64_t>();
    o.max_steps = doc.at("max_steps").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail(origin, "attack options", "the fields bdguard attack badnets records", e.what());
  }
  return o;
}

AttackData attack_data_for(const AttackOptions& o) {
  const AttackSeeds seeds = attack_seeds(o.seed);
  TensorData held_out;
  Shape shape;
  if (std::filesystem::is_directory(o.data)) {
    held_out = read_idx(idx_file(o.data, "t10k-images-idx3-ubyte"),
                        idx_file(o.data, "t10k-labels-idx1-ubyte"));
    shape = {1, held_out.images.size(2), held_out.images.size(3)};
  } else {
    AttackInput in = load_attack_input(o, seeds.split);
    held_out = std::move(in.held_out);
    shape = in.shape;
  }
  return make_attack_data(held_out, make_trigger(o.trigger, shape), o.target, seeds.split);
}

}  // namespace bdguard
