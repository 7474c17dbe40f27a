// nad: Neural Attention Distillation (Li et al., ICLR 2021), after bboylyg/NAD.
//
// The teacher is the BadNet fine-tuned on the clean training part for `teacher_epochs`
// (the original: 5-10) with bdguard finetune's recipe (finetune.h: SGD, momentum 0.9,
// cosine from `teacher_lr`, best held-out epoch); the original's teacher is its own
// main.py with every beta 0, whose lr 0.1 collapses a small CNN without BatchNorm (the
// tiny BadNet fell to 10 % accuracy). The student, the BadNet itself, is then trained on
// CE(student(x), y) + sum_k beta_k * MSE(A(F_s,k), A(F_t,k)), the teacher frozen, where
// A(F) = sum_c |F_c|^p over the channels of a stage output F, flattened over (H, W) and
// divided by (its L2 norm + 1e-6) (at.py), MSE the mean over all entries. The stages
// are the last Conv nodes in node order, one per beta, each taken after the
// BatchNormalization, residual Add and ReLU that follow it (where they do): the
// original's WRN block outputs. A model with fewer Convs than betas uses the deepest
// betas. The student: SGD, momentum 0.9, Nesterov, weight decay 1e-4, lr `lr` (0.01,
// BackdoorBench's; the original: 0.1 up to epoch `lr_drop_epoch` 2, then lr / 10), gradients
// clipped as bdguard's fine-tuning does; the epoch with the best held-out accuracy is kept (the
// original's checkpoint rule reads the ASR too: here only held-out data chooses).
// Pruned channels stay exactly zero in both models. Augmentation (crop, flip, Cutout)
// is not applied: the data are the user's, whatever their kind.
#include <ATen/ATen.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <sstream>

#include "bdguard/error.h"
#include "methods.h"
#include "own_loop.h"

namespace bdguard::defense {
namespace {

constexpr uint64_t kTeacherSalt = 0x7465616368ULL;  // "teach"
constexpr uint64_t kStudentSalt = 0x73747564ULL;    // "stud"
constexpr double kAttentionEps = 1e-6;              // at.py
// Defaults: the original trains the student 20 epochs; these keep the demo (about 4,000
// clean images) well under 3 minutes on 2 cores.
constexpr int kNadTeacherEpochs = 5;
// The teacher should have forgotten the backdoor, so it takes finetune's larger step of
// before (0.05): at finetune's 0.03 its leftover backdoor went into the student (39.7 %
// ASR on the demo against 12.8 % at 0.05).
constexpr double kNadTeacherLr = 0.05;
constexpr int kNadEpochs = 5;
// The original: 0.1 for 2 epochs, then 0.01; 0.1 and even 0.05 collapse the tiny BadNet
// (no BatchNorm) to 12 % accuracy. 0.01 throughout is BackdoorBench's.
constexpr double kNadLr = 0.01;

struct Stage {
  int conv = -1, node = -1;  // the Conv and the node whose output is the stage's
  double beta = 0;
};

std::vector<double> parse_betas(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !std::isfinite(v) || v < 0) {
      fail<InvalidArgument>("", "nad option 'betas'",
                            "non-negative numbers separated by commas (\"500,1000,1000\")",
                            "'" + text + "'");
    }
    out.push_back(v);
  }
  if (out.empty()) {
    fail<InvalidArgument>("", "nad option 'betas'", "at least one number", "'" + text + "'");
  }
  return out;
}

// The node after `i` when `i`'s only reader is an op of `type`, else -1.
int only_reader(const Model& m, int i, const char* type) {
  const std::vector<int> readers = m.consumers(i);
  if (readers.size() != 1 || !m.node(static_cast<size_t>(readers[0])).is_op(type)) return -1;
  return readers[0];
}

std::vector<Stage> attention_stages(const Model& m, const std::vector<double>& betas) {
  std::vector<int> convs;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m.node(i).is_op("Conv") && m.node(i).info.dims.size() == 4) {
      convs.push_back(static_cast<int>(i));
    }
  }
  if (convs.empty()) {
    fail<InvalidArgument>(m.origin, "nad: the model", "a Conv layer (attention maps need one)",
                          "none");
  }
  const size_t n = std::min(convs.size(), betas.size());
  std::vector<Stage> stages;
  for (size_t k = 0; k < n; ++k) {
    Stage s;
    s.conv = convs[convs.size() - n + k];
    s.beta = betas[betas.size() - n + k];
    int at = s.conv;
    for (int next; (next = only_reader(m, at, "BatchNormalization")) >= 0;) at = next;
    if (const int next = only_reader(m, at, "Add"); next >= 0) at = next;
    if (const int next = only_reader(m, at, "Relu"); next >= 0) at = next;
    s.node = at;
    bool seen = false;
    for (const Stage& o : stages) seen = seen || o.node == s.node;
    if (!seen) stages.push_back(s);
  }
  return stages;
}

// at.py's attention map of a stage output (N, C, H, W): (N, H * W), L2-normalised.
at::Tensor attention(const at::Tensor& f, double p) {
  at::Tensor a = f.abs().pow(p).sum(1).flatten(1);
  return a / (a.norm(2, {1}, /*keepdim=*/true) + kAttentionEps);
}

struct Training {
  nlohmann::json epochs = nlohmann::json::array();
  int best_epoch = 0, diverged_epoch = 0;
  double best_holdout = -1;
};

// Trains the student `m` as above and keeps the best held-out epoch.
Training train(Model& m, const Model& teacher, const std::vector<Stage>& stages, int epochs,
               uint64_t seed, const Context& c) {
  const double lr = get_double(c.params, "lr"), p = get_double(c.params, "p");
  const int64_t batch = get_int(c.params, "batch"), drop = get_int(c.params, "lr_drop_epoch");
  const double clip = get_double(c.params, "clip_grad_norm");
  const TensorData& data = c.split.train;
  const int64_t n = data.size(), steps = (n + batch - 1) / batch;
  std::vector<int> wanted{m.logits_index()};
  for (const Stage& s : stages) wanted.push_back(s.node);

  Training r;
  std::vector<at::Tensor> best = snapshot(m);
  const PrunedZeros pruned(m);
  {
    TrainableScope scope(m);
    const std::vector<at::Tensor>& params = scope.params();
    torch::optim::SGD opt(params,
                          torch::optim::SGDOptions(lr).momentum(0.9).nesterov(true).weight_decay(
                              get_double(c.params, "weight_decay")));
    Rng rng(seed);
    for (int epoch = 1; epoch <= epochs; ++epoch) {
      const auto start = std::chrono::steady_clock::now();
      const double epoch_lr = drop == 0 || epoch <= drop ? lr : lr / 10;
      for (auto& g : opt.param_groups())
        static_cast<torch::optim::SGDOptions&>(g.options()).lr(epoch_lr);
      const std::vector<int64_t> order = rng.permutation(n);
      double ce_sum = 0, at_sum = 0, seen = 0;
      bool diverged = false;
      for (int64_t s = 0; s < steps && !diverged; ++s) {
        const TensorData b = batch_of(data, order, s * batch, std::min(n, (s + 1) * batch));
        opt.zero_grad();
        const std::vector<at::Tensor> out = m.run(b.images, wanted);
        at::Tensor loss = at::nll_loss(at::log_softmax(out[0], 1), b.labels);
        at::Tensor distill = at::zeros({}, at::kFloat);
        std::vector<at::Tensor> t;
        {
          at::NoGradGuard no_grad;
          t = teacher.run(b.images, std::vector<int>(wanted.begin() + 1, wanted.end()));
        }
        for (size_t k = 0; k < stages.size(); ++k) {
          distill =
              distill + stages[k].beta * at::mse_loss(attention(out[k + 1], p), attention(t[k], p));
        }
        const double ce = loss.item<double>(), at_loss = distill.item<double>();
        if (!std::isfinite(ce) || !std::isfinite(at_loss)) {
          diverged = true;
          break;
        }
        (loss + distill).backward();
        pruned.mask_gradients(params);
        clip_gradients(params, clip);
        opt.step();
        pruned.reapply(params);
        const auto nb = static_cast<double>(b.size());
        ce_sum += ce * nb;
        at_sum += at_loss * nb;
        seen += nb;
        if (c.options.train_progress) {
          c.options.train_progress({epoch, epochs, s + 1, steps, (ce_sum + at_sum) / seen, 0});
        }
      }
      if (diverged) {
        r.diverged_epoch = epoch;
        break;
      }
      const double acc = accuracy(m, c.split.holdout, c.options.eval_batch);
      nlohmann::json e = {
          {"epoch", epoch},
          {"lr", epoch_lr},
          {"ce_loss", ce_sum / static_cast<double>(n)},
          {"holdout_accuracy", acc},
          {"seconds",
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
      e["attention_loss"] = at_sum / static_cast<double>(n);
      if (c.poisoned()) e["asr"] = accuracy(m, *c.poisoned(), c.options.eval_batch);
      r.epochs.push_back(e);
      if (acc > r.best_holdout) {
        r.best_holdout = acc;
        r.best_epoch = epoch;
        best = snapshot(m);
      }
    }
  }
  restore(m, best);
  return r;
}

nlohmann::json figures(const Training& t) {
  return {
      {"epochs_run", t.epochs.size()},
      {"best_epoch", t.best_epoch},
      {"diverged_epoch", t.diverged_epoch ? nlohmann::json(t.diverged_epoch) : nlohmann::json()},
      {"epochs", t.epochs}};
}

}  // namespace

nlohmann::json nad_schema() {
  nlohmann::json s = nlohmann::json::object();
  s["teacher_epochs"] = option(
      kNadTeacherEpochs, "epochs of the teacher's fine-tuning (the original: 5-10)", 0, 100000);
  s["teacher_lr"] =
      option(kNadTeacherLr, "the teacher's learning rate (bdguard finetune's recipe: SGD, cosine)",
             1e-12, 1e6);
  s["epochs"] =
      option(kNadEpochs, "epochs of the student's distillation (the original: 20)", 0, 100000);
  s["lr"] = option(kNadLr, "SGD learning rate (Nesterov, momentum 0.9), / 10 after lr_drop_epoch",
                   1e-12, 1e6);
  s["lr_drop_epoch"] =
      option(0, "the last epoch at the full learning rate (0: all; the original: 2)", 0, 100000);
  s["batch"] = option(64, "images per step", 1, 1 << 20);
  s["weight_decay"] = option(1e-4, "SGD weight decay", 0, 1e6);
  s["betas"] =
      option("500,1000,1000", "attention-loss weights of the last Conv stages, shallowest first");
  s["p"] = option(2.0, "attention map: sum over channels of |F|^p", 1e-6, 1e3);
  s["clip_grad_norm"] =
      option(kFinetuneClipNorm, "global L2 norm gradients are clipped to (0: never)", 0, 1e12);
  return s;
}

void run_nad(const Context& c, DefenseResult& r) {
  const std::vector<double> betas = parse_betas(c.params.at("betas").get<std::string>());
  const std::vector<Stage> stages = attention_stages(r.model, betas);
  nlohmann::json used = nlohmann::json::array();
  for (const Stage& s : stages) {
    used.push_back({{"conv", r.model.node(static_cast<size_t>(s.conv)).name},
                    {"node", r.model.node(static_cast<size_t>(s.node)).name},
                    {"beta", s.beta}});
  }
  r.figures["stages"] = used;

  c.stage("teacher");
  Model teacher = r.model.clone();
  FinetuneOptions fo;
  fo.epochs = static_cast<int>(get_int(c.params, "teacher_epochs"));
  fo.lr = get_double(c.params, "teacher_lr");
  fo.clip_grad_norm = get_double(c.params, "clip_grad_norm");
  fo.holdout = get_double(c.params, "holdout");
  fo.seed = c.options.seed ^ kTeacherSalt;
  fo.eval_batch = c.options.eval_batch;
  fo.progress = c.options.train_progress;
  r.figures["teacher"] = finetune_figures(
      finetune_in_memory(teacher, c.split.train, c.split.holdout, c.poisoned(), fo));
  r.figures["teacher_holdout_accuracy"] = accuracy(teacher, c.split.holdout, c.options.eval_batch);

  c.stage("attention distillation");
  const Training s = train(r.model, teacher, stages, static_cast<int>(get_int(c.params, "epochs")),
                           c.options.seed ^ kStudentSalt, c);
  const nlohmann::json student = figures(s);
  for (const auto& [k, v] : student.items()) r.figures[k] = v;
  r.figures["pruned_channels_kept"] = PrunedZeros(r.model).channels();
}

}  // namespace bdguard::defense
