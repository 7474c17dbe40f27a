// The training loop shared by `attack badnets` and `finetune` (see train.h).
#include "bdguard/train.h"

#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <memory>

#include "bdguard/error.h"
#include "bdguard/ops.h"

namespace bdguard {
namespace {

at::Tensor index_tensor(const std::vector<int64_t>& index, size_t begin, size_t end) {
  at::Tensor t = at::empty({static_cast<int64_t>(end - begin)}, at::kLong);
  std::copy(index.begin() + static_cast<std::ptrdiff_t>(begin),
            index.begin() + static_cast<std::ptrdiff_t>(end), t.data_ptr<int64_t>());
  return t;
}

// The pre-softmax output: cross-entropy on it is exact where log(softmax) underflows.
at::Tensor logits_of(const Model& m, const at::Tensor& x) {
  return m.run(x, {m.logits_index()})[0];
}

// Keras' fan-in and fan-out of a kernel: the last two axes, times the receptive field.
std::pair<double, double> fans(const Shape& s) {
  if (s.size() < 2) return {1.0, 1.0};
  double receptive = 1;
  for (size_t i = 0; i + 2 < s.size(); ++i) receptive *= static_cast<double>(s[i]);
  return {static_cast<double>(s[s.size() - 2]) * receptive,
          static_cast<double>(s.back()) * receptive};
}

// Makes the trainable parameters autograd leaves and, with `batch_norm_training`, puts
// every BatchNormalization in training mode (batch statistics; its running mean and
// variance, made tensors of their own, updated in place: BatchNormOp) for a scope, and
// undoes both however training ends.
class TrainableWeights {
 public:
  TrainableWeights(Model& m, bool batch_norm_training) : m_(m) {
    for (size_t i = 0; i < m_.size() && batch_norm_training; ++i) {
      Node& n = m_.node(i);
      auto* bn = n.kind == NodeKind::kOp ? dynamic_cast<BatchNormOp*>(n.op.get()) : nullptr;
      if (bn == nullptr) continue;
      for (size_t k = 3; k < 5 && k < n.inputs.size(); ++k) {
        if (n.inputs[k] < 0) continue;
        at::Tensor& v = m_.node(static_cast<size_t>(n.inputs[k])).value;
        v = v.detach().clone(at::MemoryFormat::Contiguous);
      }
      bn->set_training(true);
      batch_norms_.push_back(bn);
    }
    set(true);
  }
  ~TrainableWeights() {
    for (BatchNormOp* bn : batch_norms_) bn->set_training(false);
    set(false);
  }
  // Sets every BatchNormalization's running statistics to the average of its batch
  // statistics over `data` (in batches of `batch`), for the weights as trained. Their
  // exponential average over the training steps does not serve for inference: with
  // Keras' momentum 0.99, a few hundred steps leave a share of the initial (0, 1) and of
  // the early weights' statistics in it (vgg on 6,000 Fashion-MNIST images, 2 epochs:
  // 14 % clean accuracy on its running statistics; docs/architectures.md). The weights
  // are left as they are.
  void recompute_batch_norm_statistics(const TensorData& data, int64_t batch) {
    if (batch_norms_.empty()) return;
    set(false);
    for (BatchNormOp* bn : batch_norms_) bn->set_averaging(true);
    for (int64_t s = 0; s < data.size(); s += batch) {
      const at::Tensor x = data.images.narrow(0, s, std::min(batch, data.size() - s));
      m_.forward(x.to(at::kFloat));  // training mode: grad mode on, no graph (no weight needs one)
    }
    for (BatchNormOp* bn : batch_norms_) bn->set_averaging(false);
  }
  TrainableWeights(const TrainableWeights&) = delete;
  TrainableWeights& operator=(const TrainableWeights&) = delete;

 private:
  void set(bool on) {
    for (int i : m_.parameter_nodes()) {
      at::Tensor& v = m_.node(static_cast<size_t>(i)).value;
      v = v.detach().requires_grad_(on);
    }
  }
  Model& m_;
  std::vector<BatchNormOp*> batch_norms_;
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<at::Tensor>& params,
                                                        const TrainOptions& o) {
  if (o.optimizer == Optimizer::kSgd) {
    return std::make_unique<torch::optim::SGD>(params,
                                               torch::optim::SGDOptions(o.lr).momentum(o.momentum));
  }
  return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr));
}

void set_lr(torch::optim::Optimizer& opt, Optimizer kind, double lr) {
  for (auto& group : opt.param_groups()) {
    if (kind == Optimizer::kSgd) {
      static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
    } else {
      static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    }
  }
}

void check_training_data(const Model& m, const TensorData& data, const TrainOptions& o) {
  const Shape in = m.input_shape();
  if (in.size() != 3 || data.images.dim() != 4 || data.images.size(1) != in[0] ||
      data.images.size(2) != in[1] || data.images.size(3) != in[2]) {
    fail<ShapeMismatch>(
        "", "training images", "(N, C, H, W) for the model's input " + shape_str(in),
        data.images.defined()
            ? shape_str(Shape(data.images.sizes().begin(), data.images.sizes().end()))
            : "none");
  }
  if (data.labels.dim() != 1 || data.labels.size(0) != data.images.size(0)) {
    fail<ShapeMismatch>("", "training labels", "one label per image", "another count");
  }
  if (data.size() == 0) fail<InvalidArgument>("", "training data", "at least one image", "none");
  int64_t lo = data.labels.min().item<int64_t>(), hi = data.labels.max().item<int64_t>();
  if (lo < 0 || hi >= m.num_classes()) {
    fail<InvalidArgument>("", "training labels",
                          "classes in [0, " + std::to_string(m.num_classes()) + ")",
                          "labels in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  if (o.batch < 1 || o.epochs < 0 || !(o.lr > 0) || !std::isfinite(o.lr)) {
    fail<InvalidArgument>("", "training options", "batch >= 1, epochs >= 0, a positive lr",
                          "batch " + std::to_string(o.batch) + ", epochs " +
                              std::to_string(o.epochs) + ", lr " + std::to_string(o.lr));
  }
}

}  // namespace

TensorData TensorData::subset(const std::vector<int64_t>& index) const {
  at::Tensor ix = index_tensor(index, 0, index.size());
  return {images.index_select(0, ix), labels.index_select(0, ix)};
}

std::vector<int64_t> TensorData::label_vector() const {
  at::Tensor l = labels.to(at::kLong).contiguous();
  return {l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel()};
}

TensorData read_tensor_data(const LabDataset& data) {
  Batch b = data.read_all();
  return {b.images, b.labels};
}

Optimizer parse_optimizer(const std::string& name) {
  if (name == "sgd") return Optimizer::kSgd;
  if (name == "adam") return Optimizer::kAdam;
  throw InvalidArgument(describe("--optimizer", "", "sgd or adam", "'" + name + "'"));
}

const char* optimizer_name(Optimizer o) { return o == Optimizer::kSgd ? "sgd" : "adam"; }

Rng::Rng(uint64_t seed) : gen_(seed) {}

uint64_t Rng::next() { return gen_(); }

double Rng::uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }

uint64_t Rng::below(uint64_t n) {
  // Rejection sampling: no modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do {
    r = gen_();
  } while (r >= limit);
  return r % n;
}

std::vector<int64_t> Rng::permutation(int64_t n) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(p[static_cast<size_t>(i)], p[below(static_cast<uint64_t>(i) + 1)]);
  }
  return p;
}

void init_weights(Model& m, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < m.size(); ++i) {
    Node& n = m.node(i);
    if (n.kind != NodeKind::kParam) continue;
    // Drawn in the file's (Keras) layout, element by element, then put in the graph's.
    Shape graph(n.value.sizes().begin(), n.value.sizes().end()), file = graph;
    for (size_t k = 0; k < n.file_order.size(); ++k) {
      file[k] = graph[static_cast<size_t>(n.file_order[k])];
    }
    at::Tensor t = at::zeros(file, at::kFloat);
    std::string suffix = n.source.substr(n.source.rfind('/') + 1);
    suffix = suffix.substr(0, suffix.find(':'));
    if (suffix == "kernel") {
      auto [fan_in, fan_out] = fans(file);
      const double limit = std::sqrt(6.0 / (fan_in + fan_out));
      float* p = t.data_ptr<float>();
      for (int64_t k = 0; k < t.numel(); ++k) {
        p[k] = static_cast<float>((2 * rng.uniform() - 1) * limit);
      }
    } else if (suffix == "gamma" || suffix == "moving_variance") {
      t.fill_(1.0);
    }
    if (!n.file_order.empty()) {
      std::vector<int64_t> inv(n.file_order.size());
      for (size_t k = 0; k < inv.size(); ++k)
        inv[static_cast<size_t>(n.file_order[k])] = static_cast<int64_t>(k);
      t = t.permute(inv).contiguous();
    }
    n.value = t;
  }
}

namespace {

// Scales every gradient by max_norm / (global L2 norm) when that norm exceeds max_norm
// (as torch.nn.utils.clip_grad_norm_). Non-finite norms are left to the caller's check.
void clip_gradients(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  double sum = 0;
  for (const auto& p : params) {
    if (p.grad().defined()) sum += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sum);
  if (!std::isfinite(norm) || norm <= max_norm) return;
  const double scale = max_norm / (norm + 1e-6);
  for (const auto& p : params) {
    if (p.grad().defined()) p.grad().mul_(scale);
  }
}

// Each image of `x` (N, C, H, W) moved by a random (dy, dx) in [-s, s], zeros shifted in.
at::Tensor shifted(const at::Tensor& x, int s, Rng& rng) {
  if (s <= 0) return x;
  at::NoGradGuard no_grad;
  const int64_t h = x.size(2), w = x.size(3);
  at::Tensor padded = at::constant_pad_nd(x, {s, s, s, s}, 0);
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(x.size(0)));
  for (int64_t i = 0; i < x.size(0); ++i) {
    const auto dy = static_cast<int64_t>(rng.below(2 * static_cast<uint64_t>(s) + 1));
    const auto dx = static_cast<int64_t>(rng.below(2 * static_cast<uint64_t>(s) + 1));
    out.push_back(padded[i].narrow(1, dy, h).narrow(2, dx, w));
  }
  return at::stack(out);
}

}  // namespace

std::vector<EpochStats> train_model(Model& m, const TensorData& data, const TrainOptions& o) {
  check_training_data(m, data, o);
  TrainableWeights trainable(m, o.batch_norm_training);
  std::vector<at::Tensor> params = m.parameters();
  if (!o.zero_masks.empty() && o.zero_masks.size() != params.size()) {
    fail<InvalidArgument>("", "zero masks", std::to_string(params.size()) + " masks",
                          std::to_string(o.zero_masks.size()));
  }
  for (size_t k = 0; k < o.zero_masks.size(); ++k) {
    if (o.zero_masks[k].defined() && (o.zero_masks[k].sizes() != params[k].sizes() ||
                                      o.zero_masks[k].scalar_type() != at::kBool)) {
      fail<InvalidArgument>("", "zero mask " + std::to_string(k),
                            "a bool tensor of its weight's shape", "another tensor");
    }
  }
  auto optimizer = make_optimizer(params, o);
  Rng rng(o.seed), shift_rng(o.seed ^ 0x7368696674ULL);
  const int64_t n = data.size();
  const int64_t steps = (n + o.batch - 1) / o.batch;
  const int64_t total_steps =
      o.max_steps >= 0 ? std::min<int64_t>(o.max_steps, steps * o.epochs) : steps * o.epochs;
  int64_t done_steps = 0;
  std::vector<EpochStats> history;
  bool diverged = false;
  for (int epoch = 1; epoch <= o.epochs && !diverged; ++epoch) {
    if (o.max_steps >= 0 && done_steps >= o.max_steps) break;
    auto start = std::chrono::steady_clock::now();
    std::vector<int64_t> order = rng.permutation(n);
    double loss_sum = 0;
    int64_t hits = 0, seen = 0;
    for (int64_t s = 0; s < steps; ++s) {
      if (o.max_steps >= 0 && done_steps >= o.max_steps) break;
      size_t begin = static_cast<size_t>(s * o.batch);
      size_t end = static_cast<size_t>(std::min(n, (s + 1) * o.batch));
      at::Tensor ix = index_tensor(order, begin, end);
      at::Tensor x = shifted(data.images.index_select(0, ix).to(at::kFloat), o.shift, shift_rng);
      at::Tensor y = data.labels.index_select(0, ix).to(at::kLong);
      if (o.cosine_decay) {
        const double lr = 0.5 * o.lr *
                          (1 + std::cos(M_PI * static_cast<double>(done_steps) /
                                        static_cast<double>(std::max<int64_t>(total_steps, 1))));
        set_lr(*optimizer, o.optimizer, lr);
      }
      optimizer->zero_grad();
      at::Tensor z = logits_of(m, x);
      at::Tensor loss = at::nll_loss(at::log_softmax(z, 1), y);
      loss.backward();
      for (size_t k = 0; k < o.zero_masks.size(); ++k) {
        if (o.zero_masks[k].defined() && params[k].grad().defined()) {
          params[k].grad().masked_fill_(o.zero_masks[k], 0.0);
        }
      }
      if (o.clip_grad_norm > 0) clip_gradients(params, o.clip_grad_norm);
      optimizer->step();
      {
        at::NoGradGuard no_grad;
        for (size_t k = 0; k < o.zero_masks.size(); ++k) {
          if (o.zero_masks[k].defined()) params[k].masked_fill_(o.zero_masks[k], 0.0);
        }
      }
      if (o.after_step) o.after_step(m);
      ++done_steps;
      const auto nb = static_cast<int64_t>(end - begin);
      const double step_loss = loss.item<double>();
      if (!std::isfinite(step_loss)) {
        diverged = true;
        break;
      }
      loss_sum += step_loss * static_cast<double>(nb);
      hits += z.argmax(1).eq(y).sum().item<int64_t>();
      seen += nb;
      if (o.progress) {
        o.progress({epoch, o.epochs, s + 1, steps, loss_sum / static_cast<double>(seen),
                    percent(hits, seen)});
      }
    }
    EpochStats st;
    st.epoch = epoch;
    st.loss = seen ? loss_sum / static_cast<double>(seen) : 0;
    st.accuracy = percent(hits, seen);
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    st.diverged = diverged;
    history.push_back(st);
    if (o.on_epoch && !diverged) o.on_epoch(m, st);
  }
  if (done_steps > 0 && !diverged) trainable.recompute_batch_norm_statistics(data, o.batch);
  return history;
}

std::vector<int64_t> predict(const Model& m, const TensorData& data, int64_t batch) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(data.size()));
  for (int64_t s = 0; s < data.size(); s += batch) {
    at::Tensor x = data.images.narrow(0, s, std::min(batch, data.size() - s)).to(at::kFloat);
    at::Tensor labels = m.forward(x).argmax(1).contiguous();
    out.insert(out.end(), labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
  }
  return out;
}

double accuracy(const Model& m, const TensorData& data, int64_t batch) {
  return match_rate(predict(m, data, batch), data.label_vector());
}

}  // namespace bdguard
