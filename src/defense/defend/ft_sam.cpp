// ft-sam: fine-tuning with sharpness-aware minimisation (Zhu, Wei, Shen, Fan, Wu,
// ICCV 2023), as BackdoorBench v2.2's defense/ft-sam.py and utils/defense_utils/sam do
// it, on the clean training part.
//
// Each step, on label-smoothed cross-entropy (`label_smoothing` s: 1 - s on the label,
// s / (classes - 1) elsewhere): the gradient g at the weights w; with `adaptive` (ASAM,
// the original's default) the weights move to w + e, e = rho * w^2 g / ||abs(w) g||
// (without: e = rho * g / ||g||), norms over all parameters together; the gradient there
// is taken, the weights go back to w and SGD (momentum 0.9, weight decay
// `weight_decay`) steps with it. rho is the constant `rho` (the original's rho_max =
// rho_min = 2); its gradient decomposition has alpha 0, so none is done. The learning
// rate falls from `lr` to 0 along one cosine over all steps (the original steps a
// CosineAnnealingLR of T_max 100 once per batch). Gradients are clipped as bdguard's
// fine-tuning does; the epoch with the best held-out accuracy is kept (the original
// keeps the last). Pruned channels stay exactly zero (their gradient is zeroed before
// the perturbation, so e is zero there too). Augmentation is not applied.
#include <ATen/ATen.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "methods.h"
#include "own_loop.h"

namespace bdguard::defense {
namespace {

constexpr uint64_t kOrderSalt = 0x6674736dULL;  // "ftsm"
constexpr double kPerturbEps = 1e-12;           // sam.py's perturb_eps
// The original: 100 epochs of batches of 256 on 5 % of CIFAR-10 (2,500 images, 1,000
// steps); 20 keep the demo (1,600 images to train on) at 140 steps, under a minute on 2 cores.
constexpr int kFtSamEpochs = 20;

struct Sam {
  double rho = 0;
  bool adaptive = true;
};

// Moves the parameters to w + e (their .grad holds g) and returns e.
std::vector<at::Tensor> climb(const std::vector<at::Tensor>& params, const Sam& s) {
  at::NoGradGuard no_grad;
  double sq = 0;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    const at::Tensor t = s.adaptive ? p.abs() * p.grad() : p.grad();
    sq += t.to(at::kDouble).pow(2).sum().item<double>();
  }
  const double scale = s.rho / (std::sqrt(sq) + kPerturbEps);
  std::vector<at::Tensor> e(params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    if (!params[k].grad().defined()) continue;
    e[k] = params[k].grad() * scale;
    if (s.adaptive) e[k] = e[k] * params[k].pow(2);
    params[k].add_(e[k]);
  }
  return e;
}

}  // namespace

nlohmann::json ft_sam_schema() {
  nlohmann::json s = nlohmann::json::object();
  add_tuning_options(s, kFtSamEpochs, "fine-tuning epochs (the original: 100)", 0.01, 256);
  s["weight_decay"] = option(5e-4, "SGD weight decay", 0, 1e6);
  s["rho"] = option(2.0, "radius of the weight perturbation", 0, 1e6);
  s["adaptive"] = option(true, "adaptive SAM (ASAM): the perturbation scaled by abs(w)");
  s["label_smoothing"] = option(0.1, "label smoothing of the cross-entropy", 0, 0.999);
  return s;
}

void run_ft_sam(const Context& c, DefenseResult& r) {
  Model& m = r.model;
  const PrunedZeros pruned(m);
  const Sam sam{get_double(c.params, "rho"), c.params.at("adaptive").get<bool>()};
  const double smoothing = get_double(c.params, "label_smoothing");
  const double weight_decay = get_double(c.params, "weight_decay");

  c.stage("sharpness-aware fine-tuning");
  const OwnLoop loop = own_loop(c, kOrderSalt, /*cosine=*/true);
  const auto sgd = [&](const std::vector<at::Tensor>& params) {
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(loop.lr).momentum(0.9).weight_decay(weight_decay));
  };
  const auto step = [&](const TensorData& b, const std::vector<at::Tensor>& params) {
    const at::Tensor loss = smoothed_cross_entropy(logits(m, b.images), b.labels, smoothing);
    loss.backward();
    const double value = loss.item<double>();
    if (!std::isfinite(value)) return value;
    pruned.mask_gradients(params);
    const std::vector<at::Tensor> e = climb(params, sam);
    for (const auto& p : params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    smoothed_cross_entropy(logits(m, b.images), b.labels, smoothing).backward();
    at::NoGradGuard no_grad;
    for (size_t k = 0; k < params.size(); ++k) {
      if (e[k].defined()) params[k].sub_(e[k]);
    }
    return value;
  };
  r.figures = train_own_loss(m, c, loop, pruned, sgd, step);
}

}  // namespace bdguard::defense
