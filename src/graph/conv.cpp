// Conv2D and ZeroPadding2D.
#include "common.h"

namespace bdguard {
namespace graph {
namespace {

class ZeroPadding2D : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 3);
    const auto* v = config.is_object() && config.contains("padding") ? &config["padding"] : nullptr;
    int64_t t = 1, b = 1, le = 1, r = 1;
    auto num = [&](const nlohmann::json& x) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > 65536) {
        config_error(*this, "padding", "non-negative integers", v->dump());
      }
      return x.get<int64_t>();
    };
    if (v && v->is_number()) {
      t = b = le = r = num(*v);
    } else if (v && v->is_array() && v->size() == 2 && (*v)[0].is_array()) {
      if ((*v)[0].size() != 2 || !(*v)[1].is_array() || (*v)[1].size() != 2) {
        config_error(*this, "padding", "((top, bottom), (left, right))", v->dump());
      }
      t = num((*v)[0][0]), b = num((*v)[0][1]), le = num((*v)[1][0]), r = num((*v)[1][1]);
    } else if (v && v->is_array() && v->size() == 2) {
      t = b = num((*v)[0]);
      le = r = num((*v)[1]);
    } else if (v) {
      config_error(*this, "padding", "an int, a pair or a pair of pairs", v->dump());
    }
    require_channels_last(*this);
    pad_ = {le, r, t, b};
    return {in[0][0] + t + b, in[0][1] + le + r, in[0][2]};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    return at::constant_pad_nd(in[0], pad_, 0.0);
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }

 private:
  std::vector<int64_t> pad_;
};

}  // namespace

std::unique_ptr<Layer> make_zero_padding2d() { return std::make_unique<ZeroPadding2D>(); }

}  // namespace graph

using namespace graph;

Shape Conv2D::build(const std::vector<Shape>& in) {
  require_inputs(*this, in, 1, 3);
  require_channels_last(*this);
  filters_ = get_int(*this, "filters", -1, 1, 1 << 16);
  if (filters_ < 0) config_error(*this, "filters", "a positive integer", "nothing");
  std::tie(kh_, kw_) = get_pair(*this, "kernel_size", {-1, -1}, 1, 4096);
  if (kh_ < 0) config_error(*this, "kernel_size", "a kernel size", "nothing");
  std::tie(sh_, sw_) = get_pair(*this, "strides", {1, 1}, 1, 4096);
  std::tie(dh_, dw_) = get_pair(*this, "dilation_rate", {1, 1}, 1, 4096);
  groups_ = get_int(*this, "groups", 1, 1, 1 << 16);
  activation_ = parse_activation(get_string(*this, "activation", "linear"), name);
  use_bias_ = get_bool(*this, "use_bias", true);
  in_channels_ = in[0][2];
  if (in_channels_ % groups_ != 0 || filters_ % groups_ != 0) {
    config_error(*this, "groups", "a divisor of the input channels and filters",
                 std::to_string(groups_));
  }
  if ((sh_ > 1 || sw_ > 1) && (dh_ > 1 || dw_ > 1)) {
    config_error(*this, "strides", "strides of 1 when dilation_rate > 1", "both above 1");
  }
  std::string padding = get_string(*this, "padding", "valid");
  Padding1d ph = tf_padding(*this, padding, in[0][0], kh_, sh_, dh_);
  Padding1d pw = tf_padding(*this, padding, in[0][1], kw_, sw_, dw_);
  pad_top_ = ph.before, pad_bottom_ = ph.after, pad_left_ = pw.before, pad_right_ = pw.after;
  return {ph.out, pw.out, filters_};
}

std::vector<WeightSpec> Conv2D::weight_specs() const {
  std::vector<WeightSpec> specs{{"kernel", {kh_, kw_, in_channels_ / groups_, filters_}}};
  if (use_bias_) specs.push_back({"bias", {filters_}});
  return specs;
}

at::Tensor Conv2D::pre_activation(const at::Tensor& x) const {
  at::Tensor padded = x;
  if (pad_top_ || pad_bottom_ || pad_left_ || pad_right_) {
    padded = at::constant_pad_nd(x, {pad_left_, pad_right_, pad_top_, pad_bottom_}, 0.0);
  }
  at::Tensor kernel = weights[0].value.permute({3, 2, 0, 1});  // HWIO -> OIHW
  at::Tensor bias = use_bias_ ? weights[1].value : at::Tensor();
  if (padded.scalar_type() == at::kFloat) {
    // oneDNN's channels-last convolution is about twice as fast here as NCHW.
    padded = padded.contiguous(at::MemoryFormat::ChannelsLast);
    kernel = kernel.contiguous(at::MemoryFormat::ChannelsLast);
  } else {
    kernel = kernel.contiguous();
  }
  return at::conv2d(padded, kernel, bias, at::IntArrayRef{sh_, sw_}, at::IntArrayRef{0, 0},
                    at::IntArrayRef{dh_, dw_}, groups_);
}

at::Tensor Conv2D::input_channel_contribution(const at::Tensor& x_c, int64_t c) const {
  at::Tensor padded = x_c;
  if (pad_top_ || pad_bottom_ || pad_left_ || pad_right_) {
    padded = at::constant_pad_nd(x_c, {pad_left_, pad_right_, pad_top_, pad_bottom_}, 0.0);
  }
  if (groups_ != 1) throw InvalidArgument("channel contribution of a grouped convolution");
  // Kernel slice for input channel c: (kh, kw, 1, filters) -> (filters, 1, kh, kw).
  at::Tensor k = weights[0].value.narrow(2, c, 1).permute({3, 2, 0, 1}).contiguous();
  return at::conv2d(padded, k, at::Tensor(), at::IntArrayRef{sh_, sw_}, at::IntArrayRef{0, 0},
                    at::IntArrayRef{dh_, dw_}, 1);
}

at::Tensor Conv2D::forward(const std::vector<at::Tensor>& in) const {
  at::Tensor y = pre_activation(in[0]);
  // The convolution's output is a fresh tensor that its backward pass does not read:
  // ReLU can overwrite it (saves a pass over the largest tensors of a CNN).
  if (activation_ == Activation::kRelu) return at::relu_(y);
  return apply_activation(activation_, y, 1);
}

std::unique_ptr<Layer> Conv2D::clone() const { return clone_layer(*this); }

}  // namespace bdguard
