#include "bdguard/evaluate.h"

#include <ATen/ATen.h>

#include "bdguard/error.h"

namespace bdguard {

std::vector<std::vector<int64_t>> predict_dataset(const std::vector<const Model*>& models,
                                                  const LabDataset& data, int64_t batch,
                                                  const ProgressFn& progress) {
  std::vector<std::vector<int64_t>> out(models.size());
  for (auto& o : out) o.reserve(static_cast<size_t>(data.size()));
  at::NoGradGuard no_grad;
  for (int64_t start = 0; start < data.size(); start += batch) {
    int64_t n = std::min(batch, data.size() - start);
    Batch b = data.read(start, n);
    for (size_t m = 0; m < models.size(); ++m) {
      at::Tensor labels = models[m]->forward(b.images).argmax(1).contiguous();
      const int64_t* p = labels.data_ptr<int64_t>();
      out[m].insert(out[m].end(), p, p + n);
    }
    if (progress) progress(start + n, data.size());
  }
  return out;
}

double percent(int64_t hits, int64_t n) {
  return n == 0 ? 0.0 : 100.0 * static_cast<double>(hits) / static_cast<double>(n);
}

double match_rate(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels) {
  if (predicted.size() != labels.size()) {
    throw InvalidArgument(describe("", "predictions", std::to_string(labels.size()) + " labels",
                                   std::to_string(predicted.size())));
  }
  int64_t hits = 0;
  for (size_t i = 0; i < labels.size(); ++i) hits += predicted[i] == labels[i];
  return percent(hits, static_cast<int64_t>(labels.size()));
}

}  // namespace bdguard
