// Element-wise activations (Relu, LeakyRelu, Sigmoid, Tanh, Clip, Keras' ReLU layer)
// and Softmax / LogSoftmax.
#include "common.h"

namespace bdguard {

using namespace ops;

namespace {

enum class Unary { kRelu, kSigmoid, kTanh, kLeakyRelu };

class UnaryOp : public Op {
 public:
  UnaryOp(Unary kind, double alpha) : kind_(kind), alpha_(alpha) {}
  const char* type() const override {
    switch (kind_) {
      case Unary::kRelu:
        return "Relu";
      case Unary::kSigmoid:
        return "Sigmoid";
      case Unary::kTanh:
        return "Tanh";
      default:
        return "LeakyRelu";
    }
  }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    const ValueInfo& x = need(in, 0);
    if (kind_ != Unary::kRelu) require_float(x, "input X");
    return {x.dims, x.dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    switch (kind_) {
      case Unary::kRelu:
        return at::relu(in[0]);
      case Unary::kSigmoid:
        return at::sigmoid(in[0]);
      case Unary::kTanh:
        return at::tanh(in[0]);
      default:
        return at::leaky_relu(in[0], alpha_);
    }
  }
  // A Relu overwrites a dead input (at::relu_ gives at::relu's bits).
  at::Tensor forward_inference(const std::vector<at::Tensor>& in,
                               const InferenceHints& hints) const override {
    if (kind_ == Unary::kRelu && hints.may_reuse(0) && at::isFloatingType(in[0].scalar_type()) &&
        in[0].is_non_overlapping_and_dense()) {
      at::Tensor x = in[0];
      return x.relu_();
    }
    return forward(in);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<UnaryOp>(*this); }
  nlohmann::json attributes() const override {
    if (kind_ == Unary::kLeakyRelu) return {{"alpha", alpha_}};
    return nlohmann::json::object();
  }
  bool channelwise() const override { return true; }

 private:
  Unary kind_;
  double alpha_;
};

// Clip(x, min?, max?): the bounds are scalar inputs (constants in every real model).
class ClipOp : public Op {
 public:
  const char* type() const override { return "Clip"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 3);
    const ValueInfo& x = need(in, 0);
    for (size_t i = 1; i < 3; ++i) {
      const ValueInfo* b = maybe(in, i);
      if (b && static_numel(b->dims) != 1) {
        op_fail(i == 1 ? "input min" : "input max", "a scalar", dims_str(b->dims));
      }
      if (b && b->dtype != x.dtype)
        op_fail(i == 1 ? "input min" : "input max", type_name(x.dtype), type_name(b->dtype));
    }
    return {x.dims, x.dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    c10::optional<at::Scalar> lo, hi;
    if (in.size() > 1 && in[1].defined()) lo = in[1].reshape({}).item();
    if (in.size() > 2 && in[2].defined()) hi = in[2].reshape({}).item();
    if (!lo && !hi) return in[0];
    return at::clamp(in[0], lo, hi);
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<ClipOp>(*this); }
  bool channelwise() const override { return true; }
};

// Keras 2.x backend.relu: x where x > threshold (strictly) else 0, clipped to
// [0, max_value] when there is one, minus negative_slope * max(threshold - x, 0).
class KerasReluOp : public Op {
 public:
  KerasReluOp(double threshold, double max_value, bool has_max, double slope)
      : threshold_(threshold), max_(max_value), has_max_(has_max), slope_(slope) {}
  const char* type() const override { return "KerasReLU"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    require_float(need(in, 0), "input X");
    return {in[0]->dims, in[0]->dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const at::Tensor& x = in[0];
    at::Tensor y = threshold_ == 0.0 ? at::relu(x) : x * at::gt(x, threshold_).to(x.scalar_type());
    if (has_max_) y = at::clamp(y, 0.0, max_);
    if (slope_ != 0.0) y = y - slope_ * at::relu(threshold_ - x);
    return y;
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<KerasReluOp>(*this); }
  nlohmann::json attributes() const override {
    nlohmann::json a = {{"threshold", threshold_}, {"negative_slope", slope_}};
    if (has_max_) a["max_value"] = max_;
    return a;
  }
  bool channelwise() const override { return true; }

 private:
  double threshold_, max_;
  bool has_max_;
  double slope_;
};

class SoftmaxOp : public Op {
 public:
  SoftmaxOp(int64_t axis, bool coerce, bool log) : axis_(axis), coerce_(coerce), log_(log) {}
  const char* type() const override { return log_ ? "LogSoftmax" : "Softmax"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override {
    arity(in, 1, 1);
    const ValueInfo& x = need(in, 0);
    require_float(x, "input");
    const auto rank = static_cast<int64_t>(x.dims.size());
    if (rank == 0) op_fail("input", "a tensor of rank >= 1", "a scalar");
    axis_ = norm_axis(axis_, rank, "attribute axis");
    if (coerce_) {
      for (int64_t d = axis_ + 1; d < rank; ++d) static_dim(x, static_cast<size_t>(d), "input");
    }
    rank_ = rank;
    return {x.dims, x.dtype, std::nullopt};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const at::Tensor& x = in[0];
    if (!coerce_ || axis_ == rank_ - 1)
      return log_ ? at::log_softmax(x, axis_) : at::softmax(x, axis_);
    at::Tensor flat = x.flatten(axis_, rank_ - 1);
    at::Tensor y = log_ ? at::log_softmax(flat, axis_) : at::softmax(flat, axis_);
    return y.view(x.sizes());
  }
  std::unique_ptr<Op> clone() const override { return std::make_unique<SoftmaxOp>(*this); }
  nlohmann::json attributes() const override { return {{"axis", axis_}}; }
  int64_t axis_over(int64_t rank) const {
    return coerce_ && axis_ != rank - 1 ? -1 : (axis_ < 0 ? axis_ + rank : axis_);
  }

 private:
  int64_t axis_;
  bool coerce_, log_;
  int64_t rank_ = 0;
};

}  // namespace

std::unique_ptr<Op> make_unary(const std::string& type) {
  if (type == "Relu") return std::make_unique<UnaryOp>(Unary::kRelu, 0.0);
  if (type == "Sigmoid") return std::make_unique<UnaryOp>(Unary::kSigmoid, 0.0);
  if (type == "Tanh") return std::make_unique<UnaryOp>(Unary::kTanh, 0.0);
  throw InvalidArgument("make_unary: " + type);
}

std::unique_ptr<Op> make_leaky_relu(double alpha) {
  return std::make_unique<UnaryOp>(Unary::kLeakyRelu, alpha);
}

std::unique_ptr<Op> make_clip() { return std::make_unique<ClipOp>(); }

std::unique_ptr<Op> make_keras_relu(double threshold, double max_value, bool has_max,
                                    double negative_slope) {
  return std::make_unique<KerasReluOp>(threshold, max_value, has_max, negative_slope);
}

std::unique_ptr<Op> make_softmax(int64_t axis, bool coerce_2d, bool log) {
  return std::make_unique<SoftmaxOp>(axis, coerce_2d, log);
}

int64_t softmax_axis(const Op& op, int64_t rank) {
  const auto* s = dynamic_cast<const SoftmaxOp*>(&op);
  return s ? s->axis_over(rank) : -1;
}

}  // namespace bdguard
