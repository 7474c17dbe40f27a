// sau: Shared Adversarial Unlearning (Wei, Zhang, Zha, Wu, NeurIPS 2023), as
// BackdoorBench v2.2's defense/sau.py does it, on the clean training part.
//
// The BadNet's frozen copy f_0 is the reference; the model f is trained. Each round
// (an epoch, `epochs` of them) goes over the training part in shuffled batches (x, y); for each:
//  1. shared adversarial examples (Shared_PGD): a perturbation per image, started at
//     +`bound` everywhere, `pgd_steps` signed steps of size `pgd_lr` down the gradient of
//     `beta_1` * L_adv + `beta_2` * L_share, each followed by clamping to [-bound, bound]
//     (L_inf), stopping early once every image is a shared adversarial example (f and f_0
//     both moved off their clean label, to the same label). L_adv = -(sum of CE(f(x'), y)
//     over the images f does not yet misclassify + the same for f_0) / 2N; L_share = the
//     Jensen-Shannon divergence of f(x') and f_0(x') (probabilities clamped to 1e-8) summed
//     over the images not yet shared, / N;
//  2. one Adam step (lr `lr`, no weight decay, constant as in the original, whose
//     scheduler is never stepped) on `lambda_1` * CE(f(x), y) + `lambda_3` * L_sar, where
//     L_sar = (-sum log(1e-6 + min(1 - p, 0.999)) - sum log(1 + 1e-6 - max(p, 0.001))) / 2N
//     with p = f(x')'s probability of f_0(x')'s label, over the images whose f_0(x') label
//     is neither y nor f_0(x)'s label (the original's lambda_2 adversarial-training term
//     is 0 by default and left out).
// The perturbation is in units of the pixel range (the original's images are in [0, 1])
// and the perturbed images are not clamped to it, as in the original. The model is in
// inference form throughout (the original's default: model.eval(), no train_mode). The
// last round is kept, as the original does (`keep` "best": the best held-out round).
// Pruned channels stay exactly zero.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adam.h>

#include <cmath>

#include "methods.h"
#include "own_loop.h"

namespace bdguard::defense {
namespace {

constexpr uint64_t kOrderSalt = 0x736175ULL;  // "sau"
constexpr double kProbFloor = 1e-8;           // Shared_PGD's clamp of the probabilities
// The original: 100 rounds of batches of 256 on 5 % of CIFAR-10 (1,000 Adam steps at lr
// 1e-4). On 2 cores bdguard takes fewer rounds at a larger step: 10 rounds of batches of
// 128 at lr 1e-3 (the demo's 1,600 training images: 130 steps).
constexpr int kSauRounds = 10;
constexpr int64_t kSauBatch = 128;
constexpr double kSauLr = 1e-3;

struct Setting {
  double bound = 0, pgd_lr = 0, beta_1 = 0, beta_2 = 0, lambda_1 = 0, lambda_3 = 0;
  int pgd_steps = 0;
  double range = 1;  // the pixel range's width: perturbations are in its units
};

// Per-image cross-entropy.
at::Tensor ce_each(const at::Tensor& z, const at::Tensor& y) {
  return at::nll_loss(at::log_softmax(z, 1), y, {}, at::Reduction::None);
}

// Step 1: the batch's shared adversarial perturbation (N, C, H, W), in pixel-range units.
at::Tensor shared_perturbation(const Model& f, const Model& f0, const TensorData& b,
                               const Setting& s) {
  at::Tensor clean_label, clean_label_0;
  {
    at::NoGradGuard no_grad;
    clean_label = logits(f, b.images).argmax(1);
    clean_label_0 = logits(f0, b.images).argmax(1);
  }
  const double n = static_cast<double>(b.size());
  at::Tensor pert = at::full_like(b.images, s.bound);
  for (int k = 0; k < s.pgd_steps; ++k) {
    at::Tensor d = pert.detach().requires_grad_(true);
    const at::Tensor x = b.images + d * s.range;
    const at::Tensor z = logits(f, x), z0 = logits(f0, x);
    const at::Tensor label = z.argmax(1), label_0 = z0.argmax(1);
    const at::Tensor fooled = label.ne(clean_label), fooled_0 = label_0.ne(clean_label_0);
    const at::Tensor shared = fooled.logical_and(fooled_0).logical_and(label.eq(label_0));
    const at::Tensor adv = -((ce_each(z, b.labels) * fooled.logical_not()).sum() +
                             (ce_each(z0, b.labels) * fooled_0.logical_not()).sum()) /
                           (2 * n);
    const at::Tensor p = at::softmax(z, 1).clamp_min(kProbFloor);
    const at::Tensor q = at::softmax(z0, 1).clamp_min(kProbFloor);
    const at::Tensor mix_log = (0.5 * (p + q)).log();
    const at::Tensor js = 0.5 * (p * p.log() + q * q.log()) - 0.5 * (p * mix_log + q * mix_log);
    const at::Tensor share = (js.sum(1) * shared.logical_not()).sum() / n;
    const at::Tensor loss = s.beta_1 * adv + s.beta_2 * share;
    const at::Tensor g = torch::autograd::grad({loss}, {d})[0];
    pert = (pert - s.pgd_lr * g.sign()).clamp(-s.bound, s.bound).detach();
    if (shared.all().item<bool>()) break;
  }
  return pert;
}

// Step 2's loss, its gradient put into the parameters' .grad.
double unlearning_loss(const Model& f, const Model& f0, const TensorData& b, const at::Tensor& pert,
                       const Setting& s) {
  const int64_t n = b.size();
  const at::Tensor x_adv = b.images + pert * s.range;
  const at::Tensor z = logits(f, at::cat({b.images, x_adv}, 0));
  const at::Tensor z_clean = z.narrow(0, 0, n), z_adv = z.narrow(0, n, n);
  at::Tensor label_0, clean_label_0;
  {
    at::NoGradGuard no_grad;
    label_0 = logits(f0, x_adv).argmax(1);
    clean_label_0 = logits(f0, b.images).argmax(1);
  }
  const at::Tensor poison = label_0.ne(b.labels).logical_and(label_0.ne(clean_label_0));
  const at::Tensor cl = at::nll_loss(at::log_softmax(z_clean, 1), b.labels);
  const at::Tensor p = at::softmax(z_adv, 1).gather(1, label_0.unsqueeze(1)).squeeze(1);
  const at::Tensor sar =
      (-(1e-6 + (1 - p).clamp_max(0.999)).log() - (1 + 1e-6 - p.clamp_min(0.001)).log()) * poison;
  const at::Tensor loss = s.lambda_1 * cl + s.lambda_3 * sar.sum() / (2 * static_cast<double>(n));
  loss.backward();
  return loss.item<double>();
}

}  // namespace

nlohmann::json sau_schema() {
  nlohmann::json s = nlohmann::json::object();
  s["epochs"] =
      option(kSauRounds, "rounds (epochs) of unlearning (the original's n_rounds: 100)", 0, 100000);
  s["lr"] = option(kSauLr, "Adam learning rate, constant (the original: 1e-4)", 1e-12, 1e6);
  s["batch"] = option(kSauBatch, "images per step (the original: 256)", 1, 1 << 20);
  s["bound"] = option(0.2, "L_inf bound of the perturbation, in units of the pixel range", 0, 1e6);
  s["pgd_lr"] = option(0.2, "step of the perturbation's signed gradient steps", 0, 1e6);
  s["pgd_steps"] = option(5, "PGD steps per batch", 0, 100000);
  s["beta_1"] = option(0.01, "PGD: weight of the adversarial loss", 0, 1e6);
  s["beta_2"] = option(1.0, "PGD: weight of the shared (Jensen-Shannon) loss", 0, 1e6);
  s["lambda_1"] = option(1.0, "unlearning: weight of the clean cross-entropy", 0, 1e6);
  s["lambda_3"] = option(1.0, "unlearning: weight of the shared adversarial risk", 0, 1e6);
  s["keep"] =
      keep_option("last", "the weights kept: the last round's, or the best held-out round's");
  return s;
}

void run_sau(const Context& c, DefenseResult& r) {
  Model& m = r.model;
  const PrunedZeros pruned(m);
  const Model reference = c.badnet.clone();
  const auto [lo, hi] = pixel_range(c);
  Setting s;
  s.bound = get_double(c.params, "bound");
  s.pgd_lr = get_double(c.params, "pgd_lr");
  s.pgd_steps = static_cast<int>(get_int(c.params, "pgd_steps"));
  s.beta_1 = get_double(c.params, "beta_1");
  s.beta_2 = get_double(c.params, "beta_2");
  s.lambda_1 = get_double(c.params, "lambda_1");
  s.lambda_3 = get_double(c.params, "lambda_3");
  s.range = hi - lo;

  c.stage("shared adversarial unlearning");
  const OwnLoop loop = own_loop(c, kOrderSalt, /*cosine=*/false);
  const auto adam = [&](const std::vector<at::Tensor>& params) {
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(loop.lr));
  };
  const auto step = [&](const TensorData& b, const std::vector<at::Tensor>& params) {
    (void)params;  // the loss's backward fills their .grad
    return unlearning_loss(m, reference, b, shared_perturbation(m, reference, b, s), s);
  };
  r.figures = train_own_loss(m, c, loop, pruned, adam, step);
  r.figures["pixel_range"] = {lo, hi};
}

}  // namespace bdguard::defense
