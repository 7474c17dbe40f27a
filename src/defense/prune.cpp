// The pruning sweep: the plain reference and the exact fast path (see prune.h).
#include "bdguard/prune.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>
#include <set>
#include <thread>

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

// Sets OpenBLAS' thread count for a scope, where the BLAS is OpenBLAS (looked up at
// run time: libblas.so.3 may be another implementation).
class BlasThreads {
 public:
  explicit BlasThreads(int n)
      : get_(reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))),
        set_(reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    if (get_ == nullptr || set_ == nullptr) return;
    saved_ = get_();
    set_(n);
  }
  ~BlasThreads() {
    if (get_ != nullptr && set_ != nullptr) set_(saved_);
  }
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int (*get_)();
  void (*set_)(int);
  int saved_ = 1;
};

// Sets LibTorch's intra-op thread count for a scope.
class IntraOpThreads {
 public:
  explicit IntraOpThreads(int n) : saved_(at::get_num_threads()) { at::set_num_threads(n); }
  ~IntraOpThreads() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

// Images whose top two scores (the logits of a softmax output, else the outputs) are
// closer than this are re-run the plain way.
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
    // Its pre-activations per image, flattened channels-last: (units) or (oh, ow, filters).
    int64_t dim = 0;
    Shape out_shape;  // Keras output shape
    // A Dense fed by this layer alone (index into `second`); this layer's own output is
    // then not needed above the cut.
    int second = -1;
  };
  std::vector<Linear> linear;
  // A Dense layer whose only input is a linear layer above the cut (through Flatten):
  // its pre-activations are kept up to date too, from the entries of that layer's
  // output that pruning changes (after the activation, typically few).
  struct Second {
    int node = -1;
    size_t from = 0;  // index into `linear`
    Activation activation = Activation::kLinear;
    at::Tensor kernel;  // (from's dim, units) float32, the layer's own
    int64_t units = 0;
  };
  std::vector<Second> second;
  bool give_cut = false;  // some consumer of the cut re-runs from it directly
  std::vector<int> side;  // layers below the cut that the upper part also reads
  int64_t channels = 0, h = 0, w = 0;
  // Scores are the logits of the output Dense, computed from this node (its input);
  // -1: a model without a softmax or linear Dense on top, whose outputs are the scores.
  int score_node = -1;
  // spread[p] >= max over j of ||w_p - w_j||, the columns of the output Dense's kernel;
  // empty when the score node is not a vector (no label certificates then).
  std::vector<double> spread;
  // The output kernel and bias are finite and contiguous: scores can skip the zeros of
  // the score node (0 * w = 0 exactly) instead of a full matrix product.
  bool sparse_scores = false;
};

// max_j ||w_p - w_j|| for every column p of a kernel (in, classes), rounded up.
std::vector<double> class_spread(const at::Tensor& kernel) {
  at::NoGradGuard no_grad;
  at::Tensor w = kernel.to(at::kDouble);
  const int64_t classes = w.size(1);
  at::Tensor sq = (w * w).sum(0);  // ||w_p||^2
  at::Tensor worst;
  if (classes <= 4096) {
    // ||w_p - w_j||^2 = ||w_p||^2 + ||w_j||^2 - 2 w_p.w_j, plus room for rounding.
    at::Tensor both = sq.unsqueeze(1) + sq.unsqueeze(0);
    at::Tensor d2 = both * (1 + 1e-12) - 2 * at::mm(w.t(), w);
    worst = std::get<0>(d2.max(1)).clamp_min(0).sqrt();
  } else {
    // ||w_p - w_j|| <= ||w_p|| + max_j ||w_j||, without a classes x classes matrix.
    at::Tensor norm = sq.sqrt();
    worst = norm + norm.max();
  }
  worst = (worst * (1 + 1e-9)).contiguous();
  const double* pw = worst.data_ptr<double>();
  return std::vector<double>(pw, pw + classes);
}

// Finds the Dense that linear layer k alone feeds (through Flatten for a Conv2D), if
// its activation lets the sweep follow single changed entries exactly (ReLU, linear).
void add_second(const Model& m, Plan& p, size_t k) {
  Plan::Linear& lin = p.linear[k];
  if (lin.activation != Activation::kRelu && lin.activation != Activation::kLinear) return;
  auto cons = m.consumers(lin.node);
  if (cons.size() != 1) return;
  int node = cons[0];
  if (m.layer(static_cast<size_t>(node)).class_name == "Flatten") {
    auto after = m.consumers(node);
    if (after.size() != 1) return;
    node = after[0];
  } else if (!lin.dense) {
    return;  // a Dense on an image works per pixel
  }
  const auto* d = dynamic_cast<const Dense*>(&m.layer(static_cast<size_t>(node)));
  if (d == nullptr || node == m.output_index() || d->inputs.size() != 1 ||
      d->activation() == Activation::kSoftmax || d->weights[0].value.size(0) != lin.dim) {
    return;
  }
  Plan::Second sec;
  sec.node = node;
  sec.from = k;
  sec.activation = d->activation();
  sec.kernel = d->weights[0].value.contiguous();
  sec.units = d->units();
  lin.second = static_cast<int>(p.second.size());
  p.second.push_back(std::move(sec));
}

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
    lin.out_shape = m.layer(static_cast<size_t>(lin.node)).output_shape;
    lin.dim = 1;
    for (int64_t d : lin.out_shape) lin.dim *= d;
    for (auto& wt : lin.f64->weights) wt.value = wt.value.to(at::kDouble);
    p.linear.push_back(std::move(lin));
  }
  for (size_t k = 0; k < p.linear.size(); ++k) add_second(m, p, k);

  // Layers not above the cut that the upper part still reads (skip connections).
  auto above = downstream_of(m, p.cut);
  std::set<int> above_set(above.begin(), above.end());
  std::set<int> given;
  for (const auto& lin : p.linear) given.insert(lin.node);
  for (const auto& sec : p.second) given.insert(sec.node);
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
  if (const auto* out =
          dynamic_cast<const Dense*>(&m.layer(static_cast<size_t>(m.output_index())))) {
    // argmax of a softmax is the argmax of its logits; near ties go the plain way.
    if (out->activation() == Activation::kSoftmax || out->activation() == Activation::kLinear) {
      p.score_node = out->inputs[0];
      const at::Tensor& kernel = out->weights[0].value;
      if (m.layer(static_cast<size_t>(p.score_node)).output_shape.size() == 1 &&
          kernel.isfinite().all().item<bool>()) {
        p.spread = class_spread(kernel);
        p.sparse_scores =
            kernel.is_contiguous() && kernel.scalar_type() == at::kFloat &&
            (out->weights.size() < 2 || (out->weights[1].value.is_contiguous() &&
                                         out->weights[1].value.isfinite().all().item<bool>()));
      }
    }
  }
  return p;
}

// One data set's state during the fast sweep.
struct Track {
  const LabDataset* data = nullptr;
  at::Tensor x;                    // cut output (N, C, h, w), float32
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

void compute_below_cut(const Model& m, const Plan& p, Track& t, int64_t batch) {
  at::NoGradGuard no_grad;
  const int64_t n = t.data->size();
  std::vector<int> wanted{p.cut};
  wanted.insert(wanted.end(), p.side.begin(), p.side.end());
  // Everything is written straight into its place, batch by batch.
  auto internal = [&](int node) {
    const Shape& shape = m.layer(static_cast<size_t>(node)).output_shape;
    std::vector<int64_t> dims{n};
    if (shape.size() == 3) {
      dims.insert(dims.end(), {shape[2], shape[0], shape[1]});
    } else {
      dims.insert(dims.end(), shape.begin(), shape.end());
    }
    return at::empty(dims, at::kFloat);
  };
  t.x = internal(p.cut);
  for (size_t k = 1; k < wanted.size(); ++k) t.side[wanted[k]] = internal(wanted[k]);
  for (const auto& lin : p.linear) t.z.push_back(at::empty({n, lin.dim}, at::kDouble));
  for (const auto& sec : p.second) t.z2.push_back(at::empty({n, sec.units}, at::kDouble));
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t k = std::min(batch, n - s);
    Batch b = t.data->read(s, k);
    auto outs = m.run(b.images, wanted);
    t.x.narrow(0, s, k).copy_(outs[0]);
    for (size_t j = 1; j < wanted.size(); ++j) t.side[wanted[j]].narrow(0, s, k).copy_(outs[j]);
    std::vector<at::Tensor> pre;  // the linear layers' pre-activations, float32
    for (size_t j = 0; j < p.linear.size(); ++j) {
      const Plan::Linear& lin = p.linear[j];
      const Layer& l = m.layer(static_cast<size_t>(lin.node));
      pre.push_back(lin.dense
                        ? dynamic_cast<const Dense&>(l).pre_activation(to_flat_nhwc(outs[0]))
                        : to_flat_nhwc(dynamic_cast<const Conv2D&>(l).pre_activation(outs[0])));
      t.z[j].narrow(0, s, k).copy_(pre.back());
    }
    for (size_t j = 0; j < p.second.size(); ++j) {
      // Its starting point is what the model computes (float32); the sweep's updates
      // are float64.
      const Plan::Second& sec = p.second[j];
      at::Tensor a = apply_activation(p.linear[sec.from].activation, pre[sec.from], 1);
      const auto& d = dynamic_cast<const Dense&>(m.layer(static_cast<size_t>(sec.node)));
      t.z2[j].narrow(0, s, k).copy_(d.pre_activation(a));
    }
  }
}

// Channel c's share of a linear layer's pre-activations: for each (h, w) position of
// the cut, the entries of z (flattened channels-last) it feeds and with which weight,
// in float64, zeros left out.
struct ChannelMap {
  struct Run {
    int64_t at = 0, len = 0, w = 0;  // z[at .. at + len) -= d * weight[w .. w + len)
  };
  std::vector<int64_t> start;  // per position, its first run (h * w + 1 offsets)
  std::vector<Run> runs;
  std::vector<double> weight;
};

ChannelMap channel_map(const Plan& p, const Plan::Linear& lin, int64_t c) {
  at::NoGradGuard no_grad;
  const int64_t hw = p.h * p.w;
  ChannelMap map;
  map.start.push_back(0);
  auto add_rows = [&](const at::Tensor& rows) {  // (positions, dim) float64
    at::Tensor r = rows.contiguous();
    const double* pr = r.data_ptr<double>();
    for (int64_t s = 0; s < r.size(0); ++s) {
      const double* row = pr + s * lin.dim;
      for (int64_t e = 0; e < lin.dim;) {
        if (row[e] == 0) {
          ++e;
          continue;
        }
        ChannelMap::Run run;
        run.at = e;
        run.w = static_cast<int64_t>(map.weight.size());
        while (e < lin.dim && row[e] != 0) map.weight.push_back(row[e++]);
        run.len = e - run.at;
        map.runs.push_back(run);
      }
      map.start.push_back(static_cast<int64_t>(map.runs.size()));
    }
  };
  if (lin.dense) {
    // Flatten is channels-last: channel c sits at rows c, c + C, c + 2C, ...
    add_rows(lin.f64->weights[0].value.view({hw, p.channels, -1}).select(1, c));
    return map;
  }
  // A convolution: its response to each position of channel c alone (one-hot inputs),
  // a few positions at a time.
  const auto& conv = dynamic_cast<const Conv2D&>(*lin.f64);
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(lin.dim, 1));
  for (int64_t s0 = 0; s0 < hw; s0 += chunk) {
    const int64_t k = std::min(chunk, hw - s0);
    at::Tensor onehot = at::zeros({k, hw}, at::kDouble);
    for (int64_t j = 0; j < k; ++j) onehot[j][s0 + j] = 1.0;
    at::Tensor y = conv.input_channel_contribution(onehot.view({k, 1, p.h, p.w}), c);
    add_rows(to_flat_nhwc(y));
  }
  return map;
}

// Runs fn(begin, end, part) on `parts` consecutive ranges of [0, n), in parallel
// (without autograd, like the caller); rethrows the first exception of any part.
template <class F>
void parallel_ranges(int64_t n, int parts, const F& fn) {
  parts = static_cast<int>(std::min<int64_t>(parts, std::max<int64_t>(1, n / 512)));
  if (parts <= 1) {
    fn(int64_t{0}, n, 0);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  auto run = [&](int k) {
    try {
      at::NoGradGuard no_grad;
      fn(n * k / parts, n * (k + 1) / parts, k);
    } catch (...) {
      errors[static_cast<size_t>(k)] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < parts; ++k) pool.emplace_back(run, k);
  run(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

inline float activate(Activation a, float v) {
  return a == Activation::kRelu && v < 0 ? 0.0f : v;  // as at::relu: NaN stays NaN
}

// The sweep's inner loops, compiled for AVX-512, AVX2 and plain x86-64 and picked at
// load time. Each element is computed the same way in every version (no reordered
// sums; this file is built with -ffp-contract=off), so results do not depend on the CPU.
// Sanitizer builds keep one version: ifunc resolvers run before the sanitizer is set up.
#if defined(__SANITIZE_ADDRESS__)
#define BDGUARD_ONE_VERSION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define BDGUARD_ONE_VERSION
#endif
#endif
#if defined(__x86_64__) && !defined(BDGUARD_ONE_VERSION)
#define BDGUARD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BDGUARD_CLONES
#endif

// z[e] -= d * w[e]
BDGUARD_CLONES void sub_scaled(double* __restrict z, const double* __restrict w, double d,
                               int64_t n) {
  for (int64_t e = 0; e < n; ++e) z[e] -= d * w[e];
}

// z[e] += dz[e] for every e; returns how many entries' activate(a, float(z)) (ReLU or
// linear) changed, NaN always counting, with their index and the change (after -
// before, in float64). `before`, `after` and `flag` are scratch space of n (flag: n
// rounded up to 8).
BDGUARD_CLONES int64_t apply_change(double* __restrict z, const double* __restrict dz, int64_t n,
                                    Activation a, float* __restrict before, float* __restrict after,
                                    unsigned char* __restrict flag, int64_t* __restrict index,
                                    double* __restrict diff) {
  for (int64_t e = 0; e < n; ++e) {
    const double old = z[e], now = old + dz[e];
    z[e] = now;
    before[e] = activate(a, static_cast<float>(old));
    after[e] = activate(a, static_cast<float>(now));
    flag[e] = !(before[e] == after[e]);
  }
  const int64_t words = (n + 7) / 8;
  for (int64_t e = n; e < words * 8; ++e) flag[e] = 0;
  int64_t k = 0;
  for (int64_t w = 0; w < words; ++w) {  // eight flags at a time: most words hold none
    uint64_t bits;
    std::memcpy(&bits, flag + 8 * w, sizeof bits);
    for (; bits != 0; bits &= bits - 1) {
      const int64_t e = 8 * w + __builtin_ctzll(bits) / 8;
      index[k] = e;
      diff[k++] = static_cast<double>(after[e]) - static_cast<double>(before[e]);
    }
  }
  return k;
}

// z[u] += sum over j of diff[j] * w[index[j] * units + u], in order of j for each u;
// 32 units at a time, in four vectors of 8 (independent sums in flight).
using Doubles8 = double __attribute__((vector_size(64)));
using Floats8 = float __attribute__((vector_size(32)));

BDGUARD_CLONES void add_rows(double* __restrict z, const float* __restrict w, int64_t units,
                             const int64_t* __restrict index, const double* __restrict diff,
                             int64_t count) {
  int64_t u0 = 0;
  for (; u0 + 32 <= units; u0 += 32) {
    Doubles8 acc[4];
    std::memcpy(acc, z + u0, sizeof acc);
    for (int64_t j = 0; j < count; ++j) {
      const float* row = w + index[j] * units + u0;
      Doubles8 d = {};
      d += diff[j];
      for (int v = 0; v < 4; ++v) {
        Floats8 f;
        std::memcpy(&f, row + 8 * v, sizeof f);
        acc[v] += d * __builtin_convertvector(f, Doubles8);
      }
    }
    std::memcpy(z + u0, acc, sizeof acc);
  }
  for (; u0 < units; ++u0) {
    double acc = z[u0];
    for (int64_t j = 0; j < count; ++j)
      acc += diff[j] * static_cast<double>(w[index[j] * units + u0]);
    z[u0] = acc;
  }
}

// The scores of one image from the output Dense's input h (after ReLU, mostly zeros):
// out = bias + sum over the non-zero h[u] of h[u] * w[u, :], for each class in order
// of u; 128 classes at a time, in registers. Returns false (writing nothing) when over
// half of h is non-zero: a matrix product is faster then. NaN counts as non-zero.
using Floats16 = float __attribute__((vector_size(64)));

BDGUARD_CLONES bool sparse_scores(const float* __restrict h, int64_t in, const float* __restrict w,
                                  const float* __restrict bias, int64_t classes,
                                  float* __restrict out, int64_t* __restrict nz) {
  int64_t k = 0;
  for (int64_t u = 0; u < in; ++u) {
    nz[k] = u;
    k += !(h[u] == 0);
  }
  if (2 * k > in) return false;
  int64_t c0 = 0;
  for (; c0 + 128 <= classes; c0 += 128) {
    Floats16 acc[8] = {};
    if (bias != nullptr) std::memcpy(acc, bias + c0, sizeof acc);
    for (int64_t j = 0; j < k; ++j) {
      const float* row = w + nz[j] * classes + c0;
      Floats16 hv = {};
      hv += h[nz[j]];
      for (int v = 0; v < 8; ++v) {
        Floats16 wv;
        std::memcpy(&wv, row + 16 * v, sizeof wv);
        acc[v] += hv * wv;
      }
    }
    std::memcpy(out + c0, acc, sizeof acc);
  }
  for (; c0 < classes; ++c0) {
    float acc = bias != nullptr ? bias[c0] : 0.0f;
    for (int64_t j = 0; j < k; ++j) acc += h[nz[j]] * w[nz[j] * classes + c0];
    out[c0] = acc;
  }
  return true;
}

// Scores (rows, classes) of the output Dense for the listed rows of h (n, in).
at::Tensor output_scores(const Plan& p, const Dense& out, const at::Tensor& h,
                         const std::vector<int64_t>& rows) {
  const int64_t in = h.size(1), classes = out.units();
  if (!p.sparse_scores) {
    at::Tensor hr = static_cast<int64_t>(rows.size()) == h.size(0)
                        ? h
                        : h.index_select(0, at::tensor(rows, at::kLong));
    return out.pre_activation(hr);
  }
  at::Tensor scores = at::empty({static_cast<int64_t>(rows.size()), classes}, at::kFloat);
  const float* w = out.weights[0].value.data_ptr<float>();
  const float* bias = out.weights.size() > 1 ? out.weights[1].value.data_ptr<float>() : nullptr;
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
    scores.index_copy_(0, d, out.pre_activation(picked));
  }
  return scores;
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
        const Plan::Linear& lin = p.linear[k];
        double* z = zp[k] + i * lin.dim;
        double* target = z;  // with a Dense above: the change (dz) first, added at once
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
        // The entries of this layer's output that changed, into the Dense above it.
        const Plan::Second& sec = p.second[static_cast<size_t>(lin.second)];
        const float* kernel = sec.kernel.data_ptr<float>();
        double* z2 = z2p[static_cast<size_t>(lin.second)] + i * sec.units;
        const auto dim = static_cast<size_t>(lin.dim);
        before.resize(dim);
        after.resize(dim);
        flag.resize((dim + 7) / 8 * 8);
        index.resize(dim);
        diff.resize(dim);
        const int64_t count = apply_change(z, dz.data(), lin.dim, lin.activation, before.data(),
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

// The activated, float32 output of a layer from its float64 pre-activations z (N, dim)
// for the images `ids`; `image` (oh, ow, filters) gives a channels-last NCHW view.
at::Tensor activated(const at::Tensor& z, Activation a, const Shape& image, const int64_t* ids,
                     int64_t n) {
  const int64_t dim = z.size(1);
  at::Tensor out = at::empty({n, dim}, at::kFloat);
  float* po = out.data_ptr<float>();
  const double* pz = z.data_ptr<double>();
  const Activation inline_act = a == Activation::kRelu ? a : Activation::kLinear;
  for (int64_t j = 0; j < n; ++j) {
    const double* row = pz + ids[j] * dim;
    float* o = po + j * dim;
    for (int64_t e = 0; e < dim; ++e) o[e] = activate(inline_act, static_cast<float>(row[e]));
  }
  if (a != inline_act) out = apply_activation(a, out, 1);
  if (image.empty()) return out;
  return out.view({n, image[0], image[1], image[2]}).permute({0, 3, 1, 2});
}

// The top score of a row, its index (the first on equality, like argmax), and the
// largest of the others (equal to the top on a tie). Returns false if the row holds
// NaN. Sixteen lanes keep their own top two and first index, merged at the end.
using Ints16 = int32_t __attribute__((vector_size(64)));
#define BDGUARD_SELECT(mask, a, b) ((decltype(a))(((mask) & (Ints16)(a)) | (~(mask) & (Ints16)(b))))

BDGUARD_CLONES bool top_two(const float* __restrict row, int64_t classes, int64_t* arg,
                            float* best_out, float* second_out) {
  float best = -std::numeric_limits<float>::infinity(), second = best;
  int64_t at = 0, q = 0;
  bool nan = false;
  if (classes >= 16 && classes <= INT32_MAX) {
    Floats16 b = {}, s = {};
    b += best;
    s += best;
    Ints16 index = {}, lane = {}, bad = {};
    for (int l = 0; l < 16; ++l) lane[l] = l;
    for (; q + 16 <= classes; q += 16) {
      Floats16 v;
      std::memcpy(&v, row + q, sizeof v);
      bad |= (v != v);
      const Ints16 up = v > b;  // strict: a lane keeps its first index
      const Floats16 low = BDGUARD_SELECT(up, b, v);
      s = BDGUARD_SELECT(s > low, s, low);
      b = BDGUARD_SELECT(up, v, b);
      index = BDGUARD_SELECT(up, lane + static_cast<int32_t>(q), index);
    }
    int top = 0;
    for (int l = 0; l < 16; ++l) {
      nan |= bad[l] != 0;
      if (b[l] > b[top] || (b[l] == b[top] && index[l] < index[top])) top = l;
    }
    best = b[top];
    at = index[top];
    for (int l = 0; l < 16; ++l) {
      second = std::max(second, s[l]);
      if (l != top) second = std::max(second, b[l]);
    }
  }
  for (; q < classes; ++q) {
    const float v = row[q];
    nan |= std::isnan(v);
    if (v > best || (q == 0)) {
      if (q > 0) second = best;
      best = v;
      at = q;
    } else if (v > second) {
      second = v;
    }
  }
  *arg = at;
  *best_out = best;
  *second_out = second;
  return !nan;
}

// The top score's index (the first on equality, like argmax) of each row and its
// margin over the next, and the rows whose margin is below kTieMargin (or NaN).
void top_scores(const float* ps, int64_t rows, int64_t classes, int64_t* labels, double* margin,
                std::vector<int64_t>& ties) {
  for (int64_t j = 0; j < rows; ++j) {
    float best = 0, second = 0;
    int64_t arg = 0;
    const bool nan = !top_two(ps + j * classes, classes, &arg, &best, &second);
    labels[j] = arg;
    const double gap = static_cast<double>(best) - static_cast<double>(second);
    margin[j] = nan ? 0.0 : gap;
    if (nan || !(gap >= kTieMargin)) ties.push_back(j);
  }
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
  std::map<int, at::Tensor> given;
  for (size_t k = 0; k < p.linear.size(); ++k) {
    const Plan::Linear& lin = p.linear[k];
    if (lin.second >= 0) continue;  // only the Dense above it reads it
    given[lin.node] = activated(t.z[k], lin.activation, lin.dense ? Shape{} : lin.out_shape, id, n);
  }
  for (size_t k = 0; k < p.second.size(); ++k) {
    given[p.second[k].node] = activated(t.z2[k], p.second[k].activation, {}, id, n);
  }
  if (p.give_cut) given[p.cut] = t.x.index_select(0, ix);
  for (const auto& [node, v] : t.side) given[node] = v.index_select(0, ix);

  std::vector<int64_t> rows(static_cast<size_t>(n));  // the images scored here
  std::iota(rows.begin(), rows.end(), 0);
  at::Tensor scores, h;
  if (p.score_node >= 0) {
    h = m.run(at::Tensor(), {p.score_node}, given)[0].reshape({n, -1}).contiguous();
    if (!p.spread.empty()) {
      rows = uncertain_rows(p, t, h, id, n);
      for (int64_t j = 0; j < n; ++j) labels[j] = t.labels[static_cast<size_t>(id[j])];
      *certified += n - static_cast<int64_t>(rows.size());
    }
    if (rows.empty()) return 0;
    scores = output_scores(
        p, dynamic_cast<const Dense&>(m.layer(static_cast<size_t>(m.output_index()))), h, rows);
  } else {
    scores = m.run(at::Tensor(), {m.output_index()}, given)[0];
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
    std::map<int, at::Tensor> plain{{p.cut, t.x.index_select(0, tix)}};
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
    if (p.spread.empty()) continue;
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
      t->h =
          at::zeros({t->data->size(), m.layer(static_cast<size_t>(p.score_node)).output_shape[0]},
                    at::kFloat);
      t->margin.assign(all.size(), 0.0);
    }
    t->labels = upper_labels(m, p, *t, all, threads, &ties, &r.timings.images_certified);
    t->hits = count_hits(t->labels, t->data->labels());
  }
  r.steps.push_back(record(0, -1, p.channels, tracks, r));
  if (o.progress) o.progress(0, p.channels);

  for (int64_t s = 0; s < p.channels; ++s) {
    if (stop_now(r, o)) break;
    const int64_t c = r.order[static_cast<size_t>(s)];
    std::vector<ChannelMap> maps;
    for (const auto& lin : p.linear) maps.push_back(channel_map(p, lin, c));
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
