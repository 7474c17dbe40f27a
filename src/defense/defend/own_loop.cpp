// Training-loop pieces of the methods with a loss of their own (own_loop.h).
#include "own_loop.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>

#include "bdguard/error.h"
#include "bdguard/prune.h"

namespace bdguard::defense {

TrainableScope::TrainableScope(Model& m) : m_(m) {
  for (int i : m_.parameter_nodes()) {
    at::Tensor& v = m_.node(static_cast<size_t>(i)).value;
    v = v.detach().requires_grad_(true);
    params_.push_back(v);
  }
}

TrainableScope::~TrainableScope() {
  for (int i : m_.parameter_nodes()) {
    at::Tensor& v = m_.node(static_cast<size_t>(i)).value;
    v = v.detach().requires_grad_(false);
  }
}

PrunedZeros::PrunedZeros(const Model& m) : masks_(pruned_masks(m)) {
  for (const PrunedChannels& p : pruned_channels(m)) {
    channels_ += static_cast<int64_t>(p.channels.size());
  }
}

void PrunedZeros::mask_gradients(const std::vector<at::Tensor>& params) const {
  for (size_t k = 0; k < masks_.size() && k < params.size(); ++k) {
    if (masks_[k].defined() && params[k].grad().defined()) {
      params[k].mutable_grad().masked_fill_(masks_[k], 0.0);
    }
  }
}

void PrunedZeros::reapply(const std::vector<at::Tensor>& params) const {
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < masks_.size() && k < params.size(); ++k) {
    if (masks_[k].defined()) params[k].masked_fill_(masks_[k], 0.0);
  }
}

void clip_gradients(const std::vector<at::Tensor>& params, double max_norm) {
  if (max_norm <= 0) return;
  at::NoGradGuard no_grad;
  double sum = 0;
  for (const auto& p : params) {
    if (p.grad().defined()) sum += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sum);
  if (!std::isfinite(norm) || norm <= max_norm) return;
  for (const auto& p : params) {
    if (p.grad().defined()) p.mutable_grad().mul_(max_norm / (norm + 1e-6));
  }
}

std::vector<at::Tensor> snapshot(const Model& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

void restore(Model& m, const std::vector<at::Tensor>& values) {
  const std::vector<int> nodes = m.parameter_nodes();
  if (nodes.size() != values.size()) {
    fail<InvalidArgument>("", "parameter snapshot", std::to_string(nodes.size()) + " tensors",
                          std::to_string(values.size()));
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    m.node(static_cast<size_t>(nodes[k])).value = values[k].clone();
  }
}

TensorData batch_of(const TensorData& data, const std::vector<int64_t>& index, int64_t begin,
                    int64_t end) {
  const std::vector<int64_t> rows(index.begin() + begin, index.begin() + end);
  TensorData b = data.subset(rows);
  return {b.images.to(at::kFloat), b.labels.to(at::kLong)};
}

at::Tensor logits(const Model& m, const at::Tensor& pixels) {
  return m.run(pixels, {m.logits_index()})[0];
}

std::pair<double, double> pixel_range(const Context& c) {
  const NeuralCleanseOptions& o = c.options.neural_cleanse;
  return bdguard::pixel_range(o.pixel_min, o.pixel_max, c.data.clean.images);
}

at::Tensor smoothed_cross_entropy(const at::Tensor& z, const at::Tensor& y, double s) {
  const at::Tensor log_p = at::log_softmax(z, 1);
  if (s == 0) return at::nll_loss(log_p, y);
  const int64_t classes = z.size(1);
  at::Tensor target = at::full_like(log_p, s / static_cast<double>(classes - 1));
  target.scatter_(1, y.unsqueeze(1), 1.0 - s);
  return -(target * log_p).sum(1).mean();
}

void add_tuning_options(nlohmann::json& schema, int epochs, const std::string& epochs_help,
                        double lr, int64_t batch) {
  schema["epochs"] = option(epochs, epochs_help, 0, 100000);
  schema["lr"] = option(lr, "SGD learning rate (momentum 0.9), cosine decay to 0", 1e-12, 1e6);
  schema["batch"] = option(batch, "images per step", 1, 1 << 20);
  schema["clip_grad_norm"] =
      option(kFinetuneClipNorm, "global L2 norm gradients are clipped to (0: never)", 0, 1e12);
  schema["keep"] =
      keep_option("best", "the weights kept: the best held-out epoch's (select), or the last's");
  add_select_options(schema);
}

OwnLoop own_loop(const Context& c, uint64_t salt, bool cosine) {
  OwnLoop loop;
  loop.epochs = static_cast<int>(get_int(c.params, "epochs"));
  loop.batch = get_int(c.params, "batch");
  loop.seed = c.options.seed ^ salt;
  loop.lr = get_double(c.params, "lr");
  loop.keep_best = c.params.at("keep").get<std::string>() == "best";
  if (loop.keep_best) loop.proxy = proxy_of(c, c.data.neural_cleanse);
  if (c.params.contains("proxy_slack")) loop.proxy_slack = get_double(c.params, "proxy_slack");
  loop.cosine = cosine;
  if (c.params.contains("clip_grad_norm"))
    loop.clip_grad_norm = get_double(c.params, "clip_grad_norm");
  return loop;
}

nlohmann::json train_own_loss(Model& m, const Context& c, const OwnLoop& loop,
                              const PrunedZeros& pruned, const MakeOptimizer& make_optimizer,
                              const OwnStep& step, const AfterStep& after_step) {
  const TensorData& data = c.split.train;
  const int64_t n = data.size(), steps = (n + loop.batch - 1) / loop.batch;
  const int64_t total = steps * loop.epochs;
  nlohmann::json per_epoch = nlohmann::json::array();
  std::vector<at::Tensor> last = snapshot(m);
  EpochKeeper keeper(static_cast<bool>(loop.proxy), loop.proxy_slack);
  int last_epoch = 0, diverged_epoch = 0;
  {
    TrainableScope scope(m);
    const std::vector<at::Tensor>& params = scope.params();
    const std::unique_ptr<torch::optim::Optimizer> opt = make_optimizer(params);
    Rng rng(loop.seed);
    int64_t done = 0;
    for (int epoch = 1; epoch <= loop.epochs && !diverged_epoch; ++epoch) {
      const auto start = std::chrono::steady_clock::now();
      const std::vector<int64_t> order = rng.permutation(n);
      double loss_sum = 0;
      for (int64_t s = 0; s < steps; ++s, ++done) {
        if (loop.cosine) {
          const double lr =
              0.5 * loop.lr *
              (1 + std::cos(M_PI * static_cast<double>(done) / static_cast<double>(total)));
          for (auto& g : opt->param_groups()) g.options().set_lr(lr);
        }
        const TensorData b =
            batch_of(data, order, s * loop.batch, std::min(n, (s + 1) * loop.batch));
        opt->zero_grad();
        const double loss = step(b, params);
        if (!std::isfinite(loss)) {
          diverged_epoch = epoch;
          break;
        }
        pruned.mask_gradients(params);
        clip_gradients(params, loop.clip_grad_norm);
        opt->step();
        pruned.reapply(params);
        if (after_step) {
          at::NoGradGuard no_grad;
          after_step(params);
        }
        loss_sum += loss * static_cast<double>(b.size());
        if (c.options.train_progress) {
          c.options.train_progress(
              {epoch, loop.epochs, s + 1, steps,
               loss_sum / static_cast<double>(std::min(n, (s + 1) * loop.batch)), 0});
        }
      }
      if (diverged_epoch) break;
      const double acc = accuracy(m, c.split.holdout, c.options.eval_batch);
      nlohmann::json e = {
          {"epoch", epoch},
          {"loss", loss_sum / static_cast<double>(n)},
          {"holdout_accuracy", acc},
          {"seconds",
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
      if (c.poisoned()) e["asr"] = accuracy(m, *c.poisoned(), c.options.eval_batch);
      double proxy = 0;
      if (loop.proxy) e["proxy_asr"] = proxy = loop.proxy(m);
      per_epoch.push_back(e);
      if (loop.keep_best) {
        keeper.offer(epoch, acc, proxy, m);
      } else {
        last_epoch = epoch;
        last = snapshot(m);
      }
    }
  }
  int kept_epoch = last_epoch;
  if (loop.keep_best) kept_epoch = keeper.restore(m);
  if (!loop.keep_best || kept_epoch == 0) restore(m, last);  // the last, or the input's
  return {{"epochs_run", per_epoch.size()},
          {"best_epoch", kept_epoch},
          {"kept_by", loop.keep_best ? (loop.proxy ? "proxy" : "accuracy") : "last"},
          {"proxy_asr", loop.keep_best && loop.proxy && kept_epoch > 0
                            ? nlohmann::json(keeper.proxy_asr())
                            : nlohmann::json()},
          {"diverged_epoch", diverged_epoch ? nlohmann::json(diverged_epoch) : nlohmann::json()},
          {"epochs", per_epoch},
          {"pruned_channels_kept", pruned.channels()}};
}

}  // namespace bdguard::defense
