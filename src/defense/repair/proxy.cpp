// The proxy of the attack: Neural Cleanse's reversed triggers on held-out clean images
// (bdguard/repair.h).
#include <ATen/ATen.h>

#include <algorithm>

#include "bdguard/finetune.h"
#include "bdguard/repair.h"
#include "bdguard/train.h"

namespace bdguard {

std::vector<const LabelTrigger*> proxy_triggers(const NeuralCleanseResult& nc) {
  std::vector<const LabelTrigger*> out;
  for (int64_t label : nc.flagged) {
    for (const auto& t : nc.labels) {
      if (t.label == label && t.mask.defined()) out.push_back(&t);
    }
  }
  if (!out.empty()) return out;
  const LabelTrigger* smallest = nullptr;
  for (const auto& t : nc.labels) {
    if (!t.refined || !t.mask.defined()) continue;
    if (!smallest || t.mask_l1 < smallest->mask_l1) smallest = &t;
  }
  if (smallest) out.push_back(smallest);
  return out;
}

double proxy_asr(const Model& m, const std::vector<const LabelTrigger*>& triggers,
                 const TensorData& clean, int64_t batch) {
  double worst = 0;
  const std::vector<int64_t> labels = clean.label_vector();
  for (const LabelTrigger* t : triggers) {
    std::vector<int64_t> others;
    for (size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] != t->label) others.push_back(static_cast<int64_t>(i));
    }
    if (others.empty()) continue;
    const TensorData chosen = clean.subset(others);
    const at::Tensor x = chosen.images.to(at::kFloat);
    const at::Tensor mask = t->mask.unsqueeze(0).unsqueeze(0);  // (1, 1, H, W)
    TensorData stamped{(1 - mask) * x + mask * t->pattern.unsqueeze(0),
                       at::full({chosen.size()}, t->label, at::kLong)};
    worst = std::max(worst, accuracy(m, stamped, batch));
  }
  return worst;
}

AttackProxy make_attack_proxy(const Model& m, const TensorData& clean, uint64_t seed,
                              const NeuralCleanseResult* given, const NeuralCleanseOptions& nc,
                              NeuralCleanseResult* own) {
  ValidationSplit split = split_validation(clean, kFinetuneHoldout, seed);
  AttackProxy p;
  NeuralCleanseResult local;
  if (given) {
    p.source = "the given Neural Cleanse result";
  } else {
    if (!own) own = &local;
    *own = neural_cleanse(m, split.train, nc);
    given = own;
    p.source = "Neural Cleanse on the training part of the clean data";
  }
  for (const LabelTrigger* t : proxy_triggers(*given)) p.triggers.push_back(*t);
  p.holdout = std::move(split.holdout);
  return p;
}

double proxy_asr(const Model& m, const AttackProxy& p, int64_t batch) {
  std::vector<const LabelTrigger*> triggers;
  for (const auto& t : p.triggers) triggers.push_back(&t);
  return proxy_asr(m, triggers, p.holdout, batch);
}

nlohmann::json to_json(const AttackProxy& p) {
  std::vector<int64_t> labels;
  for (const auto& t : p.triggers) labels.push_back(t.label);
  return {{"labels", labels}, {"source", p.source}, {"n_holdout", p.holdout.size()}};
}

}  // namespace bdguard
