// BatchNormalization: its inference form, and its training form (batch statistics).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "loops.h"

namespace bdguard {

using namespace ops;

ValueInfo BatchNormOp::infer(const std::vector<const ValueInfo*>& in) {
  arity(in, 5, 5);
  const ValueInfo& x = need(in, 0);
  require_float(x, "input X");
  if (x.dims.size() < 2) op_fail("input X", "a tensor of rank >= 2 (N, C, ...)", dims_str(x.dims));
  const int64_t c = static_dim(x, 1, "input X");
  const char* names[] = {"scale", "B", "mean", "var"};
  for (size_t i = 1; i < 5; ++i) {
    const ValueInfo& p = need(in, i);
    if (p.dims != Dims{c}) {
      op_fail(std::string("input ") + names[i - 1], "(" + std::to_string(c) + ",)",
              dims_str(p.dims));
    }
    if (p.dtype != x.dtype)
      op_fail(std::string("input ") + names[i - 1], type_name(x.dtype), type_name(p.dtype));
  }
  if (!(epsilon_ >= 0))
    op_fail<UnsupportedOp>("attribute epsilon", ">= 0", std::to_string(epsilon_));
  if (!(momentum_ >= 0 && momentum_ <= 1))
    op_fail<UnsupportedOp>("attribute momentum", "in [0, 1]", std::to_string(momentum_));
  return {x.dims, x.dtype, std::nullopt};
}

at::Tensor BatchNormOp::forward(const std::vector<at::Tensor>& in) const {
  return training_ ? training_form(in) : inference_form(in);
}

at::Tensor BatchNormOp::inference_form(const std::vector<at::Tensor>& in) const {
  return at::batch_norm(in[0], in[1], in[2], in[3], in[4], /*training=*/false, /*momentum=*/0.0,
                        epsilon_, /*cudnn_enabled=*/false);
}

at::Tensor BatchNormOp::training_form(const std::vector<at::Tensor>& in) const {
  const at::Tensor& x = in[0];
  std::vector<int64_t> axes{0};
  for (int64_t k = 2; k < x.dim(); ++k) axes.push_back(k);
  const int64_t n = x.numel() / std::max<int64_t>(x.size(1), 1);
  {
    at::NoGradGuard no_grad;
    const at::Tensor& mean = in[3];
    const at::Tensor& var = in[4];
    if (!mean.is_contiguous() || !var.is_contiguous() || mean.is_same(var)) {
      op_fail("inputs mean, var", "tensors of their own (training updates them)",
              "shared or expanded tensors");
    }
    auto [batch_var, batch_mean] = at::var_mean(x.detach(), axes, /*unbiased=*/false);
    // Bessel's correction for images (TensorFlow's fused kernel, PyTorch), at least 1.
    if (x.dim() == 4 && n > 1) batch_var.mul_(static_cast<double>(n) / static_cast<double>(n - 1));
    // The k-th batch of an average weighs 1 / k (the first replaces the statistics).
    const double m = averaging_
                         ? static_cast<double>(averaged_) / static_cast<double>(averaged_ + 1)
                         : momentum_;
    if (averaging_) ++averaged_;
    mean.mul_(m).add_(batch_mean.to(mean.scalar_type()), 1 - m);
    var.mul_(m).add_(batch_var.to(var.scalar_type()), 1 - m);
  }
  // The normalization itself, with gradients through the batch's statistics.
  return at::batch_norm(x, in[1], in[2], /*running_mean=*/at::Tensor(),
                        /*running_var=*/at::Tensor(), /*training=*/true, /*momentum=*/0.0, epsilon_,
                        /*cudnn_enabled=*/false);
}

namespace {

// How ATen's float batch-norm kernel rounds on this CPU. It computes, per channel,
// a = (1 / sqrt(var + eps)) * scale and b = B - mean * a, then y = x * a + b; its
// vectorised builds (AVX2, AVX-512) contract both multiply-adds into fused ones, its
// plain build neither. Found once, from at::batch_norm on values where the roundings
// differ; bdguard's loop is used only when one of them matches ATen's exactly.
struct Rounding {
  bool known = false;
  bool fused_b = false, fused_y = false;
};

Rounding aten_rounding() {
  static const Rounding r = [] {
    at::NoGradGuard no_grad;
    const float e = 1.0f + std::ldexp(1.0f, -12);  // e * e is not a float
    // Channel 0: var 1 and eps 0 make a = e, mean 0 makes b = -1: y = e * e - 1.
    // Channel 1: x = 0 gives y = b = 1 - e * e. 17 values: vector loop and tail.
    at::Tensor x = at::zeros({1, 2, 1, 17}, at::kFloat);
    x.select(1, 0).fill_(e);
    const at::Tensor scale = at::full({2}, e, at::kFloat), bias = at::tensor({-1.0f, 1.0f});
    const at::Tensor mean = at::tensor({0.0f, e}), var = at::ones({2}, at::kFloat);
    const at::Tensor y =
        at::batch_norm(x, scale, bias, mean, var, false, 0.0, 0.0, false).contiguous();
    const float* py = y.data_ptr<float>();
    for (const bool fb : {false, true}) {
      for (const bool fy : {false, true}) {
        const float y0 = fy ? std::fma(e, e, -1.0f) : e * e + -1.0f;
        const float b1 = fb ? std::fma(-e, e, 1.0f) : 1.0f - e * e;
        bool all = true;
        for (int k = 0; k < 17; ++k) all = all && py[k] == y0 && py[17 + k] == b1;
        if (all) return Rounding{true, fb, fy};
      }
    }
    return Rounding{};
  }();
  return r;
}

bool plain_float(const at::Tensor& t, int64_t c) {
  return t.defined() && t.scalar_type() == at::kFloat && t.dim() == 1 && t.size(0) == c;
}

}  // namespace

at::Tensor BatchNormOp::forward_inference(const std::vector<at::Tensor>& in,
                                          const InferenceHints& hints) const {
  const at::Tensor& x = in[0];
  const int64_t c = x.dim() >= 2 ? x.size(1) : 0;
  const bool nchw = x.is_contiguous();
  const bool cl = !nchw && x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  bool ours = x.scalar_type() == at::kFloat && (nchw || cl) && x.numel() > 0 && !x.requires_grad();
  for (size_t k = 1; k < 5 && ours; ++k) ours = plain_float(in[k], c);
  const Rounding r = ours ? aten_rounding() : Rounding{};
  if (!r.known) {
    at::Tensor y = inference_form(in);
    return hints.relu_after ? y.relu_() : y;
  }
  // a and b per channel, as ATen derives them.
  std::vector<float> a(static_cast<size_t>(c)), b(static_cast<size_t>(c));
  const at::Tensor scale = in[1].contiguous(), shift = in[2].contiguous();
  const at::Tensor mean = in[3].contiguous(), var = in[4].contiguous();
  const float *ps = scale.data_ptr<float>(), *pb = shift.data_ptr<float>();
  const float *pm = mean.data_ptr<float>(), *pv = var.data_ptr<float>();
  for (int64_t k = 0; k < c; ++k) {
    const float invstd = 1 / std::sqrt(pv[k] + static_cast<float>(epsilon_));
    const float ak = invstd * ps[k];
    a[static_cast<size_t>(k)] = ak;
    b[static_cast<size_t>(k)] = r.fused_b ? std::fma(-pm[k], ak, pb[k]) : pb[k] - pm[k] * ak;
  }
  at::Tensor y = hints.may_reuse(0) ? x : at::empty_like(x);
  const float* px = x.data_ptr<float>();
  float* out = y.data_ptr<float>();
  const bool relu = hints.relu_after;
  if (cl) {
    const int64_t rows = x.numel() / c;
    at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / c), [&](int64_t begin, int64_t end) {
      scale_shift_rows(px, out, a.data(), b.data(), c, begin, end, r.fused_y, relu);
    });
  } else {
    const int64_t planes = x.size(0) * c, inner = x.numel() / planes;
    at::parallel_for(0, planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)),
                     [&](int64_t begin, int64_t end) {
                       scale_shift_planes(px, out, a.data(), b.data(), c, inner, begin, end,
                                          r.fused_y, relu);
                     });
  }
  return y;
}

}  // namespace bdguard
