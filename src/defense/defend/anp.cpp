// anp: Adversarial Neuron Pruning (Wu & Wang, NeurIPS 2021; csdongxian/ANP_backdoor).
//
// Every neuron n gets a mask m_n (start 1) and, per mini-batch, multiplicative noise
// d_n, b_n drawn from U(-eps, eps) and moved by one signed ascent step of size eps on
// the clean loss (no projection, as the original). The masks then take one SGD step
// (momentum 0.9) on alpha * CE(clean net) + (1 - alpha) * CE(perturbed net), and are
// clipped to [0, 1]. Neurons that a small perturbation turns into a backdoor end with
// small masks; those at or below a threshold are pruned.
//
// Neurons are the channels of every BatchNormalization where the model has any: its
// scale becomes gamma * (m + d) and its bias beta * (1 + b), and pruning sets gamma to
// 0 (the original's NoisyBatchNorm2d and prune step). A model with none (DeepID) uses
// the output channels of its Conv and Gemm nodes but the last one (the class scores):
// the kernel slice takes the place of gamma and the bias that of beta. BatchNormalization
// runs in inference form (running statistics fixed); the original trains the masks with
// batch statistics.
//
// The original only reports a sweep over thresholds; BackdoorBench picks one with test
// data (its issue #35). Here the threshold is fixed (`threshold`) or, by default, the
// largest of 0, 0.05, ..., 0.9 whose pruned model loses at most `max_drop` points of
// accuracy on the held-out clean validation part.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>

#include "bdguard/error.h"
#include "bdguard/train.h"
#include "methods.h"

namespace bdguard::defense {
namespace {

constexpr uint64_t kAnpSalt = 0x616e70ULL;  // "anp"

// One layer of neurons: the parameter scaled by the mask (gamma, or a kernel whose
// output channels lie along `axis`) and the one scaled by the bias noise (or -1).
struct NeuronLayer {
  std::string name;  // the BatchNormalization or layer node
  int scale = -1, shift = -1;
  int64_t axis = 0, channels = 0;
};

bool has_batch_norm(const Model& m) {
  for (size_t i = 0; i < m.size(); ++i) {
    if (m.node(i).is_op("BatchNormalization")) return true;
  }
  return false;
}

std::vector<NeuronLayer> neuron_layers(const Model& m, std::string& kind) {
  std::vector<NeuronLayer> layers;
  if (has_batch_norm(m)) {
    kind = "BatchNormalization channels";
    for (size_t i = 0; i < m.size(); ++i) {
      const Node& n = m.node(i);
      if (!n.is_op("BatchNormalization")) continue;
      const Node& gamma = m.node(static_cast<size_t>(n.inputs[1]));
      if (gamma.kind != NodeKind::kParam) continue;
      layers.push_back({n.name, n.inputs[1], n.inputs[2], 0, gamma.value.numel()});
    }
    return layers;
  }
  kind = "output channels of Conv and Gemm layers";
  std::vector<int> candidates;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m.node(i).is_op("Conv") || m.node(i).is_op("Gemm")) {
      candidates.push_back(static_cast<int>(i));
    }
  }
  if (!candidates.empty()) candidates.pop_back();  // the class scores: never masked
  for (int i : candidates) {
    ChannelUnit u;
    try {
      u = m.node(static_cast<size_t>(i)).is_op("Conv") ? conv_unit(m, i) : linear_output_unit(m, i);
    } catch (const InvalidArgument&) {
      continue;  // a layer whose weights are not parameters (computed or shared)
    }
    NeuronLayer l{m.node(static_cast<size_t>(i)).name, -1, -1, 0, u.channels};
    for (const ChannelSlice& s : u.slices) {
      if (!s.primary) continue;
      if (m.node(static_cast<size_t>(s.param)).value.dim() > 1) {
        l.scale = s.param;
        l.axis = s.axis;
      } else {
        l.shift = s.param;
      }
    }
    if (l.scale >= 0) layers.push_back(l);
  }
  return layers;
}

// `v` scaled per channel along `axis` by the vector `f`.
at::Tensor scaled(const at::Tensor& v, const at::Tensor& f, int64_t axis) {
  std::vector<int64_t> shape(static_cast<size_t>(v.dim()), 1);
  shape[static_cast<size_t>(axis)] = f.numel();
  return v * f.view(shape);
}

struct Perturbation {
  std::vector<at::Tensor> mask, noise, noise_bias;
};

// The parameters to give Model::run: with noise (d, b) or without (the mask alone).
std::map<int, at::Tensor> given(const Model& m, const std::vector<NeuronLayer>& layers,
                                const Perturbation& p, bool with_noise) {
  std::map<int, at::Tensor> g;
  for (size_t k = 0; k < layers.size(); ++k) {
    const NeuronLayer& l = layers[k];
    const at::Tensor& scale = m.node(static_cast<size_t>(l.scale)).value;
    g[l.scale] = scaled(scale, with_noise ? p.mask[k] + p.noise[k] : p.mask[k], l.axis);
    if (with_noise && l.shift >= 0) {
      const at::Tensor& shift = m.node(static_cast<size_t>(l.shift)).value;
      g[l.shift] = shift * (1 + p.noise_bias[k]);
    }
  }
  return g;
}

at::Tensor loss_of(const Model& m, const at::Tensor& x, const at::Tensor& y,
                   const std::map<int, at::Tensor>& g) {
  at::Tensor z = m.run(x, {m.logits_index()}, g)[0];
  return at::nll_loss(at::log_softmax(z, 1), y);
}

// Gamma (or the kernel slice) of every neuron with mask <= t set to 0.
Model pruned_at(const Model& badnet, const std::vector<NeuronLayer>& layers,
                const std::vector<at::Tensor>& masks, double t, int64_t& count) {
  Model m = badnet.clone();
  count = 0;
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < layers.size(); ++k) {
    at::Tensor& v = m.node(static_cast<size_t>(layers[k].scale)).value;
    const at::Tensor off = masks[k] <= t;
    count += off.sum().item<int64_t>();
    std::vector<int64_t> shape(static_cast<size_t>(v.dim()), 1);
    shape[static_cast<size_t>(layers[k].axis)] = off.numel();
    v.masked_fill_(off.view(shape).expand_as(v), 0);
  }
  return m;
}

}  // namespace

nlohmann::json anp_schema() {
  return {
      {"eps", option(0.4, "bound of the multiplicative noise (anp_eps)", 0, 10)},
      {"alpha",
       option(0.2, "weight of the clean loss against the perturbed one (anp_alpha)", 0, 1)},
      {"mask_lr", option(0.2, "SGD learning rate of the masks (momentum 0.9)", 1e-9, 1e3)},
      {"iterations", option(2000, "mini-batches of mask optimisation (nb_iter)", 1, 10000000)},
      {"batch", option(128, "images per mini-batch", 1, 1 << 20)},
      {"threshold",
       option(-1.0, "prune neurons with mask <= this (-1: choose on the held-out data)", -1, 1)},
      {"max_drop",
       option(2.0, "choice of the threshold: the largest losing at most this many points", 0, 100)},
  };
}

void run_anp(const Context& c, DefenseResult& r) {
  const Model& m = c.badnet;
  std::string kind;
  const std::vector<NeuronLayer> layers = neuron_layers(m, kind);
  if (layers.empty()) {
    fail<InvalidArgument>(m.source_path, "anp neurons",
                          "a BatchNormalization, or a Conv or Gemm layer before the last one",
                          "none");
  }
  const double eps = get_double(c.params, "eps"), alpha = get_double(c.params, "alpha");
  const double lr = get_double(c.params, "mask_lr");
  const int64_t iterations = get_int(c.params, "iterations"), batch = get_int(c.params, "batch");
  const TensorData& train = c.split.train;
  if (train.size() == 0) fail<InvalidArgument>("", "anp training images", "at least 1", "0");

  c.stage("mask optimisation");
  Perturbation p;
  std::vector<at::Tensor> velocity;
  for (const NeuronLayer& l : layers) {
    p.mask.push_back(at::ones({l.channels}, at::kFloat));
    velocity.push_back(at::zeros({l.channels}, at::kFloat));
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(c.options.seed ^ kAnpSalt);
  Rng rng(c.options.seed ^ kAnpSalt);
  const at::Tensor images = train.images.to(at::kFloat);
  double last_loss = 0;
  for (int64_t it = 0; it < iterations; ++it) {
    std::vector<int64_t> pick(static_cast<size_t>(std::min(batch, train.size())));
    for (auto& i : pick) i = static_cast<int64_t>(rng.below(static_cast<uint64_t>(train.size())));
    const at::Tensor idx = at::tensor(pick, at::kLong);
    const at::Tensor x = images.index_select(0, idx), y = train.labels.index_select(0, idx);
    // Noise from U(-eps, eps), then one signed step up the clean loss.
    p.noise.clear();
    p.noise_bias.clear();
    std::vector<at::Tensor> noise_vars;
    for (const NeuronLayer& l : layers) {
      p.noise.push_back(((at::rand({l.channels}, gen) * 2 - 1) * eps).requires_grad_(true));
      p.noise_bias.push_back(((at::rand({l.channels}, gen) * 2 - 1) * eps).requires_grad_(true));
      noise_vars.push_back(p.noise.back());
      if (l.shift >= 0) noise_vars.push_back(p.noise_bias.back());
    }
    if (eps > 0) {
      auto g = torch::autograd::grad({loss_of(m, x, y, given(m, layers, p, true))}, noise_vars, {},
                                     false, false, true);
      for (size_t k = 0, j = 0; k < layers.size(); ++k) {
        p.noise[k] = (p.noise[k] + eps * g[j++].sign()).detach();
        p.noise_bias[k] = layers[k].shift >= 0 ? (p.noise_bias[k] + eps * g[j++].sign()).detach()
                                               : p.noise_bias[k].detach();
      }
    }
    // One step of the masks on alpha * natural + (1 - alpha) * robust loss.
    for (auto& mk : p.mask) mk.requires_grad_(true);
    at::Tensor loss = alpha * loss_of(m, x, y, given(m, layers, p, false));
    if (alpha < 1) loss = loss + (1 - alpha) * loss_of(m, x, y, given(m, layers, p, true));
    auto g = torch::autograd::grad({loss}, p.mask, {}, false, false, true);
    last_loss = loss.item<double>();
    at::NoGradGuard no_grad;
    for (size_t k = 0; k < layers.size(); ++k) {
      at::Tensor grad = g[k].defined() ? g[k] : at::zeros_like(p.mask[k]);
      velocity[k] = velocity[k] * 0.9 + grad;
      p.mask[k] = (p.mask[k].detach() - lr * velocity[k]).clamp_(0, 1);
    }
    if (c.options.progress && ((it + 1) % 20 == 0 || it + 1 == iterations)) {
      c.options.progress(it + 1, iterations);
    }
  }

  c.stage("pruning by mask");
  const double base = accuracy(m, c.split.holdout, c.options.eval_batch);
  const double fixed = get_double(c.params, "threshold"),
               max_drop = get_double(c.params, "max_drop");
  nlohmann::json sweep = nlohmann::json::array();
  double chosen = fixed;
  if (fixed < 0) {
    chosen = 0;
    for (int k = 0; k <= 18; ++k) {
      const double t = k / 20.0;
      int64_t count = 0;
      const Model candidate = pruned_at(m, layers, p.mask, t, count);
      const double acc = accuracy(candidate, c.split.holdout, c.options.eval_batch);
      sweep.push_back({{"threshold", t}, {"pruned", count}, {"holdout_accuracy", acc}});
      if (base - acc <= max_drop) chosen = t;
    }
  }
  int64_t count = 0;
  r.model = pruned_at(m, layers, p.mask, chosen, count);

  nlohmann::json per_layer = nlohmann::json::array();
  int64_t neurons = 0;
  for (size_t k = 0; k < layers.size(); ++k) {
    std::vector<int64_t> off;
    const at::Tensor mk = p.mask[k].contiguous();
    for (int64_t i = 0; i < mk.numel(); ++i) {
      if (mk.data_ptr<float>()[i] <= chosen) off.push_back(i);
    }
    neurons += layers[k].channels;
    per_layer.push_back({{"layer", layers[k].name},
                         {"neurons", layers[k].channels},
                         {"pruned", off},
                         {"min_mask", mk.min().item<double>()}});
  }
  r.figures = {{"neurons", neurons},
               {"neuron_kind", kind},
               {"pruned", count},
               {"threshold", chosen},
               {"threshold_rule", fixed < 0 ? "largest of 0, 0.05, ..., 0.9 losing at most " +
                                                  std::to_string(max_drop).substr(0, 4) +
                                                  " points on the held-out data"
                                            : "fixed"},
               {"holdout_accuracy_unpruned", base},
               {"sweep", sweep},
               {"final_loss", last_loss},
               {"layers", per_layer}};
}

}  // namespace bdguard::defense
