// Ops that move values: Flatten, Reshape, Transpose, Concat, Identity / Dropout,
// Squeeze / Unsqueeze, Pad.
#include "common.h"

namespace bdguard {

using namespace ops;

namespace {

// The product of dims [begin, end), or kBatch when exactly one of them is the batch
// size and the others are 1 (the only products the graph can name).
int64_t product(const Dims& d, size_t begin, size_t end, const std::string& what) {
  int64_t n = 1;
  int batch = 0;
  for (size_t i = begin; i < end; ++i) {
    if (d[i] == kBatch) {
      ++batch;
    } else {
      n *= d[i];
    }
  }
  if (batch == 0) return n;
  if (batch == 1 && n == 1) return kBatch;
  op_fail(what, "a shape that keeps the batch dimension apart (export with a dynamic batch axis)",
          dims_str(d));
}

class FlattenOp : public Op {
 public:
  explicit FlattenOp(int64_t axis) : axis_(axis) {}
  const char* type() const override { return "Flatten"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    const ValueInfo& x = need(in, 0);
    const auto rank = static_cast<int64_t>(x.dims.size());
    axis_ = norm_axis(axis_, rank, "attribute axis", /*inclusive=*/true);
    const auto a = static_cast<size_t>(axis_);
    return {{product(x.dims, 0, a, "input"), product(x.dims, a, x.dims.size(), "input")},
            x.dtype,
            x.known};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const at::Tensor& x = in[0];
    int64_t outer = 1;
    for (int64_t d = 0; d < axis_; ++d) outer *= x.size(d);
    return x.reshape({outer, outer == 0 ? 0 : x.numel() / outer});
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<FlattenOp>(*this); }
  nlohmann::json attributes() const override { return {{"axis", axis_}}; }
  bool layout_only() const override { return true; }

 private:
  int64_t axis_;
};

// The output dims of Reshape(x, shape) (ONNX: 0 copies the input's dim unless
// allowzero, -1 is inferred; kBatchValue in a known shape is the batch size).
Dims reshape_dims(const Dims& in, const std::vector<int64_t>& shape, bool allowzero,
                  const std::string& what) {
  Dims out(shape.size());
  int64_t infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t s = shape[i];
    if (s == kBatchValue) {
      out[i] = kBatch;
    } else if (s == -1) {
      if (infer_at >= 0) op_fail(what, "at most one -1", "two");
      infer_at = static_cast<int64_t>(i);
    } else if (s == 0 && !allowzero) {
      if (i >= in.size())
        op_fail(what, "a 0 only where the input has a dimension", std::to_string(i));
      out[i] = in[i];
    } else if (s < 0) {
      op_fail(what, "dimensions >= -1", std::to_string(s));
    } else {
      out[i] = s;
    }
  }
  // Batch sizes and the product of the known dims, on each side (`text` names the side
  // in errors: the output's dim at `skip` is not known yet).
  auto split = [&](const Dims& d, int64_t skip, int64_t& n, const std::string& text) {
    int batch = 0;
    Dims known;
    for (size_t i = 0; i < d.size(); ++i) {
      if (static_cast<int64_t>(i) == skip) continue;
      if (d[i] == kBatch) {
        ++batch;
      } else {
        known.push_back(d[i]);
      }
    }
    n = static_numel(known);
    if (n < 0) op_fail(what, "a shape of at most 2^62 elements", text);
    return batch;
  };
  int64_t ni = 0, no = 0;
  const int bi = split(in, -1, ni, dims_str(in));
  const int bo = split(out, infer_at, no, nlohmann::json(shape).dump());
  const std::string mixes =
      "a shape that keeps the batch dimension apart (export with a dynamic batch axis)";
  if (infer_at < 0) {
    if (bi != bo) op_fail(what, mixes, dims_str(in) + " to " + dims_str(out));
    if (ni != no)
      op_fail(what, "a shape with as many elements as the input " + dims_str(in), dims_str(out));
    return out;
  }
  if (no == 0 || ni % no != 0) {
    op_fail(what, "a shape with as many elements as the input " + dims_str(in),
            nlohmann::json(shape).dump());
  }
  const int64_t q = ni / no;
  if (bi == bo) {
    out[static_cast<size_t>(infer_at)] = q;
  } else if (bi == bo + 1 && q == 1) {
    out[static_cast<size_t>(infer_at)] = kBatch;
  } else {
    op_fail(what, mixes, dims_str(in) + " to " + nlohmann::json(shape).dump());
  }
  return out;
}

class ReshapeOp : public Op {
 public:
  explicit ReshapeOp(bool allowzero) : allowzero_(allowzero) {}
  const char* type() const override { return "Reshape"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 2, 2);
    const ValueInfo& x = need(in, 0);
    const ValueInfo& s = need(in, 1);
    if (s.dtype != at::kLong || s.dims.size() != 1) {
      op_fail("input shape", "a 1-D int64 tensor", dims_str(s.dims) + " " + type_name(s.dtype));
    }
    const auto& shape = known_ints(s, "input shape");
    return {reshape_dims(x.dims, shape, allowzero_, "input shape"), x.dtype, x.known};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    at::Tensor s = in[1].to(at::kLong).contiguous();
    std::vector<int64_t> shape(s.data_ptr<int64_t>(), s.data_ptr<int64_t>() + s.numel());
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && !allowzero_) {
        if (static_cast<int64_t>(i) >= in[0].dim()) {
          throw ShapeMismatch("input shape: expected a 0 only where the input has a dimension");
        }
        shape[i] = in[0].size(static_cast<int64_t>(i));
      }
    }
    return in[0].reshape(shape);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<ReshapeOp>(*this); }
  nlohmann::json attributes() const override { return {{"allowzero", allowzero_ ? 1 : 0}}; }
  bool layout_only() const override { return true; }

 private:
  bool allowzero_;
};

class TransposeOp : public Op {
 public:
  explicit TransposeOp(std::vector<int64_t> perm) : perm_(std::move(perm)) {}
  const char* type() const override { return "Transpose"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    const ValueInfo& x = need(in, 0);
    const auto rank = x.dims.size();
    if (perm_.empty()) {
      for (size_t i = 0; i < rank; ++i) perm_.push_back(static_cast<int64_t>(rank - 1 - i));
    }
    std::vector<char> seen(rank, 0);
    if (perm_.size() != rank)
      op_fail<UnsupportedOp>("attribute perm", std::to_string(rank) + " axes",
                             std::to_string(perm_.size()));
    Dims out;
    for (int64_t p : perm_) {
      if (p < 0 || p >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(p)]) {
        op_fail<UnsupportedOp>("attribute perm", "a permutation of the axes",
                               nlohmann::json(perm_).dump());
      }
      seen[static_cast<size_t>(p)] = 1;
      out.push_back(x.dims[static_cast<size_t>(p)]);
    }
    return {out, x.dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    return in[0].permute(perm_);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<TransposeOp>(*this); }
  nlohmann::json attributes() const override { return {{"perm", perm_}}; }
  bool layout_only() const override { return true; }
  const std::vector<int64_t>& perm() const { return perm_; }

 private:
  std::vector<int64_t> perm_;
};

class ConcatOp : public Op {
 public:
  explicit ConcatOp(int64_t axis) : axis_(axis) {}
  const char* type() const override { return "Concat"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1 << 16);
    const ValueInfo& first = need(in, 0);
    const auto rank = static_cast<int64_t>(first.dims.size());
    axis_ = norm_axis(axis_, rank, "attribute axis");
    const auto a = static_cast<size_t>(axis_);
    Dims out = first.dims;
    out[a] = 0;
    std::vector<int64_t> known;
    bool all_known = first.dtype == at::kLong && rank == 1;
    for (size_t i = 0; i < in.size(); ++i) {
      const ValueInfo& v = need(in, i);
      if (v.dtype != first.dtype)
        op_fail("input " + std::to_string(i), type_name(first.dtype), type_name(v.dtype));
      bool ok = v.dims.size() == first.dims.size();
      for (size_t d = 0; ok && d < v.dims.size(); ++d) ok = d == a || v.dims[d] == first.dims[d];
      if (!ok)
        op_fail("input " + std::to_string(i),
                "a shape matching " + dims_str(first.dims) + " off the axis", dims_str(v.dims));
      if (v.dims[a] < 0)
        op_fail("input " + std::to_string(i), "a known size along the axis", dims_str(v.dims));
      out[a] += v.dims[a];
      if (all_known && v.known) {
        known.insert(known.end(), v.known->begin(), v.known->end());
      } else {
        all_known = false;
      }
    }
    ValueInfo r{out, first.dtype, std::nullopt};
    if (all_known) r.known = known;
    return r;
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    return at::cat(in, axis_);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<ConcatOp>(*this); }
  nlohmann::json attributes() const override { return {{"axis", axis_}}; }

 private:
  int64_t axis_;
};

class IdentityOp : public Op {
 public:
  explicit IdentityOp(const char* type) : type_(type) {}
  const char* type() const override { return type_; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 3);  // Dropout: data, ratio?, training_mode?
    return need(in, 0);
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override { return in[0]; }
  std::unique_ptr<Op> clone() const override { return std::make_unique<IdentityOp>(*this); }
  bool channelwise() const override { return true; }
  bool layout_only() const override { return true; }

 private:
  const char* type_;
};

class SqueezeOp : public Op {
 public:
  SqueezeOp(std::vector<int64_t> axes, bool from_input, bool unsqueeze)
      : axes_(std::move(axes)), from_input_(from_input), unsqueeze_(unsqueeze) {}
  const char* type() const override { return unsqueeze_ ? "Unsqueeze" : "Squeeze"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 2);
    const ValueInfo& x = need(in, 0);
    if (from_input_ && maybe(in, 1)) axes_ = known_ints(*in[1], "input axes");
    if (unsqueeze_ && axes_.empty()) op_fail<UnsupportedOp>("axes", "at least one axis", "none");
    const auto rank = static_cast<int64_t>(x.dims.size());
    const int64_t out_rank = unsqueeze_ ? rank + static_cast<int64_t>(axes_.size()) : rank;
    std::vector<char> mark(static_cast<size_t>(out_rank), 0);
    for (int64_t& a : axes_) {
      a = norm_axis(a, out_rank, "axes");
      if (mark[static_cast<size_t>(a)])
        op_fail<UnsupportedOp>("axes", "distinct axes", "a repeated axis");
      mark[static_cast<size_t>(a)] = 1;
    }
    Dims out;
    if (unsqueeze_) {
      size_t j = 0;
      for (int64_t i = 0; i < out_rank; ++i)
        out.push_back(mark[static_cast<size_t>(i)] ? 1 : x.dims[j++]);
    } else {
      for (int64_t i = 0; i < rank; ++i) {
        const int64_t d = x.dims[static_cast<size_t>(i)];
        const bool listed = mark[static_cast<size_t>(i)] != 0;
        if (listed && d != 1)
          op_fail("axes", "axes of size 1",
                  "axis " + std::to_string(i) + " of " + dims_str(x.dims));
        if (axes_.empty() ? d == 1 : listed) {
          squeezed_.push_back(i);
          continue;
        }
        out.push_back(d);
      }
    }
    return {out, x.dtype, x.known};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    at::Tensor y = in[0];
    if (unsqueeze_) {
      std::vector<int64_t> axes = axes_;
      std::sort(axes.begin(), axes.end());
      for (int64_t a : axes) y = y.unsqueeze(a);
      return y;
    }
    for (auto it = squeezed_.rbegin(); it != squeezed_.rend(); ++it) y = y.squeeze(*it);
    return y;
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<SqueezeOp>(*this); }
  nlohmann::json attributes() const override { return {{"axes", axes_}}; }
  bool layout_only() const override { return true; }

 private:
  std::vector<int64_t> axes_;
  bool from_input_, unsqueeze_;
  std::vector<int64_t> squeezed_;
};

// Pad, mode "constant": pads [x1_begin, x2_begin, ..., x1_end, x2_end, ...].
class PadOp : public Op {
 public:
  PadOp(std::vector<int64_t> pads, double value, bool from_inputs)
      : pads_(std::move(pads)), value_(value), from_inputs_(from_inputs) {}
  const char* type() const override { return "Pad"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, from_inputs_ ? 3 : 1);
    const ValueInfo& x = need(in, 0);
    if (from_inputs_) {
      pads_ = known_ints(need(in, 1), "input pads");
      if (const ValueInfo* v = maybe(in, 2)) {
        if (static_numel(v->dims) != 1)
          op_fail("input constant_value", "a scalar", dims_str(v->dims));
      }
    }
    const size_t rank = x.dims.size();
    if (pads_.size() != 2 * rank)
      op_fail<UnsupportedOp>("pads", std::to_string(2 * rank) + " values",
                             std::to_string(pads_.size()));
    // Pads beyond any dim bdguard accepts (2^20) are refused first, so the sums below
    // cannot overflow.
    constexpr int64_t kMaxPad = int64_t{1} << 20;
    for (int64_t p : pads_) {
      if (p < -kMaxPad || p > kMaxPad) {
        op_fail("pads", "values in [-2^20, 2^20]", nlohmann::json(pads_).dump());
      }
    }
    Dims out = x.dims;
    for (size_t i = 0; i < rank; ++i) {
      const int64_t before = pads_[i], after = pads_[i + rank];
      if (before == 0 && after == 0) continue;
      // Not even a crop and a pad that cancel out: batch items stay where they are.
      if (out[i] < 0)
        op_fail("pads", "no padding of the batch dimension", nlohmann::json(pads_).dump());
      // ATen crops each side (a negative pad) before it pads.
      if (out[i] + std::min<int64_t>(before, 0) + std::min<int64_t>(after, 0) < 0) {
        op_fail("pads", "crops (negative pads) of at most the input's " + dims_str(x.dims),
                nlohmann::json(pads_).dump());
      }
      out[i] += before + after;
      if (out[i] < 0) op_fail("pads", "a non-negative result", dims_str(out));
    }
    return {out, x.dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const size_t rank = static_cast<size_t>(in[0].dim());
    std::vector<int64_t> p;  // ATen: last axis first, (begin, end) pairs
    for (size_t i = rank; i-- > 0;) {
      p.push_back(pads_[i]);
      p.push_back(pads_[i + rank]);
    }
    double value = value_;
    if (from_inputs_ && in.size() > 2 && in[2].defined()) value = in[2].reshape({}).item<double>();
    return at::constant_pad_nd(in[0], p, value);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<PadOp>(*this); }
  nlohmann::json attributes() const override { return {{"mode", "constant"}, {"pads", pads_}}; }

 private:
  std::vector<int64_t> pads_;
  double value_;
  bool from_inputs_;
};

}  // namespace

std::unique_ptr<Op> make_flatten(int64_t axis) { return std::make_unique<FlattenOp>(axis); }
std::unique_ptr<Op> make_reshape(bool allowzero) { return std::make_unique<ReshapeOp>(allowzero); }
std::unique_ptr<Op> make_transpose(std::vector<int64_t> perm) {
  return std::make_unique<TransposeOp>(std::move(perm));
}
std::unique_ptr<Op> make_concat(int64_t axis) { return std::make_unique<ConcatOp>(axis); }
std::unique_ptr<Op> make_identity(const char* type) { return std::make_unique<IdentityOp>(type); }
std::unique_ptr<Op> make_squeeze(std::vector<int64_t> axes, bool from_input, bool unsqueeze) {
  return std::make_unique<SqueezeOp>(std::move(axes), from_input, unsqueeze);
}
std::unique_ptr<Op> make_pad(std::vector<int64_t> pads, double value, bool from_inputs) {
  return std::make_unique<PadOp>(std::move(pads), value, from_inputs);
}

}  // namespace bdguard
