// K-Arm: the bandit over the pre-screened arms, the symmetric check and the decision
// (bdguard/k_arm.h).
#include "bdguard/k_arm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "bdguard/detect.h"
#include "bdguard/error.h"
#include "detect/k_arm_screen.h"
#include "detect/trigger_opt.h"

namespace bdguard {
namespace {

using detail::Clock;
using detail::seconds_since;
constexpr double kInf = std::numeric_limits<double>::infinity();

// One arm's optimisation state (the reference's per-label lists in K_Arm_Scanner).
struct Arm {
  KArmArm* stats = nullptr;
  std::unique_ptr<TensorData> data;  // its images: all, or the source's (the stream reads it)
  std::unique_ptr<detail::ImageStream> stream;
  at::Tensor mask_t, pattern_t, m1, v1, m2, v2;
  int64_t t = 0;  // Adam's step
  double cost = 0;
  int cost_set = 0, up = 0, down = 0, early = 0;
  bool up_flag = false, down_flag = false, stopped = false;
  double best_reg = kInf, early_best = kInf, avg_reg = kInf, velocity = -kInf, first_reg = 0;
  at::Tensor best_mask_t, best_pattern_t;
};

struct Run {
  const Model& model;
  const KArmOptions& o;
  double lo, hi, area;
  int steps = 0;  // spent, all runs together
  int max_total = 0;
};

// The start: U[0, 1) everywhere (universal), or a pair's centred square and one colour
// (the reference's central_init and single_color_opt); the same for every arm of a run.
void init_arm(Arm& a, const at::Tensor& mask0, const at::Tensor& pattern0) {
  a.mask_t = detail::from_unit(mask0);
  a.pattern_t = detail::from_unit(pattern0);
  a.m1 = at::zeros_like(a.mask_t);
  a.v1 = at::zeros_like(a.mask_t);
  a.m2 = at::zeros_like(a.pattern_t);
  a.v2 = at::zeros_like(a.pattern_t);
}

std::pair<at::Tensor, at::Tensor> start(Rng& rng, const Shape& s, bool pair, double side) {
  const int64_t c = s[0], h = s[1], w = s[2];
  if (!pair) return {detail::uniform(rng, {1, 1, h, w}), detail::uniform(rng, {1, c, h, w})};
  at::Tensor mask = detail::uniform(rng, {1, 1, h, w}) * 0.001;
  const int64_t sh = std::max<int64_t>(1, std::llround(side * static_cast<double>(h)));
  const int64_t sw = std::max<int64_t>(1, std::llround(side * static_cast<double>(w)));
  mask.narrow(2, (h - sh) / 2, sh).narrow(3, (w - sw) / 2, sw).fill_(0.99);
  return {mask, detail::uniform(rng, {1, c, 1, 1})};
}

at::Tensor full_pattern(const at::Tensor& pattern_t, const Shape& s, double lo, double hi) {
  return detail::to_pattern(pattern_t, lo, hi).expand({1, s[0], s[1], s[2]});
}

// One step of arm `a`: `batches_per_step` Adam updates; its mean attack success and
// mask norm (before each update).
std::pair<double, double> step(Run& r, Arm& a) {
  const KArmOptions& o = r.o;
  const Shape s = r.model.input_shape();
  const int64_t b = std::min(o.batch, a.data->size());
  const at::Tensor target = at::full({b}, a.stats->target, at::kLong);
  double acc = 0, reg = 0;
  for (int i = 0; i < o.batches_per_step; ++i) {
    at::Tensor x = a.stream->next(b);
    at::Tensor mt = a.mask_t.detach().requires_grad_(true);
    at::Tensor pt = a.pattern_t.detach().requires_grad_(true);
    at::Tensor mask = detail::to_mask(mt);
    at::Tensor z = r.model.run(detail::stamp(x, mask, full_pattern(pt, s, r.lo, r.hi)),
                               {r.model.logits_index()})[0];
    at::Tensor ce = -at::log_softmax(z, 1).gather(1, target.unsqueeze(1)).mean();
    at::Tensor l1 = mask.sum();
    at::Tensor loss = ce + a.cost * l1;
    auto grads = torch::autograd::grad({loss}, {mt, pt});
    at::NoGradGuard no_grad;
    acc += z.argmax(1).eq(target).to(at::kDouble).mean().item<double>();
    reg += l1.item<double>();
    ++a.t;
    detail::adam_update(a.mask_t, a.m1, a.v1, grads[0], a.t, o.lr, o.beta1, o.beta2);
    detail::adam_update(a.pattern_t, a.m2, a.v2, grads[1], a.t, o.lr, o.beta1, o.beta2);
  }
  return {acc / o.batches_per_step, reg / o.batches_per_step};
}

// The reference's stop for an arm that cannot reach the attack success (forward: any
// arm here, the reference only pairs), and the symmetric check's (backward).
bool hopeless(const KArmArm& s, bool backward) {
  if (backward) return s.steps > 200 && s.best_success < 1;
  return (s.steps > 10 && s.best_success == 0) || (s.steps > 20 && s.best_success < 0.3) ||
         (s.steps > 200 && s.best_success < 0.8);
}

// Cost schedule: 0 until two successful steps, then init_cost, multiplied or divided
// by cost_multiplier after `patience` steps in a row above or below the success.
void adjust_cost(Arm& a, bool success, const KArmOptions& o) {
  if (a.cost == 0 && success) {
    if (++a.cost_set >= 2) {
      a.cost = o.init_cost;
      a.up = a.down = 0;
      a.up_flag = a.down_flag = false;
    }
  } else {
    a.cost_set = 0;
  }
  if (success) {
    ++a.up;
    a.down = 0;
  } else {
    a.up = 0;
    ++a.down;
  }
  if (a.up >= o.patience) {
    a.up = 0;
    a.cost *= o.cost_multiplier;
    a.up_flag = true;
  } else if (a.down >= o.patience) {
    a.down = 0;
    a.cost /= o.cost_multiplier;
    a.down_flag = true;
  }
}

size_t smallest_norm(const std::vector<Arm>& arms) {
  size_t best = 0;
  for (size_t i = 1; i < arms.size(); ++i) {
    if (arms[i].best_reg < arms[best].best_reg) best = i;
  }
  return best;
}

// The K-Arm scheduler (the reference's K_Arm_Scanner.scanning) for at most `max_steps`.
void bandit(Run& r, std::vector<Arm>& arms, int max_steps, bool backward, Rng& rng) {
  const KArmOptions& o = r.o;
  bool early_stop = false;  // on once the bandit starts choosing
  size_t cur = 0;
  for (int n = 0; n < max_steps; ++n) {
    Arm& a = arms[cur];
    KArmArm& st = *a.stats;
    const auto [acc, reg] = step(r, a);
    ++st.steps;
    ++r.steps;
    if (o.progress) o.progress(r.steps, r.max_total);
    a.avg_reg = reg;
    st.best_success = std::max(st.best_success, acc);
    if (hopeless(st, backward)) a.stopped = true;
    bool update = false;
    if (acc >= o.attack_success && reg < a.best_reg) {
      a.best_mask_t = a.mask_t.clone();
      a.best_pattern_t = a.pattern_t.clone();
      update = true;
      if (++st.rounds == 1) a.first_reg = reg;
      a.velocity = (a.first_reg - reg) / (st.rounds + st.steps / 2.0);
      a.best_reg = reg;
    }
    if (early_stop) {
      if (std::isfinite(a.best_reg)) {
        a.early = a.best_reg >= o.early_stop_threshold * a.early_best ? a.early + 1 : 0;
      }
      a.early_best = std::min(a.early_best, a.best_reg);
      if (st.rounds > o.rounds || (a.up_flag && a.down_flag && a.early > o.early_stop_patience)) {
        if (cur == smallest_norm(arms)) break;
        a.stopped = true;
      }
    }
    if (!a.stopped) adjust_cost(a, acc >= o.attack_success, o);
    // The next arm.
    std::vector<size_t> live, fresh;
    for (size_t i = 0; i < arms.size(); ++i) {
      if (arms[i].stopped) continue;
      live.push_back(i);
      if (arms[i].stats->rounds == 0) fresh.push_back(i);
    }
    if (live.empty()) break;
    if (a.stopped) {
      cur = !fresh.empty() ? fresh.front() : live[rng.below(live.size())];
      continue;
    }
    const bool warm = std::all_of(live.begin(), live.end(), [&](size_t i) {
      return arms[i].stats->rounds >= o.warmup_rounds;
    });
    if (update && st.rounds >= o.warmup_rounds && warm) {
      early_stop = true;
      size_t pick = live.front();
      double best = -kInf;
      for (size_t i : live) {
        const double v = arms[i].velocity + o.beta * r.area * r.area / arms[i].avg_reg;
        if (v > best) best = v, pick = i;
      }
      if (rng.uniform() < o.epsilon) {
        if (live.size() > 1) cur = live[rng.below(live.size())];
      } else {
        cur = pick;
      }
    } else if (st.rounds < o.warmup_rounds || !update) {
      continue;
    } else {
      for (size_t i : live) {
        if (arms[i].stats->rounds < o.warmup_rounds) {
          cur = i;
          break;
        }
      }
    }
  }
}

// The arm's result from its best trigger (or its last, when it never reached success).
void finish(Run& r, Arm& a) {
  KArmArm& st = *a.stats;
  st.reached = a.best_mask_t.defined();
  if (!st.reached) return;
  at::NoGradGuard no_grad;
  st.l1 = detail::to_mask(a.best_mask_t).sum().item<double>();
  st.size = st.l1 / r.area;
}

KArmArm* make_arm(std::vector<Arm>& arms, KArmArm& stats, const TensorData& clean,
                  const std::vector<int64_t>& predicted, uint64_t seed) {
  Arm a;
  a.stats = &stats;
  if (stats.source < 0) {
    a.data = std::make_unique<TensorData>(clean);
  } else {
    std::vector<int64_t> rows;
    for (size_t i = 0; i < predicted.size(); ++i) {
      if (predicted[i] == stats.source) rows.push_back(static_cast<int64_t>(i));
    }
    a.data = std::make_unique<TensorData>(clean.subset(rows));
  }
  a.stream = std::make_unique<detail::ImageStream>(*a.data, seed);
  arms.push_back(std::move(a));
  return &stats;
}

void check(const Model& m, const TensorData& clean, const KArmOptions& o) {
  detail::check_clean_images(m, clean);
  if (m.num_classes() < 2) {
    fail<InvalidArgument>("", "model", "a classifier of at least 2 classes",
                          std::to_string(m.num_classes()) + " class(es)");
  }
  if (clean.size() < 1) fail<InvalidArgument>("", "clean images", "at least one", "none");
  if (o.batch < 1 || o.batches_per_step < 1 || o.steps < 1 || o.max_arms < 1 || !(o.lr > 0) ||
      !(o.attack_success > 0 && o.attack_success <= 1) || !(o.gamma > 0 && o.gamma <= 1)) {
    fail<InvalidArgument>("", "K-Arm options",
                          "positive batch, steps, arms, lr; success and gamma in (0, 1]", "others");
  }
}

}  // namespace

KArmResult k_arm(const Model& m, const TensorData& clean, const KArmOptions& o) {
  check(m, clean, o);
  const auto t0 = Clock::now();
  KArmResult res;
  res.n_clean = clean.size();
  res.classes = m.num_classes();
  std::tie(res.pixel_min, res.pixel_max) = pixel_range(o.pixel_min, o.pixel_max, clean.images);
  const Shape s = m.input_shape();
  res.input = s;
  if (o.stage) o.stage("pre-screening");
  const detail::KArmScreen screen = detail::k_arm_screen(m, clean.images.to(at::kFloat), o);
  res.screen_s = seconds_since(t0);
  res.top_k = screen.top_k;
  res.arms = screen.arms;
  Run run{m, o, res.pixel_min, res.pixel_max, static_cast<double>(s[1] * s[2])};
  run.max_total = o.steps;
  std::vector<Arm> arms;
  Rng rng(o.seed ^ 0x6b61726dULL);
  const auto [umask, upattern] = start(rng, s, false, o.central_side);
  const auto [pmask, ppattern] = start(rng, s, true, o.central_side);
  for (size_t i = 0; i < res.arms.size(); ++i) {
    KArmArm& st = res.arms[i];
    make_arm(arms, st, clean, screen.predicted, o.seed * 0x9e3779b97f4a7c15ULL + i + 1);
    const bool pair = st.source >= 0;
    init_arm(arms.back(), pair ? pmask : umask, pair ? ppattern : upattern);
  }
  if (o.stage) o.stage("optimising " + std::to_string(arms.size()) + " arms");
  bandit(run, arms, o.steps, /*backward=*/false, rng);
  // Every universal arm the bandit left short of min_steps gets the rest, alone.
  for (size_t i = 0; i < arms.size(); ++i) {
    const int short_by = o.min_steps - res.arms[i].steps;
    if (res.arms[i].source >= 0 || short_by <= 0 || arms[i].stopped) continue;
    std::vector<Arm> one;
    one.push_back(std::move(arms[i]));
    run.max_total += short_by;
    bandit(run, one, short_by, /*backward=*/false, rng);
    arms[i] = std::move(one.front());
  }
  for (Arm& a : arms) finish(run, a);
  // The best arm: the largest score before the symmetric check.
  auto bound_of = [&](const KArmArm& a) {
    return a.source < 0 ? o.universal_bound : o.specific_bound;
  };
  size_t best = 0;
  for (size_t i = 1; i < arms.size(); ++i) {
    const KArmArm &x = res.arms[i], &y = res.arms[best];
    if (k_arm_score(x.size, bound_of(x), NAN, 1) > k_arm_score(y.size, bound_of(y), NAN, 1)) {
      best = i;
    }
  }
  const KArmArm& b = res.arms[best];
  res.target = b.target;
  res.source = b.source;
  res.l1 = b.reached ? b.l1 : run.area;
  res.size = b.size;
  res.bound = bound_of(b);
  if (b.source >= 0 && o.symmetric_check && b.reached) {
    // The reverse pair: from the target's images to the source.
    KArmArm sym;
    sym.target = b.source;
    sym.source = b.target;
    std::vector<Arm> back;
    make_arm(back, sym, clean, screen.predicted, o.seed ^ 0x73796dULL);
    if (back.front().data->size() > 0) {
      if (o.stage) o.stage("symmetric check");
      init_arm(back.front(), pmask, ppattern);
      run.max_total += b.steps;
      bandit(run, back, b.steps, /*backward=*/true, rng);
      finish(run, back.front());
      res.sym_l1 = sym.l1;
      res.ratio = sym.l1 / b.l1;
    }
  }
  res.score = k_arm_score(res.size, res.bound, res.ratio, o.ratio_bound);
  res.backdoored = b.reached && res.score > 0;
  res.steps = run.steps;
  // The best trigger, its success on its arm's images and one stamped example.
  at::NoGradGuard no_grad;
  const Arm& a = arms[best];
  const at::Tensor mt = a.best_mask_t.defined() ? a.best_mask_t : a.mask_t;
  const at::Tensor pt = a.best_pattern_t.defined() ? a.best_pattern_t : a.pattern_t;
  const at::Tensor mask = detail::to_mask(mt), pattern = full_pattern(pt, s, run.lo, run.hi);
  res.mask = mask[0][0].contiguous();
  res.pattern = pattern[0].contiguous();
  const int64_t n = std::min<int64_t>(a.data->size(), 1000);
  at::Tensor x = a.data->images.narrow(0, 0, n).to(at::kFloat);
  int64_t hits = 0;
  for (int64_t i = 0; i < n; i += 256) {
    at::Tensor xs = x.narrow(0, i, std::min<int64_t>(256, n - i));
    hits +=
        m.forward(detail::stamp(xs, mask, pattern)).argmax(1).eq(b.target).sum().item<int64_t>();
  }
  res.attack_success = static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(1, n));
  // The example: the first image the model does not already give the target.
  int64_t e = 0;
  if (b.source < 0) {
    while (e + 1 < n && screen.predicted[static_cast<size_t>(e)] == b.target) ++e;
  }
  res.example = detail::stamp(x.narrow(0, e, 1), mask, pattern)[0].contiguous();
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace bdguard
