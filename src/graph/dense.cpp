// Dense and Flatten.
#include "common.h"

namespace bdguard {
namespace graph {
namespace {

class Flatten : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 0);
    require_channels_last(*this);
    int64_t n = 1;
    for (int64_t d : in[0]) n *= d;
    rank_ = static_cast<int64_t>(in[0].size()) + 1;
    return {n};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    // Keras flattens channels-last: (H, W, C) order, whatever the internal layout.
    at::Tensor x = rank_ == 4 ? to_nhwc(in[0]) : in[0];
    return x.reshape({x.size(0), -1});
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }

 private:
  int64_t rank_ = 2;
};

}  // namespace

std::unique_ptr<Layer> make_flatten() { return std::make_unique<Flatten>(); }

}  // namespace graph

using namespace graph;

Shape Dense::build(const std::vector<Shape>& in) {
  require_inputs(*this, in, 1, 0);
  if (in[0].empty()) config_error(*this, "input", "a tensor of rank >= 1", "a scalar");
  units_ = get_int(*this, "units", -1, 1, 1 << 24);
  if (units_ < 0) config_error(*this, "units", "a positive integer", "nothing");
  activation_ = parse_activation(get_string(*this, "activation", "linear"), name);
  use_bias_ = get_bool(*this, "use_bias", true);
  in_features_ = in[0].back();
  Shape out = in[0];
  out.back() = units_;
  return out;
}

std::vector<WeightSpec> Dense::weight_specs() const {
  std::vector<WeightSpec> specs{{"kernel", {in_features_, units_}}};
  if (use_bias_) specs.push_back({"bias", {units_}});
  return specs;
}

at::Tensor Dense::pre_activation(const at::Tensor& x) const {
  // Keras applies Dense to the last axis; an internal image batch has channels at axis 1.
  bool image = x.dim() == 4;
  at::Tensor in = image ? to_nhwc(x) : x;
  at::Tensor y;
  if (in.dim() == 2) {
    y = use_bias_ ? at::addmm(weights[1].value, in, weights[0].value)
                  : at::mm(in, weights[0].value);
  } else {
    y = at::matmul(in, weights[0].value);
    if (use_bias_) y = y + weights[1].value;
  }
  return image ? to_nchw(y) : y;
}

at::Tensor Dense::forward(const std::vector<at::Tensor>& in) const {
  int64_t channel_dim = in[0].dim() == 4 ? 1 : in[0].dim() - 1;
  return apply_activation(activation_, pre_activation(in[0]), channel_dim);
}

std::unique_ptr<Layer> Dense::clone() const { return clone_layer(*this); }

}  // namespace bdguard
