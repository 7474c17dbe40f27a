// The pruning sweep: the plain reference and the exact fast path (see prune.h).
#include "bdguard/prune.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>

#include "bdguard/error.h"

namespace bdguard {
namespace {

// Keras' Flatten of an internal NCHW batch.
at::Tensor to_flat_nhwc(const at::Tensor& x) {
  return x.permute({0, 2, 3, 1}).reshape({x.size(0), -1});
}

// Mean of every channel of an (N, C, h, w) tensor, summed in float64 in a fixed
// order: the same numbers for any thread count.
std::vector<double> channel_means(const at::Tensor& cut) {
  at::Tensor x = cut.contiguous();
  const int64_t channels = x.size(1), hw = x.size(2) * x.size(3);
  const float* px = x.data_ptr<float>();
  std::vector<double> sums(static_cast<size_t>(channels), 0.0);
  for (int64_t i = 0; i < x.size(0); ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      const float* q = px + (i * channels + c) * hw;
      double s = 0;
      for (int64_t k = 0; k < hw; ++k) s += q[k];
      sums[static_cast<size_t>(c)] += s;
    }
  }
  double denom = static_cast<double>(std::max<int64_t>(x.size(0), 1) * hw);
  for (auto& s : sums) s /= denom;
  return sums;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Sets LibTorch's intra-op thread count for a scope.
class IntraOpThreads {
 public:
  explicit IntraOpThreads(int n) : saved_(at::get_num_threads()) { at::set_num_threads(n); }
  ~IntraOpThreads() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

// Images whose top two probabilities are closer than this are re-run the plain way.
constexpr double kTieMargin = 1e-3;
// Images per forward pass of the layers above the cut.
constexpr int64_t kUpperChunk = 4096;

bool channelwise(const Layer& l) {
  static const std::set<std::string> kinds = {
      "Activation", "ReLU", "MaxPooling2D", "AveragePooling2D", "BatchNormalization", "Dropout"};
  return kinds.count(l.class_name) > 0;
}

std::vector<int> downstream_of(const Model& m, int node) {
  std::vector<char> mark(m.size(), 0);
  mark[static_cast<size_t>(node)] = 1;
  for (size_t i = 0; i < m.size(); ++i) {
    for (int in : m.layer(i).inputs) {
      if (mark[static_cast<size_t>(in)]) mark[i] = 1;
    }
  }
  std::vector<int> out;
  for (size_t i = 0; i < m.size(); ++i) {
    if (mark[i]) out.push_back(static_cast<int>(i));
  }
  return out;
}

// How the sweep splits the model for one target layer.
struct Plan {
  int target = -1;
  int cut = -1;           // last layer of target + channel-wise chain
  std::vector<float> v0;  // value of a pruned channel at the cut
  struct Linear {
    int node = -1;       // the Conv2D or Dense layer above the cut
    bool dense = false;  // a Dense reached through Flatten
    Activation activation = Activation::kLinear;
    std::unique_ptr<Layer> f64;  // a float64 copy for the channel contributions
  };
  std::vector<Linear> linear;
  bool give_cut = false;  // some consumer of the cut re-runs from it directly
  std::vector<int> side;  // layers below the cut that the upper part also reads
  int64_t channels = 0, h = 0, w = 0;
};

Plan make_plan(const Model& m, int target) {
  Plan p;
  p.target = target;
  const auto& conv = dynamic_cast<const Conv2D&>(m.layer(static_cast<size_t>(target)));
  if (conv.activation() == Activation::kSoftmax) {
    throw InvalidArgument(describe("", "layer '" + conv.name + "'",
                                   "a Conv2D with an element-wise activation", "softmax"));
  }
  int node = target;
  std::vector<int> chain;
  while (true) {
    auto cons = m.consumers(node);
    if (cons.size() != 1) break;
    const Layer& next = m.layer(static_cast<size_t>(cons[0]));
    if (!channelwise(next) || next.inputs.size() != 1 || cons[0] == m.output_index()) break;
    node = cons[0];
    chain.push_back(node);
  }
  p.cut = node;
  if (p.cut == m.output_index() || m.consumers(p.cut).empty()) {
    throw InvalidArgument(describe("", "layer '" + conv.name + "'", "a Conv2D with layers above it",
                                   "the model's output"));
  }
  const Shape& cs = m.layer(static_cast<size_t>(p.cut)).output_shape;
  p.h = cs[0], p.w = cs[1], p.channels = cs[2];

  // A pruned channel outputs activation(0) everywhere; the chain maps that constant
  // to a constant per channel.
  {
    at::NoGradGuard no_grad;
    const Shape& ts = conv.output_shape;
    at::Tensor t = at::full({1, ts[2], ts[0], ts[1]}, activation_of_zero(conv.activation()));
    for (int i : chain) t = m.layer(static_cast<size_t>(i)).forward({t});
    at::Tensor v = t.select(0, 0).select(1, 0).select(1, 0).contiguous();
    p.v0.assign(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
  }

  for (int c : m.consumers(p.cut)) {
    const Layer& l = m.layer(static_cast<size_t>(c));
    Plan::Linear lin;
    if (const auto* cv = dynamic_cast<const Conv2D*>(&l)) {
      if (l.inputs.size() == 1 && cv->groups() == 1) {
        lin.node = c;
        lin.activation = cv->activation();
      }
    } else if (l.class_name == "Flatten") {
      auto after = m.consumers(c);
      if (after.size() == 1) {
        if (const auto* d = dynamic_cast<const Dense*>(&m.layer(static_cast<size_t>(after[0])))) {
          lin.node = after[0];
          lin.dense = true;
          lin.activation = d->activation();
        }
      }
    }
    if (lin.node < 0 || lin.activation == Activation::kSoftmax) {
      p.give_cut = true;
      continue;
    }
    lin.f64 = m.layer(static_cast<size_t>(lin.node)).clone();
    for (auto& wt : lin.f64->weights) wt.value = wt.value.to(at::kDouble);
    p.linear.push_back(std::move(lin));
  }

  // Layers not above the cut that the upper part still reads (skip connections).
  auto above = downstream_of(m, p.cut);
  std::set<int> above_set(above.begin(), above.end());
  std::set<int> given;
  for (const auto& lin : p.linear) given.insert(lin.node);
  if (p.give_cut) given.insert(p.cut);
  std::vector<int> todo{m.output_index()};
  std::set<int> seen;
  while (!todo.empty()) {
    int i = todo.back();
    todo.pop_back();
    if (!seen.insert(i).second) continue;
    if (given.count(i)) continue;
    if (!above_set.count(i)) {
      p.side.push_back(i);
      continue;
    }
    for (int in : m.layer(static_cast<size_t>(i)).inputs) todo.push_back(in);
  }
  std::sort(p.side.begin(), p.side.end());
  return p;
}

// One data set's state during the fast sweep.
struct Track {
  const LabDataset* data = nullptr;
  at::Tensor x;                    // cut output (N, C, h, w), float32
  std::map<int, at::Tensor> side;  // side inputs, float32
  std::vector<at::Tensor> z;       // pre-activations of the linear layers, float64
  std::vector<int64_t> labels;     // current predictions
  int64_t hits = 0;
};

void compute_below_cut(const Model& m, const Plan& p, Track& t, int64_t batch) {
  at::NoGradGuard no_grad;
  const int64_t n = t.data->size();
  std::vector<int> wanted{p.cut};
  wanted.insert(wanted.end(), p.side.begin(), p.side.end());
  std::vector<std::vector<at::Tensor>> parts(wanted.size());
  for (int64_t s = 0; s < n; s += batch) {
    Batch b = t.data->read(s, std::min(batch, n - s));
    auto outs = m.run(b.images, wanted);
    for (size_t k = 0; k < outs.size(); ++k) parts[k].push_back(outs[k].contiguous());
  }
  auto cat = [](const std::vector<at::Tensor>& v, const Shape& shape) {
    if (!v.empty()) return at::cat(v);
    std::vector<int64_t> dims{0};
    if (shape.size() == 3) {
      dims.insert(dims.end(), {shape[2], shape[0], shape[1]});
    } else {
      dims.insert(dims.end(), shape.begin(), shape.end());
    }
    return at::empty(dims, at::kFloat);
  };
  t.x = cat(parts[0], m.layer(static_cast<size_t>(p.cut)).output_shape);
  for (size_t k = 1; k < wanted.size(); ++k) {
    t.side[wanted[k]] = cat(parts[k], m.layer(static_cast<size_t>(wanted[k])).output_shape);
  }
  for (const auto& lin : p.linear) {
    const Layer& l = m.layer(static_cast<size_t>(lin.node));
    std::vector<at::Tensor> zs;
    for (int64_t s = 0; s < n; s += batch) {
      at::Tensor xb = t.x.narrow(0, s, std::min(batch, n - s));
      at::Tensor z = lin.dense ? dynamic_cast<const Dense&>(l).pre_activation(to_flat_nhwc(xb))
                               : dynamic_cast<const Conv2D&>(l).pre_activation(xb);
      zs.push_back(z.to(at::kDouble));
    }
    t.z.push_back(zs.empty() ? at::empty({0}, at::kDouble) : at::cat(zs));
  }
}

// Labels of the images `idx` from the stored state; near ties are re-run from the cut.
std::vector<int64_t> upper_labels(const Model& m, const Plan& p, const Track& t,
                                  const at::Tensor& idx, int64_t* ties) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(idx.numel()));
  for (int64_t s = 0; s < idx.numel(); s += kUpperChunk) {
    at::Tensor ix = idx.narrow(0, s, std::min(kUpperChunk, idx.numel() - s));
    std::map<int, at::Tensor> given;
    for (size_t k = 0; k < p.linear.size(); ++k) {
      at::Tensor z = t.z[k].index_select(0, ix).to(at::kFloat);
      given[p.linear[k].node] = apply_activation(p.linear[k].activation, z, 1);
    }
    if (p.give_cut) given[p.cut] = t.x.index_select(0, ix);
    for (const auto& [node, v] : t.side) given[node] = v.index_select(0, ix);
    at::Tensor probs = m.run(at::Tensor(), {m.output_index()}, given)[0];
    at::Tensor labels = probs.argmax(1).contiguous();
    if (probs.size(1) > 1) {
      at::Tensor top2 = std::get<0>(probs.topk(2, 1));
      at::Tensor tie = (top2.select(1, 0) - top2.select(1, 1)).lt(kTieMargin).nonzero().squeeze(1);
      if (tie.numel() > 0) {
        *ties += tie.numel();
        at::Tensor tix = ix.index_select(0, tie);
        std::map<int, at::Tensor> plain{{p.cut, t.x.index_select(0, tix)}};
        for (const auto& [node, v] : t.side) plain[node] = v.index_select(0, tix);
        at::Tensor exact = m.run(at::Tensor(), {m.output_index()}, plain)[0].argmax(1);
        labels.index_copy_(0, tie, exact);
      }
    }
    const int64_t* lp = labels.data_ptr<int64_t>();
    out.insert(out.end(), lp, lp + labels.numel());
  }
  return out;
}

int64_t count_hits(const std::vector<int64_t>& pred, const std::vector<int64_t>& truth) {
  int64_t h = 0;
  for (size_t i = 0; i < pred.size(); ++i) h += pred[i] == truth[i];
  return h;
}

SweepStep record(int step, int64_t channel, int64_t channels, const std::vector<Track*>& tracks,
                 SweepResult& r) {
  SweepStep s;
  s.step = step;
  s.channel = channel;
  s.fraction_pruned = static_cast<double>(step) / static_cast<double>(channels);
  s.valid_hits = tracks[0]->hits;
  s.valid_asr_hits = tracks[1]->hits;
  s.valid_accuracy = percent(tracks[0]->hits, tracks[0]->data->size());
  s.valid_asr = percent(tracks[1]->hits, tracks[1]->data->size());
  if (tracks.size() > 2) {
    s.test_accuracy = percent(tracks[2]->hits, tracks[2]->data->size());
    s.test_asr = percent(tracks[3]->hits, tracks[3]->data->size());
    r.test_predictions.push_back(tracks[2]->labels);
    r.poisoned_test_predictions.push_back(tracks[3]->labels);
  }
  return s;
}

bool stop_now(const SweepResult& r, const SweepOptions& o) {
  const SweepStep& base = r.steps.front();
  const SweepStep& last = r.steps.back();
  return base.valid_accuracy - last.valid_accuracy > o.stop_drop;
}

void check_data(const SweepData& d) {
  if (!d.clean || !d.poisoned) {
    throw InvalidArgument("prune: clean and poisoned validation data are both required");
  }
  if ((d.test == nullptr) != (d.poisoned_test == nullptr)) {
    throw InvalidArgument("prune: --test and --poisoned-test go together");
  }
}

SweepResult start_result(const Model& m, int target, const SweepData& data, int64_t batch) {
  SweepResult r;
  r.layer = m.layer(static_cast<size_t>(target)).name;
  r.n_clean = data.clean->size();
  r.n_poisoned = data.poisoned->size();
  r.n_test = data.test ? data.test->size() : 0;
  r.n_poisoned_test = data.poisoned_test ? data.poisoned_test->size() : 0;
  (void)batch;
  return r;
}

}  // namespace

std::vector<int64_t> zero_channels(const Layer& layer) {
  std::vector<int64_t> out;
  if (layer.weights.empty()) return out;
  at::Tensor k = layer.weights[0].value;
  int64_t n = k.size(k.dim() - 1);
  at::Tensor nonzero = k.reshape({-1, n}).ne(0).any(0);
  if (layer.weights.size() > 1 && layer.weights[1].value.dim() == 1 &&
      layer.weights[1].value.size(0) == n) {
    nonzero = nonzero.logical_or(layer.weights[1].value.ne(0));
  }
  for (int64_t c = 0; c < n; ++c) {
    if (!nonzero[c].item<bool>()) out.push_back(c);
  }
  return out;
}

void prune_channel(Layer& layer, int64_t c) {
  if (layer.weights.empty()) {
    throw InvalidArgument(
        describe("", "layer '" + layer.name + "'", "a layer with weights", layer.class_name));
  }
  at::NoGradGuard no_grad;
  at::Tensor k = layer.weights[0].value;
  if (c < 0 || c >= k.size(k.dim() - 1)) {
    throw InvalidArgument(describe("", "layer '" + layer.name + "'",
                                   "a channel in [0, " + std::to_string(k.size(k.dim() - 1)) + ")",
                                   std::to_string(c)));
  }
  k.select(k.dim() - 1, c).zero_();
  if (layer.weights.size() > 1) layer.weights[1].value[c].zero_();
}

int default_prune_layer(const Model& m) {
  // Remove each Conv2D in turn: the last one whose removal disconnects the output
  // from the input lies on every path.
  for (int i = static_cast<int>(m.size()) - 1; i >= 0; --i) {
    if (m.layer(static_cast<size_t>(i)).class_name != "Conv2D") continue;
    std::vector<char> reach(m.size(), 0);
    reach[static_cast<size_t>(m.input_index())] = 1;
    for (size_t j = 0; j < m.size(); ++j) {
      if (static_cast<int>(j) == i) continue;
      for (int in : m.layer(j).inputs) {
        if (in != i && reach[static_cast<size_t>(in)]) reach[j] = 1;
      }
    }
    if (!reach[static_cast<size_t>(m.output_index())]) return i;
  }
  throw InvalidArgument(
      describe("", "model", "a Conv2D layer on every path to the output", "none"));
}

int resolve_prune_layer(const Model& m, const std::string& name) {
  if (name.empty()) return default_prune_layer(m);
  int i = m.find(name);
  if (i < 0) {
    throw InvalidArgument(describe("", "--layer", "the name of a Conv2D layer",
                                   "'" + name + "', which the model does not have"));
  }
  if (m.layer(static_cast<size_t>(i)).class_name != "Conv2D") {
    throw InvalidArgument(
        describe("", "--layer", "a Conv2D layer",
                 "'" + name + "' (" + m.layer(static_cast<size_t>(i)).class_name + ")"));
  }
  return i;
}

std::vector<double> mean_activations(const Model& m, int layer, const LabDataset& data,
                                     int64_t batch) {
  Plan p = make_plan(m, layer);
  Track t;
  t.data = &data;
  Plan light;  // only the cut is needed here
  light.cut = p.cut;
  compute_below_cut(m, light, t, batch);
  return channel_means(t.x);
}

std::vector<int64_t> pruning_order(const std::vector<double>& mean) {
  std::vector<int64_t> order(mean.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return mean[static_cast<size_t>(a)] < mean[static_cast<size_t>(b)];
  });
  return order;
}

SweepResult run_sweep(const Model& m, const SweepData& data, const SweepOptions& o) {
  check_data(data);
  const int target = resolve_prune_layer(m, o.layer);
  Plan p = make_plan(m, target);
  SweepResult r = start_result(m, target, data, o.batch);
  r.cut_layer = m.layer(static_cast<size_t>(p.cut)).name;
  r.channels = p.channels;

  auto t0 = Clock::now();
  std::vector<Track> storage(data.test ? 4 : 2);
  const LabDataset* sets[4] = {data.clean, data.poisoned, data.test, data.poisoned_test};
  std::vector<Track*> tracks;
  for (size_t k = 0; k < storage.size(); ++k) {
    storage[k].data = sets[k];
    compute_below_cut(m, p, storage[k], o.batch);
    tracks.push_back(&storage[k]);
  }
  r.timings.below_cut_s = seconds_since(t0);

  r.mean_activation = channel_means(storage[0].x);
  r.order = pruning_order(r.mean_activation);

  auto t1 = Clock::now();
  // Above the cut the work is small matrix products: OpenBLAS' own threads run them,
  // and idle LibTorch worker threads spinning beside them would only slow them down.
  IntraOpThreads one_thread(1);
  int64_t ties = 0;
  for (Track* t : tracks) {
    at::Tensor all = at::arange(t->data->size(), at::kLong);
    t->labels = upper_labels(m, p, *t, all, &ties);
    t->hits = count_hits(t->labels, t->data->labels());
  }
  r.steps.push_back(record(0, -1, p.channels, tracks, r));
  if (o.progress) o.progress(0, p.channels);

  for (int64_t s = 0; s < p.channels; ++s) {
    if (stop_now(r, o)) break;
    const int64_t c = r.order[static_cast<size_t>(s)];
    const float v0 = p.v0[static_cast<size_t>(c)];
    for (Track* t : tracks) {
      at::NoGradGuard no_grad;
      at::Tensor xc = t->x.select(1, c);  // (N, h, w) view
      at::Tensor idx = xc.ne(v0).flatten(1).any(1).nonzero().squeeze(1);
      r.timings.images_skipped += t->data->size() - idx.numel();
      r.timings.images_recomputed += idx.numel();
      if (idx.numel() == 0) continue;
      // What pruning removes from channel c of the changed images.
      at::Tensor delta = (xc.index_select(0, idx).to(at::kDouble) - static_cast<double>(v0));
      for (size_t k = 0; k < p.linear.size(); ++k) {
        const auto& lin = p.linear[k];
        at::Tensor contrib;
        if (lin.dense) {
          // Flatten is channels-last: channel c sits at rows c, c + C, c + 2C, ...
          at::Tensor rows =
              lin.f64->weights[0].value.view({p.h * p.w, p.channels, -1}).select(1, c);
          contrib = at::mm(delta.reshape({idx.numel(), p.h * p.w}), rows);
        } else {
          contrib = dynamic_cast<const Conv2D&>(*lin.f64).input_channel_contribution(
              delta.unsqueeze(1), c);
        }
        t->z[k].index_add_(0, idx, -contrib);
      }
      xc.index_fill_(0, idx, v0);
      std::vector<int64_t> fresh = upper_labels(m, p, *t, idx, &ties);
      const int64_t* ip = idx.data_ptr<int64_t>();
      const auto& truth = t->data->labels();
      for (size_t j = 0; j < fresh.size(); ++j) {
        auto i = static_cast<size_t>(ip[j]);
        t->hits += (fresh[j] == truth[i]) - (t->labels[i] == truth[i]);
        t->labels[i] = fresh[j];
      }
    }
    r.steps.push_back(record(static_cast<int>(s + 1), c, p.channels, tracks, r));
    if (o.progress) o.progress(s + 1, p.channels);
  }
  r.timings.sweep_s = seconds_since(t1);
  r.timings.ties_verified = ties;
  return r;
}

SweepResult run_sweep_plain(const Model& m, const SweepData& data, const SweepOptions& o) {
  check_data(data);
  const int target = resolve_prune_layer(m, o.layer);
  SweepResult r = start_result(m, target, data, o.batch);
  Plan p = make_plan(m, target);
  r.cut_layer = m.layer(static_cast<size_t>(p.cut)).name;
  r.channels = p.channels;
  auto t0 = Clock::now();
  r.mean_activation = mean_activations(m, target, *data.clean, o.batch);
  r.order = pruning_order(r.mean_activation);
  r.timings.below_cut_s = seconds_since(t0);
  auto t1 = Clock::now();
  Model work = m.clone();
  const LabDataset* sets[4] = {data.clean, data.poisoned, data.test, data.poisoned_test};
  std::vector<Track> storage(data.test ? 4 : 2);
  std::vector<Track*> tracks;
  for (size_t k = 0; k < storage.size(); ++k) {
    storage[k].data = sets[k];
    tracks.push_back(&storage[k]);
  }
  for (int64_t s = 0; s <= p.channels; ++s) {
    if (s > 0) {
      if (stop_now(r, o)) break;
      prune_channel(work.layer(static_cast<size_t>(target)), r.order[static_cast<size_t>(s - 1)]);
    }
    for (Track* t : tracks) {
      t->labels = predict_dataset({&work}, *t->data, o.batch)[0];
      t->hits = count_hits(t->labels, t->data->labels());
      r.timings.images_recomputed += t->data->size();
    }
    r.steps.push_back(record(static_cast<int>(s), s ? r.order[static_cast<size_t>(s - 1)] : -1,
                             p.channels, tracks, r));
    if (o.progress) o.progress(s, p.channels);
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
  int target = out.find(r.layer);
  for (int k = 0; k < count; ++k) {
    prune_channel(out.layer(static_cast<size_t>(target)), r.order[static_cast<size_t>(k)]);
  }
  return out;
}

}  // namespace bdguard
