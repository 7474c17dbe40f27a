// The plain sweep (the reference), the target's choice, mean activations and the
// models a sweep saves.
#include <ATen/ATen.h>

#include <numeric>

#include "bdguard/error.h"
#include "bdguard/prune.h"
#include "plan.h"
#include "sweep_common.h"

namespace bdguard {

using namespace sweep;

namespace {

// Whether removing node `skip` disconnects the output from the input.
bool on_every_path(const Model& m, int skip) {
  std::vector<char> reach(m.size(), 0);
  reach[static_cast<size_t>(m.input_index())] = 1;
  for (size_t j = 0; j < m.size(); ++j) {
    if (static_cast<int>(j) == skip) continue;
    for (int in : m.node(j).inputs) {
      if (in >= 0 && in != skip && reach[static_cast<size_t>(in)]) reach[j] = 1;
    }
  }
  return !reach[static_cast<size_t>(m.output_index())];
}

// Whether node `a` is an ancestor of node `b` (or b itself).
bool ancestor(const Model& m, int a, int b) {
  std::vector<char> seen(m.size(), 0);
  std::vector<int> todo{b};
  while (!todo.empty()) {
    const int i = todo.back();
    todo.pop_back();
    if (i == a) return true;
    if (i < a || seen[static_cast<size_t>(i)]) continue;  // topological order: a < its readers
    seen[static_cast<size_t>(i)] = 1;
    for (int in : m.node(static_cast<size_t>(i)).inputs) {
      if (in >= 0) todo.push_back(in);
    }
  }
  return false;
}

// Whether node i merges a value with one computed from it (Add, Sum, Concat, ... one
// of whose inputs is an ancestor of another): a skip connection carries that value
// around what lies between. DeepID's add_1 merges two branches: not a skip.
bool residual_merge(const Model& m, size_t i) {
  const Node& n = m.node(i);
  if (n.kind != NodeKind::kOp) return false;
  std::vector<int> ins;
  for (int in : n.inputs) {
    // Data paths only: not weights, and not shape arithmetic (a Reshape reads a shape
    // computed from its own input).
    const Node& x = in >= 0 ? m.node(static_cast<size_t>(in)) : n;
    if (in >= 0 && x.kind != NodeKind::kParam && x.kind != NodeKind::kConst &&
        at::isFloatingType(x.info.dtype)) {
      ins.push_back(in);
    }
  }
  for (int x : ins) {
    for (int y : ins) {
      if (x < y && ancestor(m, x, y)) return true;
    }
  }
  return false;
}

}  // namespace

ChannelUnit default_prune_target(const Model& m) {
  // A Conv that a skip connection bypasses does not alone shape what the classifier
  // reads, so only convolutions after the last residual connection qualify.
  int last_merge = -1;
  for (size_t i = 0; i < m.size(); ++i) {
    if (residual_merge(m, i)) last_merge = static_cast<int>(i);
  }
  for (int i = static_cast<int>(m.size()) - 1; i > last_merge; --i) {
    if (m.node(static_cast<size_t>(i)).is_op("Conv") && on_every_path(m, i)) return conv_unit(m, i);
  }
  for (int i = static_cast<int>(m.size()) - 1; i >= 0; --i) {
    const Node& n = m.node(static_cast<size_t>(i));
    if (n.is_op("Gemm") || n.is_op("MatMul")) return linear_input_unit(m, i);
  }
  throw InvalidArgument(describe(
      "", "model", "a Conv layer on every path to the output, or a Gemm / MatMul", "none"));
}

ChannelUnit resolve_prune_target(const Model& m, const std::string& name) {
  if (name.empty()) return default_prune_target(m);
  const int i = m.find(name);
  if (i < 0) {
    throw InvalidArgument(describe("", "--layer", "the name of a Conv, Gemm or MatMul node",
                                   "'" + name + "', which the model does not have"));
  }
  const Node& n = m.node(static_cast<size_t>(i));
  if (n.is_op("Conv")) return conv_unit(m, i);
  if (n.is_op("Gemm") || n.is_op("MatMul")) return linear_input_unit(m, i);
  throw InvalidArgument(describe("", "--layer", "a Conv, Gemm or MatMul node",
                                 "'" + name + "' (" + (n.op ? n.op->type() : "not an op") + ")"));
}

std::string describe_target(const Model& m, const ChannelUnit& u) {
  const Node& n = m.node(static_cast<size_t>(u.node));
  std::string out;
  if (u.kind == ChannelKind::kOutput) {
    out = "output channels of " + std::string(n.op->type()) + " '" + n.name +
          "' (kernel slice and bias set to zero";
    for (int bn : u.batch_norms) {
      out +=
          "; scale and bias of BatchNormalization '" + m.node(static_cast<size_t>(bn)).name + "'";
    }
    return out + ")";
  }
  return "input features of " + std::string(n.op->type()) + " '" + n.name +
         "' (the weight column each feature meets set to zero)";
}

std::vector<double> mean_activations(const Model& m, const ChannelUnit& target,
                                     const LabDataset& data, int64_t batch) {
  at::NoGradGuard no_grad;
  const Plan p = make_plan(m, target);
  at::Tensor cut = at::empty({data.size(), p.channels, p.h, p.w}, at::kFloat);
  for (int64_t s = 0; s < data.size(); s += batch) {
    const int64_t k = std::min(batch, data.size() - s);
    cut.narrow(0, s, k).copy_(
        m.run(data.read(s, k).images, {p.cut})[0].reshape({k, p.channels, p.h, p.w}));
  }
  return channel_means(cut);
}

std::vector<int64_t> pruning_order(const std::vector<double>& mean) {
  std::vector<int64_t> order(mean.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return mean[static_cast<size_t>(a)] < mean[static_cast<size_t>(b)];
  });
  return order;
}

SweepResult run_sweep_plain(const Model& m, const SweepData& data, const SweepOptions& o) {
  check_sweep_data(data);
  const ChannelUnit target = resolve_prune_target(m, o.layer);
  SweepResult r = start_result(m, target, data);
  r.cut_layer = m.node(static_cast<size_t>(make_plan(m, target).cut)).name;
  auto t0 = Clock::now();
  r.mean_activation = mean_activations(m, target, *data.clean, o.batch);
  r.order = pruning_order(r.mean_activation);
  r.timings.below_cut_s = seconds_since(t0);
  auto t1 = Clock::now();
  Model work = m.clone();
  struct Track {
    const LabDataset* data = nullptr;
    int64_t hits = 0;
    std::vector<int64_t> labels;
  };
  const LabDataset* sets[4] = {data.clean, data.poisoned, data.test, data.poisoned_test};
  std::vector<Track> storage(data.test ? 4 : 2);
  std::vector<Track*> tracks;
  for (size_t k = 0; k < storage.size(); ++k) {
    storage[k].data = sets[k];
    tracks.push_back(&storage[k]);
  }
  for (int64_t s = 0; s <= target.channels; ++s) {
    if (s > 0) {
      if (stop_now(r, o)) break;
      zero_channel(work, target, r.order[static_cast<size_t>(s - 1)]);
    }
    for (Track* t : tracks) {
      t->labels = predict_dataset({&work}, *t->data, o.batch)[0];
      t->hits = count_hits(t->labels, t->data->labels());
      r.timings.images_recomputed += t->data->size();
    }
    r.steps.push_back(record(static_cast<int>(s), s ? r.order[static_cast<size_t>(s - 1)] : -1,
                             target.channels, tracks_of(tracks), r));
    if (o.progress) o.progress(s, target.channels);
  }
  r.timings.sweep_s = seconds_since(t1);
  return r;
}

int first_step_with_drop(const SweepResult& r, double drop) {
  if (r.steps.empty()) return -1;
  const SweepStep& base = r.steps.front();
  const double n = static_cast<double>(r.n_clean);
  for (const auto& s : r.steps) {
    // Compare hit counts, not rounded percentages: 100 * (lost hits) / n >= drop.
    if (100.0 * static_cast<double>(base.valid_hits - s.valid_hits) >= drop * n - 1e-9 * n) {
      return s.step;
    }
  }
  return -1;
}

Model pruned_copy(const Model& m, const SweepResult& r, int count) {
  Model out = m.clone();
  const ChannelUnit target = resolve_prune_target(out, r.layer);
  for (int k = 0; k < count; ++k) zero_channel(out, target, r.order[static_cast<size_t>(k)]);
  return out;
}

}  // namespace bdguard
