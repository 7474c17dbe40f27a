// The pruning sweep's exact fast path (see prune.h and plan.h).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "bdguard/error.h"
#include "bdguard/prune.h"
#include "defense/threads.h"
#include "kernels.h"
#include "plan.h"
#include "sweep_common.h"

namespace bdguard {
namespace sweep {
namespace {

// Images per forward pass of the layers above the cut.
constexpr int64_t kUpperChunk = 4096;

// One data set's state during the fast sweep.
struct Track {
  const LabDataset* data = nullptr;
  at::Tensor x;                    // cut output (N, C, h, w), float32, contiguous
  std::map<int, at::Tensor> side;  // side inputs, float32
  std::vector<at::Tensor> z;       // pre-activations of the linear layers, (N, dim) float64
  std::vector<at::Tensor> z2;      // pre-activations of the `second` layers, float64
  std::vector<int64_t> labels;     // current predictions
  int64_t hits = 0;
  // With a certificate: the score node's value (N, in) and the top-two margin of the
  // scores at each image's last scoring (0 for a tie).
  at::Tensor h;
  std::vector<double> margin;
};

// A node's output for the whole data set, (N, ...) float32.
at::Tensor full_value(const Model& m, int node, int64_t n) {
  Dims d = m.node(static_cast<size_t>(node)).info.dims;
  d[0] = n;
  return at::empty(d, at::kFloat);
}

// (n, dim) rows of a linear layer's output: channels-last for a convolution.
at::Tensor flat_rows(const Linear& lin, const at::Tensor& y) {
  return lin.conv ? y.permute({0, 2, 3, 1}).reshape({y.size(0), -1}) : y.reshape({y.size(0), -1});
}

void compute_below_cut(const Model& m, const Plan& p, Track& t, int64_t batch) {
  at::NoGradGuard no_grad;
  const int64_t n = t.data->size();
  std::vector<int> wanted{p.cut};
  wanted.insert(wanted.end(), p.side.begin(), p.side.end());
  for (const auto& lin : p.linear) wanted.push_back(lin.node);
  for (const auto& sec : p.second) wanted.push_back(sec.node);
  // Everything is written straight into its place, batch by batch.
  t.x = at::empty({n, p.channels, p.h, p.w}, at::kFloat);
  for (int s : p.side) t.side[s] = full_value(m, s, n);
  for (const auto& lin : p.linear) t.z.push_back(at::empty({n, lin.dim}, at::kDouble));
  for (const auto& sec : p.second) t.z2.push_back(at::empty({n, sec.units}, at::kDouble));
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t k = std::min(batch, n - s);
    Batch b = t.data->read(s, k);
    auto outs = m.run(b.images, wanted);
    size_t j = 0;
    t.x.narrow(0, s, k).copy_(outs[j++].reshape({k, p.channels, p.h, p.w}));
    for (int side : p.side) t.side[side].narrow(0, s, k).copy_(outs[j++]);
    // Their starting points are what the model computes (float32); the sweep's
    // updates are float64.
    for (size_t q = 0; q < p.linear.size(); ++q) {
      t.z[q].narrow(0, s, k).copy_(flat_rows(p.linear[q], outs[j++]));
    }
    for (size_t q = 0; q < p.second.size(); ++q) {
      t.z2[q].narrow(0, s, k).copy_(outs[j++].reshape({k, -1}));
    }
  }
}

// Prunes channel c in one data set's state: for every image whose channel c is not
// already the pruned value, removes the channel's contribution from the linear layers
// above the cut (and the change of their outputs from the `second` layers) and sets
// the channel to that value. Returns those images, in order; the same for any
// number of threads.
std::vector<int64_t> prune_in_track(const Plan& p, Track& t, int64_t c,
                                    const std::vector<ChannelMap>& maps, int threads) {
  const int64_t n = t.x.size(0), hw = p.h * p.w;
  const float v0 = p.v0[static_cast<size_t>(c)];
  float* px = t.x.data_ptr<float>();
  std::vector<double*> zp, z2p;
  for (auto& z : t.z) zp.push_back(z.data_ptr<double>());
  for (auto& z : t.z2) z2p.push_back(z.data_ptr<double>());
  std::vector<std::vector<int64_t>> parts(static_cast<size_t>(threads));
  parallel_ranges(n, threads, [&](int64_t begin, int64_t end, int part) {
    std::vector<int64_t>& changed = parts[static_cast<size_t>(part)];
    std::vector<float> before, after;
    std::vector<unsigned char> flag;
    std::vector<int64_t> index;
    std::vector<double> diff, dz;
    for (int64_t i = begin; i < end; ++i) {
      float* q = px + (i * p.channels + c) * hw;
      bool differs = false;
      for (int64_t s = 0; s < hw; ++s) differs |= !(q[s] == v0);  // NaN differs too
      if (!differs) continue;
      changed.push_back(i);
      for (size_t k = 0; k < maps.size(); ++k) {
        const Linear& lin = p.linear[k];
        double* z = zp[k] + i * lin.dim;
        double* target = z;  // with a layer above it: the change (dz) first, added at once
        if (lin.second >= 0) {
          dz.assign(static_cast<size_t>(lin.dim), 0.0);
          target = dz.data();
        }
        const ChannelMap& cm = maps[k];
        for (int64_t s = 0; s < hw; ++s) {
          const double d = static_cast<double>(q[s]) - static_cast<double>(v0);
          if (d == 0) continue;
          for (auto r = cm.start[static_cast<size_t>(s)]; r < cm.start[static_cast<size_t>(s) + 1];
               ++r) {
            const ChannelMap::Run& run = cm.runs[static_cast<size_t>(r)];
            sub_scaled(target + run.at, cm.weight.data() + run.w, d, run.len);
          }
        }
        if (lin.second < 0) continue;
        // The entries of this layer's output that changed, into the layer above it.
        const Second& sec = p.second[static_cast<size_t>(lin.second)];
        const float* kernel = sec.kernel.data_ptr<float>();
        double* z2 = z2p[static_cast<size_t>(lin.second)] + i * sec.units;
        const auto dim = static_cast<size_t>(lin.dim);
        before.resize(dim);
        after.resize(dim);
        flag.resize((dim + 7) / 8 * 8);
        index.resize(dim);
        diff.resize(dim);
        const int64_t count = apply_change(z, dz.data(), lin.dim, lin.relu, before.data(),
                                           after.data(), flag.data(), index.data(), diff.data());
        add_rows(z2, kernel, sec.units, index.data(), diff.data(), count);
      }
      for (int64_t s = 0; s < hw; ++s) q[s] = v0;
    }
  });
  std::vector<int64_t> changed;
  for (const auto& part : parts) changed.insert(changed.end(), part.begin(), part.end());
  return changed;
}

// The activated float32 output of a layer from its float64 pre-activations z (N, dim)
// for the images `ids`, as the graph holds it (NCHW for a convolution).
at::Tensor activated(const at::Tensor& z, bool relu, bool conv, const Dims& dims,
                     const int64_t* ids, int64_t n) {
  const int64_t dim = z.size(1);
  at::Tensor out = at::empty({n, dim}, at::kFloat);
  float* po = out.data_ptr<float>();
  const double* pz = z.data_ptr<double>();
  for (int64_t j = 0; j < n; ++j) {
    const double* row = pz + ids[j] * dim;
    float* o = po + j * dim;
    for (int64_t e = 0; e < dim; ++e) o[e] = activate(relu, static_cast<float>(row[e]));
  }
  if (!conv) return out.view({n, -1});
  return out.view({n, dims[2], dims[3], dims[1]}).permute({0, 3, 1, 2});
}

// Scores (rows, classes) of the classifier Gemm for the listed rows of h (n, in).
at::Tensor output_scores(const Model& m, const Plan& p, const at::Tensor& h,
                         const std::vector<int64_t>& rows) {
  const int64_t in = h.size(1), classes = p.score_kernel.size(1);
  auto dense_scores = [&](const at::Tensor& x) {
    const Node& g = m.node(static_cast<size_t>(p.score_gemm));
    std::vector<at::Tensor> inputs{x};
    for (size_t k = 1; k < g.inputs.size(); ++k) {
      inputs.push_back(g.inputs[k] < 0 ? at::Tensor()
                                       : m.node(static_cast<size_t>(g.inputs[k])).value);
    }
    return g.op->forward(inputs);
  };
  if (!p.sparse_scores) {
    at::Tensor hr = static_cast<int64_t>(rows.size()) == h.size(0)
                        ? h
                        : h.index_select(0, at::tensor(rows, at::kLong));
    return dense_scores(hr);
  }
  at::Tensor scores = at::empty({static_cast<int64_t>(rows.size()), classes}, at::kFloat);
  const float* w = p.score_kernel.data_ptr<float>();
  const float* bias = p.score_bias.defined() ? p.score_bias.data_ptr<float>() : nullptr;
  std::vector<int64_t> nz(static_cast<size_t>(in)), dense;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!sparse_scores(h.data_ptr<float>() + rows[r] * in, in, w, bias, classes,
                       scores.data_ptr<float>() + static_cast<int64_t>(r) * classes, nz.data())) {
      dense.push_back(static_cast<int64_t>(r));
    }
  }
  if (!dense.empty()) {
    at::Tensor d = at::tensor(dense, at::kLong);
    at::Tensor picked = h.index_select(0, at::tensor(rows, at::kLong).index_select(0, d));
    scores.index_copy_(0, d, dense_scores(picked));
  }
  return scores;
}

// Rows of h (n, in) whose label may differ from the one at their last scoring. The
// others keep it: their scores moved by W^T (h - h then), so score p minus score j
// moved by at most ||w_p - w_j|| ||h - h then|| <= spread[p] ||h - h then||, which
// leaves them more than kTieMargin ahead (as re-scoring would need).
std::vector<int64_t> uncertain_rows(const Plan& p, const Track& t, const at::Tensor& h,
                                    const int64_t* id, int64_t n) {
  const int64_t in = h.size(1);
  const float* ph = h.data_ptr<float>();
  const float* pt = t.h.data_ptr<float>();
  std::vector<int64_t> rows;
  for (int64_t j = 0; j < n; ++j) {
    const auto i = static_cast<size_t>(id[j]);
    const float* now = ph + j * in;
    const float* then = pt + id[j] * in;
    double sum = 0;
    for (int64_t u = 0; u < in; ++u) {
      const double d = static_cast<double>(now[u]) - static_cast<double>(then[u]);
      sum += d * d;
    }
    const double bound = p.spread[static_cast<size_t>(t.labels[i])] * std::sqrt(sum) * (1 + 1e-9);
    if (!(t.margin[i] - bound > kTieMargin)) rows.push_back(j);  // NaN: re-score
  }
  return rows;
}

// Labels of the images id[0, n) from the stored state into `labels`; near ties are
// re-run from the cut. Returns the number of ties; adds the images whose label was
// certified (not re-scored) to *certified.
int64_t upper_part(const Model& m, const Plan& p, Track& t, const int64_t* id, int64_t n,
                   int64_t* labels, int64_t* certified) {
  at::Tensor ix = at::from_blob(const_cast<int64_t*>(id), {n}, at::kLong);
  std::vector<int64_t> rows(static_cast<size_t>(n));  // the images scored here
  std::iota(rows.begin(), rows.end(), 0);
  at::Tensor scores, h;
  if (p.direct >= 0) {
    // The linear layer above the cut is the classifier: its z are the logits.
    const Linear& lin = p.linear[static_cast<size_t>(p.direct)];
    scores = activated(t.z[static_cast<size_t>(p.direct)], false, false, lin.out_dims, id, n);
  } else {
    std::map<int, at::Tensor> given;
    for (size_t k = 0; k < p.linear.size(); ++k) {
      const Linear& lin = p.linear[k];
      if (lin.second >= 0) continue;  // only the layer above it reads it
      given[lin.given] = activated(t.z[k], lin.relu, lin.conv, lin.out_dims, id, n);
    }
    for (size_t k = 0; k < p.second.size(); ++k) {
      given[p.second[k].given] = activated(t.z2[k], p.second[k].relu, false, {}, id, n);
    }
    if (p.give_cut) given[p.cut] = t.x.index_select(0, ix);
    for (const auto& [node, v] : t.side) given[node] = v.index_select(0, ix);
    if (p.score_node >= 0) {
      h = m.run(at::Tensor(), {p.score_node}, given)[0].reshape({n, -1}).contiguous();
      if (!p.spread.empty()) {
        rows = uncertain_rows(p, t, h, id, n);
        for (int64_t j = 0; j < n; ++j) labels[j] = t.labels[static_cast<size_t>(id[j])];
        *certified += n - static_cast<int64_t>(rows.size());
      }
      if (rows.empty()) return 0;
      scores = output_scores(m, p, h, rows);
    } else {
      scores = m.run(at::Tensor(), {m.output_index()}, given)[0];
    }
  }
  const auto scored = static_cast<int64_t>(rows.size());
  scores = scores.reshape({scored, -1}).contiguous();
  std::vector<int64_t> label(rows.size());
  std::vector<double> margin(rows.size());
  std::vector<int64_t> tie;
  top_scores(scores.data_ptr<float>(), scored, scores.size(1), label.data(), margin.data(), tie);
  if (!tie.empty()) {
    std::vector<int64_t> tid;
    for (int64_t j : tie) tid.push_back(id[rows[static_cast<size_t>(j)]]);
    at::Tensor tix = at::tensor(tid, at::kLong);
    const Dims& cd = m.node(static_cast<size_t>(p.cut)).info.dims;
    at::Tensor cut = t.x.index_select(0, tix);
    if (cd.size() == 2) cut = cut.reshape({cut.size(0), p.channels});
    std::map<int, at::Tensor> plain{{p.cut, cut}};
    for (const auto& [node, v] : t.side) plain[node] = v.index_select(0, tix);
    at::Tensor exact = m.run(at::Tensor(), {m.output_index()}, plain)[0].argmax(1).contiguous();
    const int64_t* pe = exact.data_ptr<int64_t>();
    for (size_t j = 0; j < tie.size(); ++j) {
      label[static_cast<size_t>(tie[j])] = pe[j];
      margin[static_cast<size_t>(tie[j])] = 0.0;  // never certified: re-scored next time
    }
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    labels[rows[r]] = label[r];
    if (p.spread.empty() || !h.defined()) continue;
    const int64_t i = id[rows[r]], in = h.size(1);
    t.margin[static_cast<size_t>(i)] = margin[r];
    std::memcpy(t.h.data_ptr<float>() + i * in, h.data_ptr<float>() + rows[r] * in,
                sizeof(float) * static_cast<size_t>(in));
  }
  return static_cast<int64_t>(tie.size());
}

// Labels of the images `ids`, on `threads` threads (each image's label does not
// depend on how they are split).
std::vector<int64_t> upper_labels(const Model& m, const Plan& p, Track& t,
                                  const std::vector<int64_t>& ids, int threads, int64_t* ties,
                                  int64_t* certified) {
  std::vector<int64_t> out(ids.size());
  std::vector<int64_t> tie_count(static_cast<size_t>(threads), 0);
  std::vector<int64_t> sure(static_cast<size_t>(threads), 0);
  parallel_ranges(
      static_cast<int64_t>(ids.size()), threads, [&](int64_t begin, int64_t end, int part) {
        for (int64_t s = begin; s < end; s += kUpperChunk) {
          const int64_t n = std::min(kUpperChunk, end - s);
          tie_count[static_cast<size_t>(part)] += upper_part(
              m, p, t, ids.data() + s, n, out.data() + s, &sure[static_cast<size_t>(part)]);
        }
      });
  for (int64_t c : tie_count) *ties += c;
  for (int64_t c : sure) *certified += c;
  return out;
}

}  // namespace
}  // namespace sweep

using namespace sweep;

SweepResult run_sweep(const Model& m, const SweepData& data, const SweepOptions& o) {
  check_sweep_data(data);
  const ChannelUnit target = resolve_prune_target(m, o.layer);
  Plan p = make_plan(m, target);
  SweepResult r = start_result(m, target, data);
  r.cut_layer = m.node(static_cast<size_t>(p.cut)).name;

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
  // Above the cut the sweep splits the images over its own threads, each running
  // single-threaded LibTorch and BLAS: idle pool threads spinning beside them (both
  // libraries' pools spin before they sleep) would only slow them down.
  const int threads = std::max(1, at::get_num_threads());
  IntraOpThreads one_thread(1);
  BlasThreads one_blas_thread(1);
  int64_t ties = 0;
  for (Track* t : tracks) {
    std::vector<int64_t> all(static_cast<size_t>(t->data->size()));
    std::iota(all.begin(), all.end(), 0);
    // Margins of 0 make every image scored: nothing is certified at step 0.
    t->labels.assign(all.size(), 0);
    if (!p.spread.empty()) {
      t->h = at::zeros({t->data->size(), p.score_kernel.size(0)}, at::kFloat);
      t->margin.assign(all.size(), 0.0);
    }
    t->labels = upper_labels(m, p, *t, all, threads, &ties, &r.timings.images_certified);
    t->hits = count_hits(t->labels, t->data->labels());
  }
  r.steps.push_back(record(0, -1, p.channels, tracks_of(tracks), r));
  if (o.progress) o.progress(0, p.channels);

  for (int64_t s = 0; s < p.channels; ++s) {
    if (stop_now(r, o)) break;
    const int64_t c = r.order[static_cast<size_t>(s)];
    std::vector<ChannelMap> maps;
    for (const auto& lin : p.linear) maps.push_back(channel_map(m, p, lin, c));
    for (Track* t : tracks) {
      std::vector<int64_t> changed = prune_in_track(p, *t, c, maps, threads);
      r.timings.images_skipped += t->data->size() - static_cast<int64_t>(changed.size());
      r.timings.images_recomputed += static_cast<int64_t>(changed.size());
      if (changed.empty()) continue;
      std::vector<int64_t> fresh =
          upper_labels(m, p, *t, changed, threads, &ties, &r.timings.images_certified);
      const auto& truth = t->data->labels();
      for (size_t j = 0; j < fresh.size(); ++j) {
        auto i = static_cast<size_t>(changed[j]);
        t->hits += (fresh[j] == truth[i]) - (t->labels[i] == truth[i]);
        t->labels[i] = fresh[j];
      }
    }
    r.steps.push_back(record(static_cast<int>(s + 1), c, p.channels, tracks_of(tracks), r));
    if (o.progress) o.progress(s + 1, p.channels);
  }
  r.timings.sweep_s = seconds_since(t1);
  r.timings.ties_verified = ties;
  return r;
}

}  // namespace bdguard
