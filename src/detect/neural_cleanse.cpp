// Neural Cleanse: the batched trigger optimisation and the screened run (detect.h).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <tuple>

#include "bdguard/detect.h"
#include "bdguard/error.h"
#include "detect/trigger_opt.h"

namespace bdguard {
namespace {

using detail::adam_update;
using detail::Clock;
using detail::from_unit;
using detail::ImageStream;
using detail::seconds_since;
using detail::stamp;
using detail::to_mask;
using detail::to_pattern;

// One label's schedule (the original's Visualizer.visualize, cost starting at
// init_cost as the paper describes).
struct Schedule {
  int64_t label = 0;
  double cost = 0;
  double reg_best = std::numeric_limits<double>::infinity();
  at::Tensor best_mask_t, best_pattern_t;
  int up = 0, down = 0;
  bool up_flag = false, down_flag = false;
  int early = 0;
  double early_best = std::numeric_limits<double>::infinity();
  int steps = 0;
  bool stop = false;
};

// The step's end for one label: keep the best mask, early stop, adjust the cost.
void end_step(Schedule& s, double acc, double reg, const at::Tensor& mask_t,
              const at::Tensor& pattern_t, const NeuralCleanseOptions& o, bool early_stop) {
  ++s.steps;
  const bool success = acc >= o.attack_success;
  if (success && reg < s.reg_best) {
    s.reg_best = reg;
    s.best_mask_t = mask_t.clone();
    s.best_pattern_t = pattern_t.clone();
  }
  if (early_stop) {
    if (std::isfinite(s.reg_best)) {
      s.early = s.reg_best >= o.early_stop_threshold * s.early_best ? s.early + 1 : 0;
    }
    s.early_best = std::min(s.reg_best, s.early_best);
    if (s.up_flag && s.down_flag && s.early >= o.early_stop_patience) {
      s.stop = true;
      return;
    }
  }
  if (success) {
    ++s.up;
    s.down = 0;
  } else {
    s.up = 0;
    ++s.down;
  }
  if (s.up >= o.patience) {
    s.up = 0;
    s.cost *= o.cost_multiplier;
    s.up_flag = true;
  } else if (s.down >= o.patience) {
    s.down = 0;
    s.cost /= std::pow(o.cost_multiplier, 1.5);
    s.down_flag = true;
  }
}

// One optimisation run's length and speed: the full schedule, or the short screen.
struct RunLength {
  int max_steps = 0;
  int batches = 0;  // mini-batches per step
  double lr = 0;
  bool early_stop = false;
};

struct GroupResult {
  std::vector<LabelTrigger> labels;
  int64_t passes = 0;
};

// Optimises the triggers of `labels` together, for at most `run.max_steps` steps each.
// `labels` {kAnyOtherLabel}: the untargeted trigger (untargeted_trigger).
GroupResult optimize(const Model& model, const TensorData& clean,
                     const std::vector<int64_t>& labels, const RunLength& run, double lo, double hi,
                     const NeuralCleanseOptions& o, const std::function<void()>& one_done) {
  const bool untargeted = labels.size() == 1 && labels[0] == kAnyOtherLabel;
  const int max_steps = run.max_steps, batches = run.batches;
  const Shape s = model.input_shape();
  const int64_t c = s[0], h = s[1], w = s[2];
  const int logits = model.logits_index();
  GroupResult out;
  std::vector<Schedule> sched;
  std::vector<at::Tensor> mask_rows, pattern_rows;
  for (int64_t label : labels) {
    // Each label's start: U[0, 1) mask and pattern (the original's), from its own seed.
    Rng rng(o.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(label) + 1);
    at::Tensor mask = detail::uniform(rng, {1, h, w});
    at::Tensor pattern = detail::uniform(rng, {c, h, w});
    mask_rows.push_back(from_unit(mask));
    pattern_rows.push_back(from_unit(pattern));
    Schedule sc;
    sc.label = label;
    sc.cost = o.init_cost;
    sched.push_back(std::move(sc));
  }
  at::Tensor mask_t = at::stack(mask_rows), pattern_t = at::stack(pattern_rows);
  at::Tensor m1 = at::zeros_like(mask_t), v1 = at::zeros_like(mask_t);
  at::Tensor m2 = at::zeros_like(pattern_t), v2 = at::zeros_like(pattern_t);
  std::vector<size_t> active(labels.size());
  std::iota(active.begin(), active.end(), size_t{0});
  ImageStream stream(clean, o.seed);
  int64_t t = 0;
  for (int step = 0; step < max_steps && !active.empty(); ++step) {
    const int64_t k = static_cast<int64_t>(active.size());
    std::vector<int64_t> ids;
    for (size_t a : active) ids.push_back(labels[a]);
    at::Tensor target =
        untargeted ? at::Tensor() : at::tensor(ids, at::kLong).repeat_interleave(o.batch);
    std::vector<double> cost;
    for (size_t a : active) cost.push_back(sched[a].cost);
    at::Tensor cost_t = at::tensor(cost, at::kFloat);
    at::Tensor acc_sum = at::zeros({k}, at::kDouble), reg_sum = at::zeros({k}, at::kDouble);
    for (int b = 0; b < batches; ++b) {
      at::Tensor x = stream.next(o.batch, untargeted ? &target : nullptr);
      at::Tensor mt = mask_t.detach().requires_grad_(true);
      at::Tensor pt = pattern_t.detach().requires_grad_(true);
      at::Tensor mask = to_mask(mt), pattern = to_pattern(pt, lo, hi);
      at::Tensor z = model.run(stamp(x, mask, pattern), {logits})[0];
      // Targeted: -log p_t. Untargeted: -log(1 - p_y), y the image's own label, as
      // logsumexp(z) - logsumexp(z without z_y).
      at::Tensor nll = untargeted
                           ? at::logsumexp(z, 1) -
                                 at::logsumexp(z.scatter(1, target.unsqueeze(1),
                                                         -std::numeric_limits<double>::infinity()),
                                               1)
                           : -at::log_softmax(z, 1).gather(1, target.unsqueeze(1)).squeeze(1);
      at::Tensor ce = nll.view({k, o.batch}).mean(1);
      at::Tensor l1 = mask.sum({1, 2, 3});
      at::Tensor loss = (ce + cost_t * l1).sum();
      auto grads = torch::autograd::grad({loss}, {mt, pt});
      at::NoGradGuard no_grad;
      at::Tensor hit = untargeted ? z.argmax(1).ne(target) : z.argmax(1).eq(target);
      acc_sum += hit.view({k, o.batch}).to(at::kDouble).mean(1);
      reg_sum += l1.detach().to(at::kDouble);
      ++t;
      adam_update(mask_t, m1, v1, grads[0], t, run.lr, o.beta1, o.beta2);
      adam_update(pattern_t, m2, v2, grads[1], t, run.lr, o.beta1, o.beta2);
      out.passes += k * o.batch;
    }
    at::Tensor acc = (acc_sum / batches).contiguous();
    at::Tensor reg = (reg_sum / batches).contiguous();
    std::vector<int64_t> keep;
    for (int64_t r = 0; r < k; ++r) {
      Schedule& sc = sched[active[static_cast<size_t>(r)]];
      end_step(sc, acc[r].item<double>(), reg[r].item<double>(), mask_t[r], pattern_t[r], o,
               run.early_stop);
      if (!sc.stop) {
        keep.push_back(r);
      } else if (one_done) {
        one_done();
      }
      if (step + 1 == max_steps || sc.stop) {
        // The result: the smallest-norm mask that reached the threshold, else the last.
        if (!sc.best_mask_t.defined()) {
          sc.best_mask_t = mask_t[r].clone();
          sc.best_pattern_t = pattern_t[r].clone();
        }
      }
    }
    if (static_cast<int64_t>(keep.size()) < k) {
      at::Tensor ix = at::tensor(keep, at::kLong);
      for (at::Tensor* x : {&mask_t, &m1, &v1, &pattern_t, &m2, &v2}) *x = x->index_select(0, ix);
      std::vector<size_t> next;
      for (int64_t r : keep) next.push_back(active[static_cast<size_t>(r)]);
      active = next;
    }
  }
  if (one_done) {
    for (size_t a = 0; a < active.size(); ++a) one_done();
  }
  for (Schedule& sc : sched) {
    LabelTrigger lt;
    lt.label = sc.label;
    lt.reached = std::isfinite(sc.reg_best);
    at::NoGradGuard no_grad;
    lt.mask = to_mask(sc.best_mask_t)[0].contiguous();
    lt.pattern = to_pattern(sc.best_pattern_t, lo, hi).contiguous();
    lt.mask_l1 = lt.mask.sum().item<double>();
    lt.steps = sc.steps;
    lt.cost = sc.cost;
    out.labels.push_back(std::move(lt));
  }
  return out;
}

// The attack success of each trigger on the first `n` images of `eval`.
void measure_success(const Model& model, const at::Tensor& eval, std::vector<LabelTrigger*>& ts,
                     int64_t group) {
  at::NoGradGuard no_grad;
  for (size_t g = 0; g < ts.size(); g += static_cast<size_t>(group)) {
    const size_t end = std::min(ts.size(), g + static_cast<size_t>(group));
    std::vector<at::Tensor> masks, patterns;
    std::vector<int64_t> ids;
    for (size_t i = g; i < end; ++i) {
      masks.push_back(ts[i]->mask.unsqueeze(0).to(at::kFloat));
      patterns.push_back(ts[i]->pattern.to(at::kFloat));
      ids.push_back(ts[i]->label);
    }
    at::Tensor mask = at::stack(masks), pattern = at::stack(patterns);
    const int64_t k = mask.size(0);
    std::vector<int64_t> hits(static_cast<size_t>(k), 0);
    for (int64_t s = 0; s < eval.size(0); s += 64) {
      at::Tensor x = eval.narrow(0, s, std::min<int64_t>(64, eval.size(0) - s));
      at::Tensor pred = model.forward(stamp(x, mask, pattern)).argmax(1).view({k, x.size(0)});
      at::Tensor hit = pred.eq(at::tensor(ids, at::kLong).unsqueeze(1)).sum(1).contiguous();
      for (int64_t r = 0; r < k; ++r) hits[static_cast<size_t>(r)] += hit[r].item<int64_t>();
    }
    for (size_t i = g; i < end; ++i) {
      ts[i]->attack_success = static_cast<double>(hits[i - g]) /
                              static_cast<double>(std::max<int64_t>(1, eval.size(0)));
    }
  }
}

// Optimises `labels` in groups of o.label_batch; reports each finished label.
std::vector<LabelTrigger> optimize_all(const Model& model, const TensorData& clean,
                                       const std::vector<int64_t>& labels, const RunLength& run,
                                       double lo, double hi, const NeuralCleanseOptions& o,
                                       int64_t& passes) {
  std::vector<LabelTrigger> out;
  int64_t done = 0;
  const auto total = static_cast<int64_t>(labels.size());
  if (o.progress) o.progress(0, total);
  auto one_done = [&] {
    if (o.progress) o.progress(++done, total);
  };
  for (size_t g = 0; g < labels.size(); g += static_cast<size_t>(o.label_batch)) {
    const size_t end = std::min(labels.size(), g + static_cast<size_t>(o.label_batch));
    std::vector<int64_t> group(labels.begin() + static_cast<std::ptrdiff_t>(g),
                               labels.begin() + static_cast<std::ptrdiff_t>(end));
    GroupResult r = optimize(model, clean, group, run, lo, hi, o, one_done);
    passes += r.passes;
    for (auto& l : r.labels) out.push_back(std::move(l));
  }
  return out;
}

// The positions of the clean images each trigger's attack success is measured on: a
// seeded sample of `eval_images`.
std::vector<int64_t> eval_sample(const TensorData& clean, const NeuralCleanseOptions& o) {
  std::vector<int64_t> order = Rng(o.seed ^ 0x6576616cULL).permutation(clean.size());
  order.resize(static_cast<size_t>(std::min(o.eval_images, clean.size())));
  return order;
}

void check(const Model& m, const TensorData& clean, const NeuralCleanseOptions& o) {
  detail::check_clean_images(m, clean);
  if (clean.size() < o.batch) {
    fail<InvalidArgument>("", "clean images",
                          "at least one mini-batch (" + std::to_string(o.batch) + " images)",
                          std::to_string(clean.size()));
  }
  for (int64_t l : o.labels) {
    if (l < 0 || l >= m.num_classes()) {
      fail<InvalidArgument>("--labels", "",
                            "labels in [0, " + std::to_string(m.num_classes()) + ")",
                            std::to_string(l));
    }
  }
  if (o.batch < 1 || o.batches_per_step < 1 || o.screen_batches < 1 || o.max_steps < 1 ||
      o.label_batch < 1 || !(o.lr > 0) || !(o.screen_lr > 0) ||
      !(o.attack_success > 0 && o.attack_success <= 1)) {
    fail<InvalidArgument>("", "Neural Cleanse options",
                          "positive batch, steps, label batch, lr; success in (0, 1]", "others");
  }
}

}  // namespace

std::pair<double, double> pixel_range(double lo, double hi, const at::Tensor& images) {
  if (!std::isnan(lo) && !std::isnan(hi)) return {lo, hi};
  return {0.0, images.max().item<double>() <= 1.0 ? 1.0 : 255.0};
}

NeuralCleanseResult neural_cleanse(const Model& m, const TensorData& clean,
                                   const NeuralCleanseOptions& o) {
  check(m, clean, o);
  const auto start = Clock::now();
  NeuralCleanseResult r;
  r.n_clean = clean.size();
  std::tie(r.pixel_min, r.pixel_max) = pixel_range(o.pixel_min, o.pixel_max, clean.images);
  std::vector<int64_t> labels = o.labels;
  if (labels.empty()) {
    for (int64_t l = 0; l < m.num_classes(); ++l) labels.push_back(l);
  }
  const int64_t n = static_cast<int64_t>(labels.size());
  // Evaluation images: a seeded sample of the clean data.
  const std::vector<int64_t> order = eval_sample(clean, o);
  const at::Tensor eval = clean.images.index_select(0, at::tensor(order, at::kLong)).to(at::kFloat);

  const RunLength full{o.max_steps, o.batches_per_step, o.lr, o.early_stop};
  std::vector<LabelTrigger> result;
  std::vector<size_t> reference;  // positions in `result` that estimate median and MAD
  r.screened = n > o.full_below;
  if (!r.screened) {
    if (o.stage) o.stage("reverse-engineering triggers");
    auto t0 = Clock::now();
    result = optimize_all(m, clean, labels, full, r.pixel_min, r.pixel_max, o, r.image_passes);
    r.refine_s = seconds_since(t0);
    for (auto& l : result) l.refined = true;
  } else {
    // Screen every label; refine the smallest norms and a random reference sample.
    if (o.stage) o.stage("screening every label");
    auto t0 = Clock::now();
    const RunLength short_run{o.screen_steps, o.screen_batches, o.screen_lr, false};
    std::vector<LabelTrigger> screen =
        optimize_all(m, clean, labels, short_run, r.pixel_min, r.pixel_max, o, r.image_passes);
    r.screen_s = seconds_since(t0);
    std::vector<size_t> rank(screen.size());
    std::iota(rank.begin(), rank.end(), size_t{0});
    std::stable_sort(rank.begin(), rank.end(), [&](size_t a, size_t b) {
      if (screen[a].reached != screen[b].reached) return screen[a].reached;
      return screen[a].mask_l1 < screen[b].mask_l1;
    });
    const int64_t n_refine = o.refine > 0
                                 ? std::min(o.refine, n)
                                 : std::min<int64_t>(n, std::max<int64_t>(4, (n + 255) / 256));
    std::vector<size_t> candidates(rank.begin(), rank.begin() + n_refine);
    std::vector<size_t> rest(rank.begin() + n_refine, rank.end());
    std::sort(rest.begin(), rest.end());
    std::vector<int64_t> pick =
        Rng(o.seed ^ 0x726566ULL).permutation(static_cast<int64_t>(rest.size()));
    pick.resize(
        static_cast<size_t>(std::min<int64_t>(o.reference, static_cast<int64_t>(rest.size()))));
    std::vector<size_t> refs;
    for (int64_t i : pick) refs.push_back(rest[static_cast<size_t>(i)]);
    std::vector<int64_t> todo;
    for (size_t p : candidates) todo.push_back(screen[p].label);
    for (size_t p : refs) todo.push_back(screen[p].label);
    if (o.stage) o.stage("refining candidates and the reference sample");
    auto t1 = Clock::now();
    std::vector<LabelTrigger> refined =
        optimize_all(m, clean, todo, full, r.pixel_min, r.pixel_max, o, r.image_passes);
    r.refine_s = seconds_since(t1);
    std::map<int64_t, LabelTrigger*> by_label;
    for (auto& l : refined) {
      l.refined = true;
      by_label[l.label] = &l;
    }
    for (size_t p : refs) by_label[screen[p].label]->reference = true;
    for (auto& s : screen) {
      auto it = by_label.find(s.label);
      result.push_back(it == by_label.end() ? std::move(s) : std::move(*it->second));
      if (result.back().reference) reference.push_back(result.size() - 1);
    }
  }
  // Attack success of every fully optimised trigger.
  std::vector<LabelTrigger*> refined;
  for (auto& l : result) {
    if (l.refined) refined.push_back(&l);
  }
  measure_success(m, eval, refined, std::max<int64_t>(1, o.label_batch));
  // The outlier test: over every label, or against the reference sample.
  std::vector<double> norms;
  for (const auto& l : result) norms.push_back(l.mask_l1);
  OutlierTest test = mad_outliers(norms, reference, o.anomaly_threshold);
  r.median = test.median;
  r.mad = test.mad;
  for (size_t i = 0; i < result.size(); ++i) result[i].anomaly_index = test.index[i];
  for (size_t p : test.flagged) {
    if (result[p].refined) r.flagged.push_back(result[p].label);
  }
  r.backdoored = !r.flagged.empty();
  r.labels = std::move(result);
  r.seconds = seconds_since(start);
  return r;
}

LabelTrigger untargeted_trigger(const Model& m, const TensorData& clean,
                                const NeuralCleanseOptions& o) {
  check(m, clean, o);
  const at::Tensor y = clean.labels.to(at::kLong);
  if (y.dim() != 1 || y.size(0) != clean.size() ||
      (clean.size() > 0 &&
       (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= m.num_classes()))) {
    fail<InvalidArgument>("", "clean labels",
                          "one per image in [0, " + std::to_string(m.num_classes()) + ")",
                          "others");
  }
  const auto [lo, hi] = pixel_range(o.pixel_min, o.pixel_max, clean.images);
  const RunLength full{o.max_steps, o.batches_per_step, o.lr, o.early_stop};
  LabelTrigger t = std::move(optimize(m, clean, {kAnyOtherLabel}, full, lo, hi, o, {}).labels[0]);
  t.refined = true;
  // Attack success: the evaluation sample neural_cleanse draws, misclassified.
  const at::Tensor ix = at::tensor(eval_sample(clean, o), at::kLong);
  const at::Tensor eval = clean.images.index_select(0, ix).to(at::kFloat);
  const at::Tensor eval_y = y.index_select(0, ix);
  at::NoGradGuard no_grad;
  const at::Tensor mask = t.mask.unsqueeze(0).unsqueeze(0).to(at::kFloat);
  const at::Tensor pattern = t.pattern.unsqueeze(0).to(at::kFloat);
  int64_t missed = 0;
  for (int64_t s = 0; s < eval.size(0); s += 64) {
    const int64_t b = std::min<int64_t>(64, eval.size(0) - s);
    at::Tensor pred = m.forward(stamp(eval.narrow(0, s, b), mask, pattern)).argmax(1);
    missed += pred.ne(eval_y.narrow(0, s, b)).sum().item<int64_t>();
  }
  t.attack_success =
      static_cast<double>(missed) / static_cast<double>(std::max<int64_t>(1, eval.size(0)));
  return t;
}

}  // namespace bdguard
