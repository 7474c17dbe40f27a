// fst: Feature Shift Tuning (Min, Qin, Shen, Cheng, NeurIPS 2023), as
// AISafety-HKUST/stable_backdoor_purification's fine_tune/ft.py (--ft_mode fst) does it,
// on the clean training part.
//
// The classifier head (the Gemm computing the logits: a Keras Dense, a PyTorch Linear)
// is re-initialised: weight and bias uniform in +-1/sqrt(fan_in), seeded. Then the whole
// network is fine-tuned on CE(f(x), y) + `alpha` * <W, W_0>, the inner product of the
// head's weight W with the BadNet's W_0 (so W turns away from W_0), SGD with momentum
// 0.9, lr `lr` falling to 0 along a cosine; after every step W is rescaled to the
// Frobenius norm of W_0. Gradients are clipped as bdguard's fine-tuning does. The epoch
// with the best held-out accuracy is kept (the original keeps the last: `keep` "last").
// Pruned channels stay exactly zero, the head's pruned input features too (zeroed again
// after the re-initialisation). Augmentation is not applied (the data are the user's).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "bdguard/error.h"
#include "methods.h"
#include "own_loop.h"

namespace bdguard::defense {
namespace {

constexpr uint64_t kInitSalt = 0x66737469ULL;   // "fsti"
constexpr uint64_t kOrderSalt = 0x6673746fULL;  // "fsto"

// The ops a head's output may pass through on its way to the logits.
bool passes_through(const Node& n) {
  return n.is_op("Add") || n.is_op("Identity") || n.is_op("Reshape") || n.is_op("Flatten");
}

// The Gemm whose output the logits are.
int classifier_head(const Model& m) {
  int i = m.logits_index();
  while (!m.node(static_cast<size_t>(i)).is_op("Gemm")) {
    const Node& n = m.node(static_cast<size_t>(i));
    int next = -1;
    if (n.kind == NodeKind::kOp && passes_through(n)) {
      for (int in : n.inputs) {
        if (in >= 0 && m.node(static_cast<size_t>(in)).kind == NodeKind::kOp) {
          next = in;
          break;
        }
      }
    }
    if (next < 0) {
      const std::string found =
          n.kind == NodeKind::kOp ? std::string(n.op->type()) + " '" + n.name + "'" : n.name;
      fail<InvalidArgument>(m.origin, "fst: the layer computing the logits",
                            "a Gemm (a Keras Dense, a PyTorch Linear)", found);
    }
    i = next;
  }
  return i;
}

// Position of parameter node `node` in Model::parameter_nodes().
size_t param_position(const Model& m, int node) {
  const std::vector<int> nodes = m.parameter_nodes();
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (nodes[k] == node) return k;
  }
  fail<InvalidArgument>(
      m.origin, "fst: the head's parameter '" + m.node(static_cast<size_t>(node)).name + "'",
      "a trainable parameter", "a frozen one");
}

}  // namespace

nlohmann::json fst_schema() {
  nlohmann::json s = nlohmann::json::object();
  add_tuning_options(s, 10, "fine-tuning epochs (the original's README: 10)", 0.01, 128);
  s["alpha"] = option(0.1, "weight of <W, W_0>, the head's weight against the BadNet's", 0, 1e6);
  return s;
}

void run_fst(const Context& c, DefenseResult& r) {
  Model& m = r.model;
  const PrunedZeros pruned(m);
  const ChannelUnit head = linear_output_unit(m, classifier_head(m));
  const int w_node = head.slices[0].param;
  at::Tensor& w = m.node(static_cast<size_t>(w_node)).value;
  const at::Tensor w0 = w.detach().clone();
  const double norm0 = w0.norm().item<double>();
  const double bound = 1 / std::sqrt(static_cast<double>(w0.numel() / head.channels));
  {
    at::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.options.seed ^ kInitSalt);
    w.uniform_(-bound, bound, gen);
    if (head.slices.size() > 1) {
      m.node(static_cast<size_t>(head.slices[1].param)).value.uniform_(-bound, bound, gen);
    }
  }
  {
    const std::vector<at::Tensor> params = m.parameters();
    pruned.reapply(params);
  }
  const size_t k = param_position(m, w_node);
  const double alpha = get_double(c.params, "alpha");

  c.stage("feature shift tuning");
  const OwnLoop loop = own_loop(c, kOrderSalt, /*cosine=*/true);
  const auto sgd = [&](const std::vector<at::Tensor>& params) {
    return std::make_unique<torch::optim::SGD>(params,
                                               torch::optim::SGDOptions(loop.lr).momentum(0.9));
  };
  const auto step = [&](const TensorData& b, const std::vector<at::Tensor>& params) {
    const at::Tensor ce = at::nll_loss(at::log_softmax(logits(m, b.images), 1), b.labels);
    const at::Tensor loss = ce + alpha * (params[k] * w0).sum();
    loss.backward();
    return loss.item<double>();
  };
  const auto renormalise = [&](const std::vector<at::Tensor>& params) {
    const double norm = params[k].norm().item<double>();
    if (norm > 0) params[k].mul_(norm0 / norm);
  };
  r.figures = train_own_loss(m, c, loop, pruned, sgd, step, renormalise);
  r.figures["head"] = m.node(static_cast<size_t>(head.node)).name;
  r.figures["head_init_bound"] = bound;
  r.figures["head_cosine_to_badnet"] =
      (w * w0).sum().item<double>() / (w.norm().item<double>() * norm0 + 1e-12);
}

}  // namespace bdguard::defense
