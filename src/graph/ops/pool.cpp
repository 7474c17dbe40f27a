// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (2-D).
#include <ATen/Parallel.h>
#include <ATen/native/Pool.h>

#include <algorithm>
#include <limits>

#include "common.h"
#include "loops.h"

namespace bdguard {

using namespace ops;

namespace {

// PyTorch's pooling pads symmetrically by at most half the kernel; other pads are
// written out first (with -inf for max pooling, which never picks them, as ONNX and
// TensorFlow specify).
bool native_pads(const Window2d& w) {
  const auto& p = w.pads;
  return symmetric(p) && p[0] <= w.kh / 2 && p[1] <= w.kw / 2;
}

class PoolOp : public Op {
 public:
  PoolOp(bool max, Window2d w, bool count_include_pad)
      : max_(max), w_(std::move(w)), include_pad_(count_include_pad) {}
  const char* type() const override { return max_ ? "MaxPool" : "AveragePool"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    const ValueInfo& x = need(in, 0);
    require_rank(x, 4, "input X");
    if (!max_) require_float(x, "input X");
    if (!max_ && (w_.dh != 1 || w_.dw != 1)) {
      op_fail<UnsupportedOp>("attribute dilations", "1 for AveragePool", "other values");
    }
    auto [oh, ow] =
        resolve_window(w_, static_dim(x, 2, "input X"), static_dim(x, 3, "input X"), "input X");
    return {{x.dims[0], x.dims[1], oh, ow}, x.dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const at::Tensor& x = in[0];
    const auto& p = w_.pads;
    const std::vector<int64_t> k{w_.kh, w_.kw}, s{w_.sh, w_.sw};
    if (max_ && !at::isFloatingType(x.scalar_type())) {
      // ATen pools floats only; integers up to 2^53 are exact in float64 and back.
      return forward({x.to(at::kDouble)}).to(x.scalar_type());
    }
    if (max_) {
      if (native_pads(w_)) {
        return at::max_pool2d(x, k, s, {p[0], p[1]}, {w_.dh, w_.dw}, w_.ceil_mode);
      }
      at::Tensor padded = at::constant_pad_nd(x, {p[1], p[3], p[0], p[2]},
                                              -std::numeric_limits<double>::infinity());
      return at::max_pool2d(padded, k, s, {0, 0}, {w_.dh, w_.dw}, w_.ceil_mode);
    }
    const bool padded = p[0] || p[1] || p[2] || p[3];
    if (!padded || (native_pads(w_) && !w_.ceil_mode)) {
      return at::avg_pool2d(x, k, s, {p[0], p[1]}, w_.ceil_mode, include_pad_);
    }
    // Sums over the window divided by how many of its positions count: the input's
    // (count_include_pad = 0), or the input's and the pads' (windows that ceil_mode
    // lets run past the pads count only what they cover).
    const std::vector<int64_t> pad4{p[1], p[3], p[0], p[2]};
    at::Tensor sum = at::avg_pool2d(at::constant_pad_nd(x, pad4, 0.0), k, s, {0, 0}, w_.ceil_mode,
                                    true, /*divisor_override=*/1);
    at::Tensor ones = at::ones({1, 1, x.size(2), x.size(3)}, x.options());
    at::Tensor mask = at::constant_pad_nd(ones, pad4, include_pad_ ? 1.0 : 0.0);
    at::Tensor count = at::avg_pool2d(mask, k, s, {0, 0}, w_.ceil_mode, true, 1);
    return sum / count;
  }
  // Max pooling of a float channels-last input with PyTorch's own padding: bdguard's
  // loop (no indices, and the Relu before it applied to each value read when the graph
  // asks): the same maxima as at::max_pool2d, in the same order.
  at::Tensor forward_inference(const std::vector<at::Tensor>& in,
                               const InferenceHints& hints) const override {
    const at::Tensor& x = in[0];
    if (!max_ || x.scalar_type() != at::kFloat || x.dim() != 4 || !native_pads(w_) ||
        !x.is_contiguous(at::MemoryFormat::ChannelsLast) || x.numel() == 0) {
      if (!hints.relu_before) return forward(in);
      return forward({at::relu(x)});
    }
    PoolShape s;
    s.n = x.size(0), s.c = x.size(1), s.h = x.size(2), s.w = x.size(3);
    s.kh = w_.kh, s.kw = w_.kw, s.sh = w_.sh, s.sw = w_.sw;
    s.ph = w_.pads[0], s.pw = w_.pads[1], s.dh = w_.dh, s.dw = w_.dw;
    s.oh = at::native::pooling_output_shape<int64_t>(s.h, s.kh, s.ph, s.sh, s.dh, w_.ceil_mode);
    s.ow = at::native::pooling_output_shape<int64_t>(s.w, s.kw, s.pw, s.sw, s.dw, w_.ceil_mode);
    at::Tensor y = at::empty({s.n, s.c, s.oh, s.ow},
                             x.options().memory_format(at::MemoryFormat::ChannelsLast));
    const float* px = x.data_ptr<float>();
    float* py = y.data_ptr<float>();
    const int64_t row = std::max<int64_t>(1, s.ow * s.c * s.kh * s.kw);
    at::parallel_for(0, s.n * s.oh, std::max<int64_t>(1, 32768 / row),
                     [&](int64_t begin, int64_t end) {
                       max_pool_rows(px, py, s, begin, end, hints.relu_before);
                     });
    return y;
  }
  bool fuses_relu_before() const override { return max_; }
  std::unique_ptr<Op> clone() const override { return std::make_unique<PoolOp>(*this); }
  nlohmann::json attributes() const override {
    nlohmann::json a = window_json(w_);
    a["ceil_mode"] = w_.ceil_mode ? 1 : 0;
    if (!max_) a["count_include_pad"] = include_pad_ ? 1 : 0;
    return a;
  }
  bool channelwise() const override { return true; }

 private:
  bool max_;
  Window2d w_;
  bool include_pad_;
};

class GlobalPoolOp : public Op {
 public:
  GlobalPoolOp(bool max, bool keepdims) : max_(max), keepdims_(keepdims) {}
  const char* type() const override { return max_ ? "GlobalMaxPool" : "GlobalAveragePool"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    const ValueInfo& x = need(in, 0);
    if (x.dims.size() < 3) op_fail("input X", "(N, C, spatial...)", dims_str(x.dims));
    require_float(x, "input X");
    Dims out{x.dims[0], x.dims[1]};
    if (keepdims_) out.resize(x.dims.size(), 1);
    return {out, x.dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const at::Tensor& x = in[0];
    std::vector<int64_t> axes;
    for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
    if (!max_) return x.mean(axes, keepdims_);
    at::Tensor y = x.flatten(2).amax(2, false);
    if (!keepdims_) return y;
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[0] = x.size(0);
    shape[1] = x.size(1);
    return y.view(shape);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<GlobalPoolOp>(*this); }
  bool channelwise() const override { return true; }

 private:
  bool max_, keepdims_;
};

}  // namespace

std::unique_ptr<Op> make_max_pool(Window2d window) {
  return std::make_unique<PoolOp>(true, std::move(window), false);
}
std::unique_ptr<Op> make_average_pool(Window2d window, bool count_include_pad) {
  return std::make_unique<PoolOp>(false, std::move(window), count_include_pad);
}
std::unique_ptr<Op> make_global_pool(bool max, bool keepdims) {
  return std::make_unique<GlobalPoolOp>(max, keepdims);
}

}  // namespace bdguard
