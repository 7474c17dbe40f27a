// InputLayer, Activation, ReLU, Dropout, BatchNormalization, Add, Concatenate, and
// the activation functions shared by Conv2D and Dense.
#include "common.h"

namespace bdguard {

Activation parse_activation(const std::string& name, const std::string& layer) {
  if (name == "linear") return Activation::kLinear;
  if (name == "relu") return Activation::kRelu;
  if (name == "softmax") return Activation::kSoftmax;
  if (name == "sigmoid") return Activation::kSigmoid;
  if (name == "tanh") return Activation::kTanh;
  throw UnsupportedLayer(describe("model_config", "layer '" + layer + "' activation",
                                  "linear, relu, softmax, sigmoid or tanh", "'" + name + "'"));
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kRelu:
      return "relu";
    case Activation::kSoftmax:
      return "softmax";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kTanh:
      return "tanh";
    default:
      return "linear";
  }
}

at::Tensor apply_activation(Activation a, const at::Tensor& x, int64_t channel_dim) {
  switch (a) {
    case Activation::kRelu:
      return at::relu(x);
    case Activation::kSoftmax:
      return at::softmax(x, channel_dim);
    case Activation::kSigmoid:
      return at::sigmoid(x);
    case Activation::kTanh:
      return at::tanh(x);
    default:
      return x;
  }
}

float activation_of_zero(Activation a) { return a == Activation::kSigmoid ? 0.5f : 0.0f; }

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

int64_t Layer::param_count() const {
  int64_t n = 0;
  for (const auto& w : weights) n += w.value.numel();
  return n;
}

namespace graph {
namespace {

// InputLayer and Dropout (the identity at inference) pass their input through.
class Identity : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 0);
    return in[0];
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override { return in[0]; }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }
};

class ActivationLayer : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 0);
    activation_ = parse_activation(get_string(*this, "activation", "linear"), name);
    rank_ = static_cast<int64_t>(in[0].size()) + 1;
    return in[0];
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    return apply_activation(activation_, in[0], internal_axis(-1, rank_));
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }
  Activation activation_ = Activation::kLinear;

 private:
  int64_t rank_ = 2;
};

class ReLU : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 0);
    has_max_ = config.is_object() && config.contains("max_value") && !config["max_value"].is_null();
    max_value_ = get_double(*this, "max_value", 0.0);
    slope_ = get_double(*this, "negative_slope", 0.0);
    threshold_ = get_double(*this, "threshold", 0.0);
    if (has_max_ && max_value_ < 0)
      config_error(*this, "max_value", ">= 0", std::to_string(max_value_));
    return in[0];
  }
  // Keras 2.x (backend.relu): x where x > threshold (strictly) else 0, clipped to
  // [0, max_value] when there is one, minus negative_slope * max(threshold - x, 0).
  // So an input equal to a non-zero threshold gives 0, not the threshold.
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const at::Tensor& x = in[0];
    at::Tensor y = threshold_ == 0.0 ? at::relu(x) : x * at::gt(x, threshold_).to(x.scalar_type());
    if (has_max_) y = at::clamp(y, 0.0, max_value_);
    if (slope_ != 0.0) y = y - slope_ * at::relu(threshold_ - x);
    return y;
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }

 private:
  bool has_max_ = false;
  double max_value_ = 0, slope_ = 0, threshold_ = 0;
};

class BatchNormalization : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 0);
    rank_ = static_cast<int64_t>(in[0].size()) + 1;
    int64_t axis = -1;
    if (config.is_object() && config.contains("axis")) {
      const auto& a = config["axis"];
      if (a.is_array() && a.size() == 1 && a[0].is_number_integer()) {
        axis = a[0].get<int64_t>();
      } else if (a.is_number_integer()) {
        axis = a.get<int64_t>();
      } else {
        config_error(*this, "axis", "one integer axis", a.dump());
      }
    }
    if (axis < 0) axis += rank_;
    if (axis != rank_ - 1) config_error(*this, "axis", "the last axis", std::to_string(axis));
    epsilon_ = get_double(*this, "epsilon", 1e-3);
    center_ = get_bool(*this, "center", true);
    scale_ = get_bool(*this, "scale", true);
    channels_ = in[0].back();
    return in[0];
  }
  std::vector<WeightSpec> weight_specs() const override {
    std::vector<WeightSpec> s;
    if (scale_) s.push_back({"gamma", {channels_}});
    if (center_) s.push_back({"beta", {channels_}});
    s.push_back({"moving_mean", {channels_}});
    s.push_back({"moving_variance", {channels_}});
    return s;
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    size_t i = 0;
    at::Tensor gamma = scale_ ? weights[i++].value : at::Tensor();
    at::Tensor beta = center_ ? weights[i++].value : at::Tensor();
    const at::Tensor& mean = weights[i++].value;
    const at::Tensor& var = weights[i].value;
    // Keras (inference): (x - mean) / sqrt(var + eps) * gamma + beta, per channel.
    std::vector<int64_t> view(static_cast<size_t>(in[0].dim()), 1);
    view[static_cast<size_t>(internal_axis(-1, rank_))] = channels_;
    at::Tensor inv = at::rsqrt(var + epsilon_);
    if (gamma.defined()) inv = inv * gamma;
    at::Tensor y = (in[0] - mean.view(view)) * inv.view(view);
    if (beta.defined()) y = y + beta.view(view);
    return y;
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }

 private:
  int64_t rank_ = 2, channels_ = 0;
  double epsilon_ = 1e-3;
  bool center_ = true, scale_ = true;
};

class Add : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    if (in.size() < 2)
      config_error(*this, "inputs", "at least 2 inputs", std::to_string(in.size()));
    for (const auto& s : in) {
      if (s != in[0]) {
        throw ShapeMismatch(describe("model_config", "layer '" + name + "' (Add)",
                                     "inputs of equal shape " + shape_str(in[0]), shape_str(s)));
      }
    }
    return in[0];
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    at::Tensor y = in[0];
    for (size_t i = 1; i < in.size(); ++i) y = y + in[i];
    return y;
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }
};

class Concatenate : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    if (in.size() < 2)
      config_error(*this, "inputs", "at least 2 inputs", std::to_string(in.size()));
    int64_t rank = static_cast<int64_t>(in[0].size()) + 1;
    int64_t axis = get_int(*this, "axis", -1, -rank, rank - 1);
    if (axis < 0) axis += rank;
    if (axis == 0) config_error(*this, "axis", "a non-batch axis", "0");
    axis_ = internal_axis(axis, rank);
    Shape out = in[0];
    out[static_cast<size_t>(axis - 1)] = 0;
    for (const auto& s : in) {
      bool ok = s.size() == in[0].size();
      for (size_t d = 0; ok && d < s.size(); ++d) {
        if (d != static_cast<size_t>(axis - 1) && s[d] != in[0][d]) ok = false;
      }
      if (!ok) {
        throw ShapeMismatch(describe("model_config", "layer '" + name + "' (Concatenate)",
                                     "shapes matching " + shape_str(in[0]) + " off the axis",
                                     shape_str(s)));
      }
      out[static_cast<size_t>(axis - 1)] += s[static_cast<size_t>(axis - 1)];
    }
    return out;
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    return at::cat(in, axis_);
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }

 private:
  int64_t axis_ = 1;
};

}  // namespace

std::unique_ptr<Layer> make_input_layer() { return std::make_unique<Identity>(); }
std::unique_ptr<Layer> make_activation() { return std::make_unique<ActivationLayer>(); }
std::unique_ptr<Layer> make_relu() { return std::make_unique<ReLU>(); }
std::unique_ptr<Layer> make_dropout() { return std::make_unique<Identity>(); }
std::unique_ptr<Layer> make_batch_normalization() { return std::make_unique<BatchNormalization>(); }
std::unique_ptr<Layer> make_add() { return std::make_unique<Add>(); }
std::unique_ptr<Layer> make_concatenate() { return std::make_unique<Concatenate>(); }

}  // namespace graph
}  // namespace bdguard
