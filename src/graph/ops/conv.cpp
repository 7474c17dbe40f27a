// Conv: 2-D convolution with groups, strides, dilations and (asymmetric) padding.
#include "common.h"

namespace bdguard {

using namespace ops;

ValueInfo ConvOp::infer(const std::vector<const ValueInfo*>& in) {
  arity(in, 2, 3);
  const ValueInfo& x = need(in, 0);
  const ValueInfo& w = need(in, 1);
  require_rank(x, 4, "input X");
  require_rank(w, 4, "input W");
  require_float(x, "input X");
  if (w.dtype != x.dtype) op_fail("input W", type_name(x.dtype), type_name(w.dtype));
  const int64_t c = static_dim(x, 1, "input X"), f = static_dim(w, 0, "input W");
  if (group_ < 1 || c % group_ != 0 || f % group_ != 0) {
    op_fail<UnsupportedOp>("attribute group",
                           "a divisor of the input channels " + std::to_string(c) +
                               " and filters " + std::to_string(f),
                           std::to_string(group_));
  }
  if (static_dim(w, 1, "input W") != c / group_) {
    op_fail("input W",
            "(F, " + std::to_string(c / group_) + ", kh, kw) for " + std::to_string(c) +
                " input channels" + (group_ > 1 ? " in " + std::to_string(group_) + " groups" : ""),
            dims_str(w.dims));
  }
  if (w.dims[2] != window_.kh || w.dims[3] != window_.kw) {
    op_fail("input W",
            "a kernel of " + std::to_string(window_.kh) + "x" + std::to_string(window_.kw) +
                " (kernel_shape)",
            dims_str(w.dims));
  }
  if (const ValueInfo* b = maybe(in, 2)) {
    if (b->dims != Dims{f}) op_fail("input B", "(" + std::to_string(f) + ",)", dims_str(b->dims));
  }
  auto [oh, ow] =
      resolve_window(window_, static_dim(x, 2, "input X"), static_dim(x, 3, "input X"), "input X");
  return {{x.dims[0], f, oh, ow}, x.dtype, std::nullopt};
}

at::Tensor ConvOp::forward(const std::vector<at::Tensor>& in) const {
  at::Tensor x = in[0], w = in[1];
  const at::Tensor b = in.size() > 2 ? in[2] : at::Tensor();
  const auto& p = window_.pads;
  std::vector<int64_t> padding{p[0], p[1]};
  if (!symmetric(p)) {
    x = at::constant_pad_nd(x, {p[1], p[3], p[0], p[2]}, 0.0);
    padding = {0, 0};
  }
  if (x.scalar_type() == at::kFloat) {
    // oneDNN's channels-last convolution is 1.5-2x as fast here as its NCHW one, except
    // on wide inputs (256 channels or more) and outputs of at most 16 pixels (the last
    // stage of a CIFAR ResNet: 512 channels, 4x4), where its NCHW (internally blocked)
    // kernels are about 1.7x as fast.
    auto out = [](int64_t in, int64_t k, int64_t pad, int64_t s, int64_t d) {
      return (in + 2 * pad - d * (k - 1) - 1) / s + 1;
    };
    const int64_t pixels = out(x.size(2), window_.kh, padding[0], window_.sh, window_.dh) *
                           out(x.size(3), window_.kw, padding[1], window_.sw, window_.dw);
    const auto format = pixels <= 16 && x.size(1) >= 256 ? at::MemoryFormat::Contiguous
                                                         : at::MemoryFormat::ChannelsLast;
    x = x.contiguous(format);
    w = w.contiguous(format);
  }
  return at::conv2d(x, w, b, {window_.sh, window_.sw}, padding, {window_.dh, window_.dw}, group_);
}

nlohmann::json ConvOp::attributes() const {
  nlohmann::json a = window_json(window_);
  a["group"] = group_;
  return a;
}

}  // namespace bdguard
