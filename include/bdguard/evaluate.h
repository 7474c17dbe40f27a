// Running models over data sets: predicted labels, accuracy and attack success rate.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "bdguard/dataset.h"
#include "bdguard/model.h"

namespace bdguard {

// Called after each batch with the images done so far and the total.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

constexpr int64_t kDefaultBatch = 512;

// Predicted labels of every image, for each model, reading each batch of the file once.
std::vector<std::vector<int64_t>> predict_dataset(const std::vector<const Model*>& models,
                                                  const LabDataset& data,
                                                  int64_t batch = kDefaultBatch,
                                                  const ProgressFn& progress = {});

// 100 * hits / n, or 0 for n = 0.
double percent(int64_t hits, int64_t n);
// Percentage of predictions equal to the labels (clean accuracy; on a poisoned set,
// whose labels are the attack target, the attack success rate).
double match_rate(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels);

}  // namespace bdguard
