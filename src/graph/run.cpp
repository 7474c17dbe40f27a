// Running the model graph: one pass over the nodes in order, fusing a Relu into its
// neighbour where no gradient is needed, freeing each value after its last reader.
#include <ATen/ATen.h>

#include <algorithm>

#include "bdguard/error.h"
#include "bdguard/model.h"
#include "bdguard/ops.h"
#include "graph/node_errors.h"

namespace bdguard {

using graph::node_label;
using graph::rethrow_for;

namespace {

// Without autograd, a Relu whose input only it reads can be applied in the same pass as
// its neighbour: by the op that produces that input (BatchNormalization: relu_after)
// or by the op that alone reads the Relu (MaxPool: relu_before). Those ops give the
// same bits as the two ops one after the other; the Relu itself is then not run.
struct Fusions {
  std::vector<int> relu_of;    // producer i -> the Relu it applies, or -1
  std::vector<int> relu_into;  // reader c -> the Relu it applies to its input 0, or -1
  std::vector<char> skipped;   // Relu nodes computed by a neighbour
};

// The value an op reads at input slot k: a Relu applied by this op is read through.
int source_of(const std::vector<Node>& nodes, const Fusions& f, size_t i, size_t k) {
  const int in = nodes[i].inputs[k];
  if (k == 0 && !f.relu_into.empty() && f.relu_into[i] >= 0) {
    return nodes[static_cast<size_t>(f.relu_into[i])].inputs[0];
  }
  return in;
}

}  // namespace

std::vector<at::Tensor> Model::run(const at::Tensor& pixels, const std::vector<int>& wanted,
                                   const std::map<int, at::Tensor>& given) const {
  const size_t n = nodes_.size();
  // What must be computed, and how many computed consumers read each value (a value
  // is released after its last reader, unless it is wanted).
  std::vector<char> needed(n, 0);
  std::vector<int> readers(n, 0);
  std::vector<int> sole_reader(n, -1);  // the one computed node that reads it, or -2
  std::vector<int> todo(wanted.begin(), wanted.end());
  while (!todo.empty()) {
    const int i = todo.back();
    todo.pop_back();
    if (i < 0 || static_cast<size_t>(i) >= n)
      throw InvalidArgument("run: no node " + std::to_string(i));
    if (needed[static_cast<size_t>(i)]) continue;
    needed[static_cast<size_t>(i)] = 1;
    if (given.count(i)) continue;
    for (int in : nodes_[static_cast<size_t>(i)].inputs) {
      if (in < 0) continue;
      todo.push_back(in);
    }
  }
  auto computed = [&](size_t i) { return needed[i] && !given.count(static_cast<int>(i)); };
  for (size_t i = 0; i < n; ++i) {
    if (!computed(i)) continue;
    for (int in : nodes_[i].inputs) {
      if (in < 0) continue;
      ++readers[static_cast<size_t>(in)];
      int& r = sole_reader[static_cast<size_t>(in)];
      r = r == -1 || r == static_cast<int>(i) ? static_cast<int>(i) : -2;
    }
  }
  std::vector<char> keep(n, 0);
  for (int w : wanted) keep[static_cast<size_t>(w)] = 1;

  const bool inference = !at::GradMode::is_enabled();
  Fusions f;
  if (inference) {
    f.relu_of.assign(n, -1);
    f.relu_into.assign(n, -1);
    f.skipped.assign(n, 0);
    for (size_t j = 0; j < n; ++j) {
      const Node& r = nodes_[j];
      if (!computed(j) || !r.is_op("Relu") || r.inputs.size() != 1 || r.inputs[0] < 0) continue;
      const auto i = static_cast<size_t>(r.inputs[0]);
      const Node& p = nodes_[i];
      if (computed(i) && p.kind == NodeKind::kOp && p.op->fuses_relu_after() && readers[i] == 1 &&
          !keep[i] && f.relu_of[i] < 0 && f.relu_into[i] < 0) {
        f.relu_of[i] = static_cast<int>(j);
        f.skipped[j] = 1;
        continue;
      }
      const int c = sole_reader[j];
      if (c < 0 || readers[j] != 1 || keep[j]) continue;
      const Node& q = nodes_[static_cast<size_t>(c)];
      if (q.op->fuses_relu_before() && q.inputs[0] == static_cast<int>(j) &&
          f.relu_of[static_cast<size_t>(c)] < 0) {
        f.relu_into[static_cast<size_t>(c)] = static_cast<int>(j);
        f.skipped[j] = 1;
      }
    }
  }

  std::vector<at::Tensor> values(n);
  for (size_t i = 0; i < n; ++i) {
    if (!needed[i]) continue;
    const Node& node = nodes_[i];
    auto g = given.find(static_cast<int>(i));
    if (g != given.end()) {
      values[i] = g->second;
      continue;
    }
    switch (node.kind) {
      case NodeKind::kInput:
        if (!pixels.defined()) throw InvalidArgument("run: the input is needed but not given");
        values[i] = preprocessed(pixels);
        continue;
      case NodeKind::kParam:
      case NodeKind::kConst:
        values[i] = node.value;
        continue;
      case NodeKind::kOp:
        break;
    }
    if (inference && f.skipped[i]) continue;  // a neighbour applies this Relu
    const size_t arity = node.inputs.size();
    std::vector<int> src(arity);
    for (size_t k = 0; k < arity; ++k) src[k] = source_of(nodes_, f, i, k);
    std::vector<at::Tensor> ins;
    ins.reserve(arity);
    InferenceHints hints;
    if (inference) hints.reusable.assign(arity, 0);
    for (size_t k = 0; k < arity; ++k) {
      const int in = src[k];
      if (in < 0) {
        ins.emplace_back();
        continue;
      }
      auto& v = values[static_cast<size_t>(in)];
      // The last reader of a value that is not wanted may take it over: reusable when
      // no other tensor holds it or its storage (not the caller's pixels, a
      // parameter, a given value, a view of a live one).
      if (inference && readers[static_cast<size_t>(in)] == 1 && !keep[static_cast<size_t>(in)] &&
          std::count(src.begin(), src.end(), in) == 1) {
        ins.push_back(std::move(v));
        v = at::Tensor();
        const at::Tensor& t = ins.back();
        hints.reusable[k] =
            t.defined() && t.has_storage() && t.use_count() == 1 && t.storage().use_count() == 1;
      } else {
        ins.push_back(v);
      }
    }
    const int out = inference && f.relu_of[i] >= 0 ? f.relu_of[i] : static_cast<int>(i);
    hints.relu_after = out != static_cast<int>(i);
    hints.relu_before = inference && f.relu_into[i] >= 0;
    try {
      values[static_cast<size_t>(out)] =
          inference ? node.op->forward_inference(ins, hints) : node.op->forward(ins);
    } catch (...) {
      rethrow_for(origin, node_label(node));
    }
    ins.clear();
    for (int in : src) {
      if (in >= 0 && --readers[static_cast<size_t>(in)] == 0 && !keep[static_cast<size_t>(in)]) {
        values[static_cast<size_t>(in)] = at::Tensor();
      }
    }
  }
  std::vector<at::Tensor> out;
  out.reserve(wanted.size());
  for (int w : wanted) out.push_back(values[static_cast<size_t>(w)]);
  return out;
}

at::Tensor Model::forward(const at::Tensor& pixels) const {
  return run(pixels, {output_index()})[0];
}

at::Tensor Model::probabilities(const at::Tensor& pixels) const {
  at::Tensor y = forward(pixels);
  switch (output_kind()) {
    case OutputKind::kProbabilities:
      return y;
    case OutputKind::kLogProbabilities:
      return at::exp(y);
    default:
      return at::softmax(y, -1);
  }
}

at::Tensor predict_labels(const Model& m, const at::Tensor& x, int64_t batch) {
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < x.size(0); s += batch) {
    parts.push_back(m.forward(x.narrow(0, s, std::min(batch, x.size(0) - s))).argmax(1));
  }
  if (parts.empty()) return at::empty({0}, at::kLong);
  return at::cat(parts);
}

}  // namespace bdguard
