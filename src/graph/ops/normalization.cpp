// BatchNormalization in its inference form.
#include "common.h"

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
      op_fail(std::string("input ") + names[i - 1], "(" + std::to_string(c) + ",)", dims_str(p.dims));
    }
    if (p.dtype != x.dtype) op_fail(std::string("input ") + names[i - 1], type_name(x.dtype), type_name(p.dtype));
  }
  if (!(epsilon_ >= 0)) op_fail<UnsupportedOp>("attribute epsilon", ">= 0", std::to_string(epsilon_));
  return {x.dims, x.dtype, std::nullopt};
}

at::Tensor BatchNormOp::forward(const std::vector<at::Tensor>& in) const {
  return at::batch_norm(in[0], in[1], in[2], in[3], in[4], /*training=*/false, /*momentum=*/0.0,
                        epsilon_, /*cudnn_enabled=*/false);
}

}  // namespace bdguard
