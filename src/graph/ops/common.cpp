#include "common.h"

namespace bdguard {

std::string dims_str(const Dims& d) {
  std::string out = "(";
  for (size_t i = 0; i < d.size(); ++i) out += (i ? ", " : "") + ops::dim_str(d[i]);
  return out + (d.size() == 1 ? ",)" : ")");
}

int64_t per_item_elements(const Dims& d) {
  int64_t n = 1;
  for (size_t i = 1; i < d.size(); ++i) n *= d[i] < 0 ? 1 : d[i];
  return n;
}

bool ValueInfo::batched() const {
  for (int64_t d : dims) {
    if (d == kBatch) return true;
  }
  return false;
}

namespace ops {

void arity(const std::vector<const ValueInfo*>& in, size_t lo, size_t hi) {
  if (in.size() < lo || in.size() > hi) {
    op_fail<UnsupportedOp>(
        "inputs", lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi),
        std::to_string(in.size()));
  }
}

const ValueInfo& need(const std::vector<const ValueInfo*>& in, size_t i) {
  if (i >= in.size() || in[i] == nullptr) {
    op_fail<UnsupportedOp>("input " + std::to_string(i), "a value", "none");
  }
  return *in[i];
}

const ValueInfo* maybe(const std::vector<const ValueInfo*>& in, size_t i) {
  return i < in.size() ? in[i] : nullptr;
}

void require_rank(const ValueInfo& v, size_t rank, const std::string& what) {
  if (v.dims.size() != rank) {
    op_fail(what, "rank " + std::to_string(rank), dims_str(v.dims));
  }
}

std::string type_name(at::ScalarType t) { return c10::toString(t); }

void require_float(const ValueInfo& v, const std::string& what) {
  if (!at::isFloatingType(v.dtype)) op_fail(what, "a float tensor", type_name(v.dtype));
}

int64_t static_dim(const ValueInfo& v, size_t axis, const std::string& what) {
  if (axis >= v.dims.size() || v.dims[axis] < 0) {
    op_fail(what, "a dimension " + std::to_string(axis) + " known before the model runs",
            dims_str(v.dims));
  }
  return v.dims[axis];
}

int64_t norm_axis(int64_t axis, int64_t rank, const std::string& what, bool inclusive) {
  const int64_t hi = inclusive ? rank : rank - 1;
  if (axis < -rank || axis > hi) {
    op_fail<UnsupportedOp>(what,
                           "an axis in [" + std::to_string(-rank) + ", " + std::to_string(hi) + "]",
                           std::to_string(axis));
  }
  return axis < 0 ? axis + rank : axis;
}

Dims broadcast(const Dims& a, const Dims& b, const std::string& what) {
  const size_t rank = std::max(a.size(), b.size());
  Dims out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t x = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t y = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (x == y || y == 1) {
      out[i] = x;
    } else if (x == 1) {
      out[i] = y;
    } else {
      op_fail(what, "shapes that broadcast", dims_str(a) + " and " + dims_str(b));
    }
  }
  return out;
}

const std::vector<int64_t>& known_ints(const ValueInfo& v, const std::string& what) {
  if (!v.known) {
    op_fail<UnsupportedOp>(what, "a constant known when the model is read",
                           "a value computed at run time (or a constant holding -2^63)");
  }
  return *v.known;
}

int64_t static_numel(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) {
    if (x < 0) return -1;
    if (x != 0 && n > (int64_t{1} << 62) / x) return -1;
    n *= x;
  }
  return n;
}

std::string dim_str(int64_t d) { return d == kBatch ? "N" : std::to_string(d); }

Axis1d window_axis(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t before,
                   int64_t after, AutoPad auto_pad, bool ceil_mode, const std::string& what) {
  const int64_t eff = (kernel - 1) * dilation + 1;
  Axis1d a;
  if (auto_pad == AutoPad::kSameUpper || auto_pad == AutoPad::kSameLower) {
    a.out = (in + stride - 1) / stride;
    const int64_t total = std::max<int64_t>((a.out - 1) * stride + eff - in, 0);
    a.before = auto_pad == AutoPad::kSameUpper ? total / 2 : total - total / 2;
    a.after = total - a.before;
    return a;
  }
  if (auto_pad == AutoPad::kValid) before = after = 0;
  a.before = before;
  a.after = after;
  const int64_t span = in + before + after - eff;
  if (span < 0) {
    op_fail(what, "an input of at least " + std::to_string(eff - before - after) + " pixels",
            std::to_string(in));
  }
  a.out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  // As PyTorch: the last window must start inside the input or its leading padding.
  if (ceil_mode && (a.out - 1) * stride >= in + before) --a.out;
  return a;
}

std::pair<int64_t, int64_t> resolve_window(Window2d& w, int64_t h, int64_t wd,
                                           const std::string& what) {
  if (w.pads.size() != 4)
    op_fail<UnsupportedOp>(what + " pads", "4 values", std::to_string(w.pads.size()));
  Axis1d y = window_axis(h, w.kh, w.sh, w.dh, w.pads[0], w.pads[2], w.auto_pad, w.ceil_mode, what);
  Axis1d x = window_axis(wd, w.kw, w.sw, w.dw, w.pads[1], w.pads[3], w.auto_pad, w.ceil_mode, what);
  w.pads = {y.before, x.before, y.after, x.after};
  w.auto_pad = AutoPad::kNotSet;
  return {y.out, x.out};
}

bool symmetric(const std::vector<int64_t>& p) { return p[0] == p[2] && p[1] == p[3]; }

nlohmann::json window_json(const Window2d& w) {
  return {{"kernel_shape", {w.kh, w.kw}},
          {"strides", {w.sh, w.sw}},
          {"dilations", {w.dh, w.dw}},
          {"pads", w.pads}};
}

}  // namespace ops
}  // namespace bdguard
