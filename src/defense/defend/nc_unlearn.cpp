// nc-unlearn: Neural Cleanse's mitigation by unlearning (Wang et al., S&P 2019, VI-C).
// The reversed trigger of every flagged label is stamped, x' = (1 - m) x + m p, on a
// seeded `unlearn_fraction` of the clean training part, the images keeping their true
// labels (one stamped copy of those images per flagged label, as BackdoorBench does),
// and the model is fine-tuned on that set. With no label flagged, `unflagged` decides:
// "smallest" unlearns the trigger of the label whose refined mask is smallest (the
// attack's proxy, repair.h; with 10 labels Neural Cleanse's anomaly index rarely passes
// 2), "none" returns the model unchanged (the original, which unlearns flagged labels
// only). `untargeted` on (bdguard's extension; off by default) also reverses one trigger
// with no target label (untargeted_trigger, detect.h: what an all-to-all attack's trigger
// is, where no label's trigger sends every image to it) on the training part and
// unlearns it the same way.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "bdguard/error.h"
#include "bdguard/repair.h"
#include "methods.h"

namespace bdguard::defense {
namespace {

constexpr uint64_t kStampSalt = 0x756e6c6561726eULL;  // "unlearn"
// The stamped images carry the unlearning signal, so a gentler step than plain
// fine-tuning's suffices, for longer: chosen on the demo's held-out validation images,
// where 20 epochs at 0.01 kept 1.6 points more accuracy than 15 at 0.02 at the same ASR
// (README).
constexpr double kUnlearnLr = 0.01;
constexpr int kUnlearnEpochs = 20;

// The smallest L1 norm of a refined label's mask (infinity when none is refined).
double smallest_mask_l1(const NeuralCleanseResult& nc) {
  double out = std::numeric_limits<double>::infinity();
  for (const LabelTrigger& t : nc.labels) {
    if (t.refined && t.mask.defined()) out = std::min(out, t.mask_l1);
  }
  return out;
}

}  // namespace

nlohmann::json nc_unlearn_schema() {
  nlohmann::json s = nlohmann::json::object();
  s["unlearn_fraction"] = option(0.2, "fraction of the clean training images stamped", 0, 1);
  s["unflagged"] = option("smallest",
                          "no label flagged: unlearn the smallest mask's trigger (smallest), or "
                          "return the model unchanged (none, the original)");
  s["unflagged"]["choices"] = {"smallest", "none"};
  s["untargeted"] = option("off",
                           "also unlearn one reversed trigger with no target label, which "
                           "sends the images to any other label (on), or not (off)");
  s["untargeted"]["choices"] = {"off", "on"};
  add_finetune_options(s, kUnlearnEpochs, kUnlearnLr, kFinetuneBatch);
  return s;
}

void run_nc_unlearn(const Context& c, DefenseResult& r) {
  NeuralCleanseResult own;
  const NeuralCleanseResult* nc = c.data.neural_cleanse;
  if (!nc) {
    c.stage("Neural Cleanse");
    NeuralCleanseOptions o = c.options.neural_cleanse;
    if (!o.progress) o.progress = c.options.progress;
    own = neural_cleanse(c.badnet, c.data.clean, o);
    nc = &own;
  }
  r.figures["flagged"] = nc->flagged;
  r.figures["neural_cleanse_seconds"] = nc->seconds;
  r.figures["neural_cleanse_given"] = c.data.neural_cleanse != nullptr;
  std::vector<int64_t> labels_unlearned = nc->flagged;
  if (labels_unlearned.empty() && c.params.at("unflagged").get<std::string>() == "smallest") {
    for (const LabelTrigger* t : proxy_triggers(*nc)) labels_unlearned.push_back(t->label);
  }
  r.figures["unlearned_labels"] = labels_unlearned;
  std::vector<LabelTrigger> triggers;
  for (int64_t label : labels_unlearned) {
    auto it = std::find_if(nc->labels.begin(), nc->labels.end(),
                           [&](const LabelTrigger& t) { return t.label == label; });
    if (it == nc->labels.end() || !it->mask.defined()) {
      fail<InvalidArgument>("", "nc-unlearn: Neural Cleanse result",
                            "the trigger of label " + std::to_string(label), "none");
    }
    triggers.push_back(*it);
  }
  if (c.params.at("untargeted").get<std::string>() == "on") {
    c.stage("untargeted trigger");
    const auto t0 = std::chrono::steady_clock::now();
    triggers.push_back(untargeted_trigger(c.badnet, c.split.train, c.options.neural_cleanse));
    r.figures["untargeted"] = {
        {"mask_l1", triggers.back().mask_l1},
        {"smallest_label_mask_l1", smallest_mask_l1(*nc)},
        {"attack_success", triggers.back().attack_success},
        {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
  }
  if (triggers.empty()) {
    r.figures["unlearned"] = false;
    r.figures["note"] = "Neural Cleanse flagged no label: the model is returned unchanged";
    return;
  }
  const TensorData& train = c.split.train;
  const int64_t n = train.size();
  const int64_t n_stamp = std::clamp<int64_t>(
      std::llround(get_double(c.params, "unlearn_fraction") * static_cast<double>(n)), 0, n);
  std::vector<int64_t> order = Rng(c.options.seed ^ kStampSalt).permutation(n);
  std::vector<int64_t> stamped(order.begin(), order.begin() + n_stamp);
  std::vector<int64_t> kept(order.begin() + n_stamp, order.end());
  std::sort(stamped.begin(), stamped.end());
  std::sort(kept.begin(), kept.end());

  std::vector<at::Tensor> images{train.subset(kept).images.to(at::kFloat)};
  std::vector<at::Tensor> labels{train.subset(kept).labels};
  const TensorData chosen = train.subset(stamped);
  const at::Tensor x = chosen.images.to(at::kFloat);
  for (const LabelTrigger& t : triggers) {
    const at::Tensor m = t.mask.unsqueeze(0).unsqueeze(0);  // (1, 1, H, W)
    images.push_back((1 - m) * x + m * t.pattern.unsqueeze(0));
    labels.push_back(chosen.labels);
  }
  const TensorData unlearn{at::cat(images), at::cat(labels)};
  r.figures["unlearned"] = true;
  r.figures["n_stamped"] = n_stamp * static_cast<int64_t>(triggers.size());
  r.figures["n_unlearn"] = unlearn.size();

  c.stage("fine-tuning");
  FinetuneRun run =
      finetune_in_memory(r.model, unlearn, c.split.holdout, c.poisoned(), finetune_options(c, nc));
  nlohmann::json f = finetune_figures(run);
  for (auto& [k, v] : f.items()) r.figures[k] = v;
}

}  // namespace bdguard::defense
