// Poisoning the training images, and the attack's four data files (see attack.h).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "bdguard/attack.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"

namespace bdguard {
namespace {

// The first `count` of `candidates` in the seeded order `order`, sorted.
std::vector<int64_t> take(const std::vector<int64_t>& candidates, const std::vector<int64_t>& order,
                          int64_t count) {
  std::vector<int64_t> chosen;
  for (int64_t k = 0; k < count; ++k) {
    chosen.push_back(candidates[static_cast<size_t>(order[static_cast<size_t>(k)])]);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace

TensorData poison(const TensorData& data, const Trigger& trigger, const PoisonOptions& o) {
  if (!(o.rate >= 0 && o.rate <= 1)) {
    fail<InvalidArgument>("--poison-rate", "", "a fraction in [0, 1]", std::to_string(o.rate));
  }
  if (o.mapping == Mapping::kAllToAll && o.classes < 2) {
    fail<InvalidArgument>("--mapping", "all-to-all", "at least 2 classes",
                          std::to_string(o.classes));
  }
  const LabelMap map{o.mapping, o.target, o.classes};
  std::vector<int64_t> labels = data.label_vector();
  std::vector<int64_t> candidates;
  for (size_t i = 0; i < labels.size(); ++i) {
    const bool eligible = o.clean_label ? labels[i] == o.target : map.triggers(labels[i]);
    if (eligible) candidates.push_back(static_cast<int64_t>(i));
  }
  const auto count = static_cast<int64_t>(std::llround(o.rate * static_cast<double>(data.size())));
  if (count > static_cast<int64_t>(candidates.size())) {
    const std::string which = o.clean_label                     ? "of the target class"
                              : o.mapping == Mapping::kAllToAll ? "in the training set"
                                                                : "whose label is not the target";
    fail<InvalidArgument>("--poison-rate", "",
                          "at most " + std::to_string(candidates.size()) + " images " + which,
                          std::to_string(count) + " images");
  }
  Rng rng(o.seed);
  const std::vector<int64_t> chosen =
      take(candidates, rng.permutation(static_cast<int64_t>(candidates.size())), count);
  TensorData out{data.images.to(at::kFloat, false, /*copy=*/true),
                 data.labels.to(at::kLong).clone()};
  if (!chosen.empty()) {
    TensorData picked = out.subset(chosen);
    at::Tensor ix = at::tensor(chosen, at::kLong);
    out.images.index_copy_(0, ix, apply_trigger(trigger, picked.images));
    if (!o.clean_label) {
      std::vector<int64_t> mapped;
      for (int64_t i : chosen) mapped.push_back(map(labels[static_cast<size_t>(i)]));
      out.labels.index_copy_(0, ix, at::tensor(mapped, at::kLong));
    }
  }
  if (o.cross_ratio > 0) {
    // WaNet's noise mode: further images, among those not poisoned, keep their labels.
    std::vector<int64_t> rest;
    size_t c = 0;
    for (int64_t i = 0; i < data.size(); ++i) {
      if (c < chosen.size() && chosen[c] == i) {
        ++c;
      } else {
        rest.push_back(i);
      }
    }
    const auto cross = std::min<int64_t>(
        static_cast<int64_t>(std::llround(o.cross_ratio * static_cast<double>(count))),
        static_cast<int64_t>(rest.size()));
    std::vector<int64_t> noisy =
        take(rest, rng.permutation(static_cast<int64_t>(rest.size())), cross);
    if (!noisy.empty()) {
      at::Tensor ix = at::tensor(noisy, at::kLong);
      out.images.index_copy_(0, ix,
                             apply_wanet_noise(trigger, out.images.index_select(0, ix), rng));
    }
  }
  return out;
}

TensorData poisoned_copies(const TensorData& data, const Trigger& trigger, const LabelMap& map) {
  std::vector<int64_t> labels = data.label_vector();
  std::vector<int64_t> keep, mapped;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (map.triggers(labels[i])) {
      keep.push_back(static_cast<int64_t>(i));
      mapped.push_back(map(labels[i]));
    }
  }
  TensorData picked = data.subset(keep);
  return {apply_trigger(trigger, picked.images), at::tensor(mapped, at::kLong)};
}

TensorData poisoned_copies(const TensorData& data, const Trigger& trigger, int64_t target) {
  return poisoned_copies(data, trigger, LabelMap{Mapping::kAllToOne, target, 0});
}

AttackData make_attack_data(const TensorData& held_out, const Trigger& trigger, const LabelMap& map,
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
  d.bd_valid = poisoned_copies(d.valid, trigger, map);
  d.bd_test = poisoned_copies(d.test, trigger, map);
  return d;
}

AttackData make_attack_data(const TensorData& held_out, const Trigger& trigger, int64_t target,
                            uint64_t seed) {
  return make_attack_data(held_out, trigger, LabelMap{Mapping::kAllToOne, target, 0}, seed);
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

}  // namespace bdguard
