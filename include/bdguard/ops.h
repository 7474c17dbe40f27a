// The ops of the model graph (op.h) that readers build and defenses look into.
//
// Each op has ONNX's semantics and attribute names; an attribute struct holds what a
// reader parsed and validated. Ops that defenses never need to look into (shape
// arithmetic, Cast, Pad, ...) are made through the factory functions at the end.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bdguard/op.h"

namespace bdguard {

// ONNX auto_pad: explicit `pads`, or padding computed from the input (SAME_UPPER puts
// the extra pixel at the end, as TensorFlow's "same" does; SAME_LOWER at the start).
enum class AutoPad { kNotSet, kValid, kSameUpper, kSameLower };

// The window of a 2-D convolution or pooling. `pads` is ONNX's order: top, left,
// bottom, right. With an auto_pad other than kNotSet, infer() computes `pads`.
struct Window2d {
  int64_t kh = 1, kw = 1;
  int64_t sh = 1, sw = 1;
  int64_t dh = 1, dw = 1;
  std::vector<int64_t> pads = {0, 0, 0, 0};
  AutoPad auto_pad = AutoPad::kNotSet;
  bool ceil_mode = false;  // pooling only
};

// Conv(X, W, B?): X (N, C, H, W), W (F, C / group, kh, kw), B (F).
class ConvOp : public Op {
 public:
  ConvOp(Window2d window, int64_t group) : window_(std::move(window)), group_(group) {}
  const char* type() const override { return "Conv"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override;
  at::Tensor forward(const std::vector<at::Tensor>& in) const override;
  std::unique_ptr<Op> clone() const override { return std::make_unique<ConvOp>(*this); }
  nlohmann::json attributes() const override;
  const Window2d& window() const { return window_; }
  int64_t group() const { return group_; }

 private:
  Window2d window_;
  int64_t group_ = 1;
};

// Gemm(A, B, C?): Y = alpha * A' B' + beta * C, A' = transA ? A^T : A, B' likewise.
// A Linear layer is Gemm(x, W [out, in], b, transB = 1); a Keras Dense Gemm(x,
// kernel [in, out], bias).
struct GemmAttrs {
  double alpha = 1.0, beta = 1.0;
  bool trans_a = false, trans_b = false;
};
class GemmOp : public Op {
 public:
  explicit GemmOp(GemmAttrs a) : a_(a) {}
  const char* type() const override { return "Gemm"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override;
  at::Tensor forward(const std::vector<at::Tensor>& in) const override;
  std::unique_ptr<Op> clone() const override { return std::make_unique<GemmOp>(*this); }
  nlohmann::json attributes() const override;
  const GemmAttrs& attrs() const { return a_; }

 private:
  GemmAttrs a_;
};

// BatchNormalization(X, scale, B, mean, var), inference form: per channel (axis 1)
// (x - mean) / sqrt(var + epsilon) * scale + B. Without autograd, a float input in
// NCHW or channels-last order runs through bdguard's own loop, which computes what
// ATen's kernel computes (x * a + b per channel, a and b as ATen derives them, with
// the same rounding), in place when the input is dead, and with a Relu after it in
// the same pass when the graph asks.
// In training mode (set_training(true), which train_model sets for its duration),
// forward() normalizes with the batch's mean and biased variance per channel, with
// gradients through them, and updates mean and var (inputs 3 and 4, which must be
// tensors of their own) in place, as Keras and ONNX define `momentum`:
// running = running * momentum + batch * (1 - momentum). The variance that enters the
// running one is unbiased (times n / (n - 1), n values per channel) for a 4-D input,
// as TensorFlow's fused kernel (Keras' path for images) and PyTorch compute it, and
// the biased one otherwise, as Keras' unfused path does. forward_inference (no
// autograd: evaluation during training) always uses the running statistics.
class BatchNormOp : public Op {
 public:
  explicit BatchNormOp(double epsilon, double momentum = 0.9)
      : epsilon_(epsilon), momentum_(momentum) {}
  const char* type() const override { return "BatchNormalization"; }
  ValueInfo infer(const std::vector<const ValueInfo*>& in) override;
  at::Tensor forward(const std::vector<at::Tensor>& in) const override;
  at::Tensor forward_inference(const std::vector<at::Tensor>& in,
                               const InferenceHints& hints) const override;
  bool fuses_relu_after() const override { return true; }
  // A copy in inference mode: a model cloned during training does not train.
  std::unique_ptr<Op> clone() const override {
    return std::make_unique<BatchNormOp>(epsilon_, momentum_);
  }
  nlohmann::json attributes() const override {
    return {{"epsilon", epsilon_}, {"momentum", momentum_}};
  }
  bool channelwise() const override { return true; }
  double epsilon() const { return epsilon_; }
  double momentum() const { return momentum_; }
  void set_training(bool on) { training_ = on; }
  bool training() const { return training_; }
  // How training mode updates the running statistics: with `momentum()` (Keras'
  // exponential average), or, after set_averaging(true), to the plain average of the
  // batches seen since (PyTorch's momentum=None: train_model's last pass over the data).
  void set_averaging(bool on) {
    averaging_ = on;
    averaged_ = 0;
  }

 private:
  at::Tensor inference_form(const std::vector<at::Tensor>& in) const;
  at::Tensor training_form(const std::vector<at::Tensor>& in) const;
  double epsilon_;
  double momentum_;
  bool training_ = false;
  bool averaging_ = false;
  mutable int64_t averaged_ = 0;  // batches in the average (set_averaging)
};

// Softmax and LogSoftmax over `axis`; before opset 13 (`coerce_2d`), over all axes from
// `axis` on, as one flattened axis.
std::unique_ptr<Op> make_softmax(int64_t axis, bool coerce_2d, bool log);
// The axis a Softmax / LogSoftmax normalises over, for a value of `rank`, or -1 when
// it normalises over several axes.
int64_t softmax_axis(const Op& op, int64_t rank);

// Element-wise activations: Relu, Sigmoid, Tanh, LeakyRelu(alpha), Clip(min, max)
// (as inputs since opset 11: the bounds come from optional inputs 1 and 2).
std::unique_ptr<Op> make_unary(const std::string& type);  // Relu, Sigmoid, Tanh
std::unique_ptr<Op> make_leaky_relu(double alpha);
std::unique_ptr<Op> make_clip();  // Clip(x, min?, max?)
// Keras' ReLU layer with a threshold, max_value or negative_slope (Keras 2.x
// backend.relu semantics). Type "KerasReLU".
std::unique_ptr<Op> make_keras_relu(double threshold, double max_value, bool has_max,
                                    double negative_slope);

// Pooling.
std::unique_ptr<Op> make_max_pool(Window2d window);
std::unique_ptr<Op> make_average_pool(Window2d window, bool count_include_pad);
// GlobalAveragePool / GlobalMaxPool; keepdims false (Keras' GlobalAveragePooling2D)
// gives (N, C) instead of ONNX's (N, C, 1, 1).
std::unique_ptr<Op> make_global_pool(bool max, bool keepdims = true);

// Add, Sub, Mul, Div with numpy broadcasting; Sum of any number of inputs.
std::unique_ptr<Op> make_binary(const std::string& type);
std::unique_ptr<Op> make_sum();

// Layout: MatMul (numpy semantics), Flatten(axis), Reshape(X, shape; allowzero),
// Transpose(perm), Concat(axis), Identity, Dropout (the identity at inference; its
// ratio and training_mode inputs, if any, are ignored), Pad(X, pads?, value?) (mode
// "constant"; pads and value as attributes before opset 11, else inputs), Squeeze /
// Unsqueeze (axes as an attribute, or from input 1 since opset 13).
std::unique_ptr<Op> make_matmul();
std::unique_ptr<Op> make_flatten(int64_t axis);
std::unique_ptr<Op> make_reshape(bool allowzero);
std::unique_ptr<Op> make_transpose(std::vector<int64_t> perm);
std::unique_ptr<Op> make_concat(int64_t axis);
std::unique_ptr<Op> make_identity(const char* type = "Identity");  // or "Dropout"
std::unique_ptr<Op> make_pad(std::vector<int64_t> pads, double value, bool from_inputs);
std::unique_ptr<Op> make_squeeze(std::vector<int64_t> axes, bool from_input, bool unsqueeze);

// Shape arithmetic: Shape(start, end), Gather(axis), Cast(to).
std::unique_ptr<Op> make_shape(int64_t start, int64_t end, bool has_end);
std::unique_ptr<Op> make_gather(int64_t axis);
std::unique_ptr<Op> make_cast(at::ScalarType to);

}  // namespace bdguard
