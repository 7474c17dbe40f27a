// Splitting a model for the fast sweep (plan.h).
#include "plan.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "bdguard/error.h"
#include "bdguard/ops.h"

namespace bdguard::sweep {
namespace {

const Node& at_node(const Model& m, int i) { return m.node(static_cast<size_t>(i)); }

bool fixed(const Model& m, int i) {
  return i >= 0 &&
         (at_node(m, i).kind == NodeKind::kParam || at_node(m, i).kind == NodeKind::kConst);
}

// Every input after the first is a parameter or constant (or absent).
bool rest_fixed(const Model& m, const Node& n) {
  for (size_t k = 1; k < n.inputs.size(); ++k) {
    if (n.inputs[k] >= 0 && !fixed(m, n.inputs[k])) return false;
  }
  return true;
}

// Runs the layout ops `path` on x (their other inputs are constants of the model).
at::Tensor run_path(const Model& m, const std::vector<int>& path, at::Tensor x) {
  for (int i : path) {
    const Node& n = at_node(m, i);
    std::vector<at::Tensor> in{x};
    for (size_t k = 1; k < n.inputs.size(); ++k) {
      in.push_back(n.inputs[k] < 0 ? at::Tensor() : at_node(m, n.inputs[k]).value);
    }
    x = n.op->forward(in);
  }
  return x;
}

// The weight of a Gemm (transA = 0, alpha = 1) or 2-D MatMul as the layer sees it,
// (in, units); undefined when the node is not such a layer.
at::Tensor seen_weight(const Model& m, int i) {
  const Node& n = at_node(m, i);
  if (n.inputs.size() < 2 || !fixed(m, n.inputs[1])) return {};
  const at::Tensor& b = at_node(m, n.inputs[1]).value;
  if (b.dim() != 2 || b.scalar_type() != at::kFloat) return {};
  if (n.is_op("Gemm")) {
    const auto& a = dynamic_cast<const GemmOp&>(*n.op).attrs();
    if (a.trans_a || a.alpha != 1.0) return {};
    if (n.inputs.size() > 2 && n.inputs[2] >= 0 && (a.beta != 1.0 || !fixed(m, n.inputs[2]))) {
      return {};
    }
    return a.trans_b ? b.t() : b;
  }
  if (n.is_op("MatMul") && at_node(m, n.inputs[0]).info.dims.size() == 2) return b;
  return {};
}

// Where each output index of `path` comes from: `index` (the values 0..n-1 laid out
// as the path's input) pushed through the path; empty unless that is a permutation.
std::vector<int64_t> inverse_through(const Model& m, const std::vector<int>& path,
                                     const at::Tensor& index, int64_t n) {
  at::Tensor v = run_path(m, path, index).reshape({-1}).to(at::kLong).contiguous();
  if (v.numel() != n) return {};
  std::vector<int64_t> inv(static_cast<size_t>(n), -1);
  const int64_t* pv = v.data_ptr<int64_t>();
  for (int64_t r = 0; r < n; ++r) {
    if (pv[r] < 0 || pv[r] >= n || inv[static_cast<size_t>(pv[r])] >= 0) return {};
    inv[static_cast<size_t>(pv[r])] = r;
  }
  return inv;
}

// The Relu that alone reads node i, or -1.
int relu_after(const Model& m, int i) {
  auto cons = m.consumers(i);
  if (cons.size() == 1 && at_node(m, cons[0]).is_op("Relu")) return cons[0];
  return -1;
}

std::vector<int> downstream_of(const Model& m, int node) {
  std::vector<char> mark(m.size(), 0);
  mark[static_cast<size_t>(node)] = 1;
  for (size_t i = 0; i < m.size(); ++i) {
    for (int in : m.node(i).inputs) {
      if (in >= 0 && mark[static_cast<size_t>(in)]) mark[i] = 1;
    }
  }
  std::vector<int> out;
  for (size_t i = 0; i < m.size(); ++i) {
    if (mark[i]) out.push_back(static_cast<int>(i));
  }
  return out;
}

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

// Follows single-reader layout ops from `from`; returns the first other node (-1 at a
// branch or the end) and the layout ops passed in `path`.
int follow_layout(const Model& m, int from, std::vector<int>& path) {
  int prev = from;
  for (;;) {
    auto cons = m.consumers(prev);
    if (cons.size() != 1) return -1;
    const Node& n = at_node(m, cons[0]);
    if (n.inputs.empty() || n.inputs[0] != prev) return -1;
    if (!n.op->layout_only() || !rest_fixed(m, n)) return cons[0];
    path.push_back(cons[0]);
    prev = cons[0];
  }
}

// Adds linear layer `node` (a Conv reading the cut, or a Gemm / MatMul reached from it
// through `path`); false when the sweep cannot follow it (the cut is then given).
bool add_linear(const Model& m, Plan& p, int node, const std::vector<int>& path) {
  const Node& n = at_node(m, node);
  Linear lin;
  lin.node = node;
  lin.out_dims = n.info.dims;
  if (n.is_op("Conv")) {
    const auto& conv = dynamic_cast<const ConvOp&>(*n.op);
    if (!path.empty() || n.inputs[0] != p.cut || conv.group() != 1 || !fixed(m, n.inputs[1]) ||
        n.info.dims.size() != 4) {
      return false;
    }
    lin.conv = true;
    lin.weight64 = at_node(m, n.inputs[1]).value.detach().to(at::kDouble).contiguous();
    lin.dim = n.info.dims[1] * n.info.dims[2] * n.info.dims[3];
  } else {
    at::Tensor w = seen_weight(m, node);
    if (!w.defined()) return false;
    const int64_t in = p.channels * p.h * p.w;
    if (w.size(0) != in) return false;
    at::Tensor index = at::arange(in, at::kDouble)
                           .view(at_node(m, p.cut).info.dims.size() == 4
                                     ? std::vector<int64_t>{1, p.channels, p.h, p.w}
                                     : std::vector<int64_t>{1, p.channels});
    lin.feature_row = inverse_through(m, path, index, in);
    if (lin.feature_row.empty()) return false;
    lin.weight64 = w.detach().to(at::kDouble).contiguous();
    lin.dim = w.size(1);
  }
  const int relu = relu_after(m, node);
  lin.relu = relu >= 0;
  lin.given = lin.relu ? relu : node;
  if (node == m.logits_index() && !lin.conv && !lin.relu)
    p.direct = static_cast<int>(p.linear.size());
  p.linear.push_back(std::move(lin));
  return true;
}

// Finds the Gemm / MatMul that linear layer k's activated output alone feeds.
void add_second(const Model& m, Plan& p, size_t k) {
  Linear& lin = p.linear[k];
  if (static_cast<int>(k) == p.direct) return;
  std::vector<int> path;
  const int s = follow_layout(m, lin.given, path);
  if (s < 0 || s == m.output_index() || s == m.logits_index()) return;
  at::Tensor w = seen_weight(m, s);
  if (!w.defined() || w.size(0) != lin.dim) return;
  // Entry e of z (channels-last for a Conv) pushed through the path to the rows.
  at::Tensor index;
  if (lin.conv) {
    const int64_t f = lin.out_dims[1], oh = lin.out_dims[2], ow = lin.out_dims[3];
    index = at::arange(lin.dim, at::kDouble).view({1, oh, ow, f}).permute({0, 3, 1, 2});
  } else {
    index = at::arange(lin.dim, at::kDouble).view({1, lin.dim});
  }
  std::vector<int64_t> row_of_entry = inverse_through(m, path, index, lin.dim);
  if (row_of_entry.empty()) return;
  Second sec;
  sec.node = s;
  sec.from = k;
  const int relu = relu_after(m, s);
  sec.relu = relu >= 0;
  sec.given = sec.relu ? relu : s;
  sec.kernel = w.detach().index_select(0, at::tensor(row_of_entry, at::kLong)).contiguous();
  sec.units = w.size(1);
  lin.second = static_cast<int>(p.second.size());
  p.second.push_back(std::move(sec));
}

}  // namespace

Plan make_plan(const Model& m, const ChannelUnit& target) {
  at::NoGradGuard no_grad;
  Plan p;
  p.target = target;
  const Node& tn = at_node(m, target.node);
  const std::string who = "layer '" + tn.name + "'";
  if (target.kind == ChannelKind::kOutput) {
    // The Conv and the channel-wise ops after it (BatchNormalization, the activation,
    // pooling): a pruned channel stays constant through them.
    int node = target.node;
    for (;;) {
      auto cons = m.consumers(node);
      if (cons.size() != 1 || cons[0] == m.output_index()) break;
      const Node& next = at_node(m, cons[0]);
      if (!next.op->channelwise() || next.inputs[0] != node || !rest_fixed(m, next)) break;
      node = cons[0];
    }
    p.cut = node;
    if (p.cut == m.output_index() || m.consumers(p.cut).empty()) {
      fail<InvalidArgument>("", who, "a layer with layers above it", "the model's output");
    }
  } else {
    p.cut = tn.inputs[0];
    if (m.consumers(p.cut) != std::vector<int>{target.node}) {
      fail<InvalidArgument>("", who, "a layer whose input feeds it alone",
                            "an input that other layers read too");
    }
  }
  const Dims& cd = at_node(m, p.cut).info.dims;
  if ((cd.size() != 4 && cd.size() != 2) || cd[1] != target.channels) {
    fail<InvalidArgument>("", who, "channels along axis 1 of (N, C, H, W) or (N, C)", dims_str(cd));
  }
  p.channels = cd[1];
  if (cd.size() == 4) p.h = cd[2], p.w = cd[3];

  p.v0.assign(static_cast<size_t>(p.channels), 0.0f);
  if (target.kind == ChannelKind::kOutput) {
    // The cut of a model whose every channel is pruned: the Conv gives 0, and the
    // zeroed BatchNormalization parameters are given too.
    Dims d = tn.info.dims;
    d[0] = 1;
    std::map<int, at::Tensor> given{{target.node, at::zeros(d, at::kFloat)}};
    for (const auto& s : target.slices) {
      if (!s.primary) given[s.param] = at::zeros_like(at_node(m, s.param).value);
    }
    at::Tensor v = m.run({}, {p.cut}, given)[0].reshape({1, p.channels, -1}).contiguous();
    for (int64_t c = 0; c < p.channels; ++c)
      p.v0[static_cast<size_t>(c)] = v[0][c][0].item<float>();
  }

  if (target.kind == ChannelKind::kInput) {
    if (!add_linear(m, p, target.node, {})) {
      fail<InvalidArgument>("", who,
                            "a Gemm (transA = 0, alpha = 1) or 2-D MatMul with constant weights",
                            "another layer");
    }
  } else {
    for (int c : m.consumers(p.cut)) {
      std::vector<int> path;
      int node = c;
      const Node& n = at_node(m, c);
      if (n.op->layout_only() && n.inputs[0] == p.cut && rest_fixed(m, n)) {
        path.push_back(c);
        node = follow_layout(m, c, path);
      }
      if (node < 0 || !add_linear(m, p, node, path)) p.give_cut = true;
    }
  }
  for (size_t k = 0; k < p.linear.size(); ++k) add_second(m, p, k);

  // Nodes not above the cut that the upper part still reads (skip connections).
  auto above = downstream_of(m, p.cut);
  std::set<int> above_set(above.begin(), above.end());
  std::set<int> given;
  for (size_t k = 0; k < p.linear.size(); ++k) {
    if (p.linear[k].second < 0 && static_cast<int>(k) != p.direct) given.insert(p.linear[k].given);
  }
  for (const auto& sec : p.second) given.insert(sec.given);
  given.insert(p.cut);  // the plain re-run of near ties starts from the cut
  std::vector<int> todo{m.output_index()};
  std::set<int> seen;
  while (!todo.empty()) {
    int i = todo.back();
    todo.pop_back();
    if (i < 0 || !seen.insert(i).second || given.count(i) || fixed(m, i)) continue;
    if (!above_set.count(i)) {
      p.side.push_back(i);
      continue;
    }
    for (int in : at_node(m, i).inputs) todo.push_back(in);
  }
  std::sort(p.side.begin(), p.side.end());

  // Scores: the logits of the classifier Gemm, from its input.
  const int g = m.logits_index();
  if (p.direct < 0 && at_node(m, g).is_op("Gemm")) {
    at::Tensor kernel = seen_weight(m, g);
    const Node& gn = at_node(m, g);
    const int b = gn.inputs.size() > 2 ? gn.inputs[2] : -1;
    const bool bias_ok = b < 0 || at_node(m, b).info.dims == Dims{m.num_classes()};
    if (kernel.defined() && bias_ok && at_node(m, gn.inputs[0]).info.dims.size() == 2) {
      p.score_gemm = g;
      p.score_node = gn.inputs[0];
      p.score_kernel = kernel.detach().contiguous();
      if (b >= 0) p.score_bias = at_node(m, b).value.detach().contiguous();
      if (p.score_kernel.isfinite().all().item<bool>()) {
        p.spread = class_spread(p.score_kernel);
        p.sparse_scores = p.score_kernel.scalar_type() == at::kFloat &&
                          (!p.score_bias.defined() || (p.score_bias.scalar_type() == at::kFloat &&
                                                       p.score_bias.isfinite().all().item<bool>()));
      }
    }
  }
  return p;
}

ChannelMap channel_map(const Model& m, const Plan& p, const Linear& lin, int64_t c) {
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
  if (!lin.conv) {
    // The weight rows that the positions of channel c meet.
    std::vector<int64_t> rows(lin.feature_row.begin() + c * hw,
                              lin.feature_row.begin() + (c + 1) * hw);
    add_rows(lin.weight64.index_select(0, at::tensor(rows, at::kLong)));
    return map;
  }
  // A convolution: its response to each position of channel c alone (one-hot inputs),
  // a few positions at a time, flattened channels-last like z.
  const Op& conv = *at_node(m, lin.node).op;
  const at::Tensor kernel = lin.weight64.narrow(1, c, 1);
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(lin.dim, 1));
  for (int64_t s0 = 0; s0 < hw; s0 += chunk) {
    const int64_t k = std::min(chunk, hw - s0);
    at::Tensor onehot = at::zeros({k, hw}, at::kDouble);
    for (int64_t j = 0; j < k; ++j) onehot[j][s0 + j] = 1.0;
    at::Tensor y = conv.forward({onehot.view({k, 1, p.h, p.w}), kernel});
    add_rows(y.permute({0, 2, 3, 1}).reshape({k, -1}));
  }
  return map;
}

}  // namespace bdguard::sweep
