// MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D.
#include <limits>

#include "common.h"

namespace bdguard::graph {
namespace {

class Pooling2D : public Layer {
 public:
  explicit Pooling2D(bool max) : max_(max) {}
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 3);
    require_channels_last(*this);
    std::tie(kh_, kw_) = get_pair(*this, "pool_size", {2, 2}, 1, 4096);
    std::tie(sh_, sw_) = get_pair(*this, "strides", {kh_, kw_}, 1, 4096);
    std::string padding = get_string(*this, "padding", "valid");
    Padding1d ph = tf_padding(*this, padding, in[0][0], kh_, sh_, 1);
    Padding1d pw = tf_padding(*this, padding, in[0][1], kw_, sw_, 1);
    pad_ = {pw.before, pw.after, ph.before, ph.after};
    padded_ = ph.before || ph.after || pw.before || pw.after;
    return {ph.out, pw.out, in[0][2]};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    const at::Tensor& x = in[0];
    if (max_) {
      // TensorFlow never picks a padded position: pad with -inf.
      at::Tensor p =
          padded_ ? at::constant_pad_nd(x, pad_, -std::numeric_limits<double>::infinity()) : x;
      return at::max_pool2d(p, {kh_, kw_}, {sh_, sw_});
    }
    if (!padded_) return at::avg_pool2d(x, {kh_, kw_}, {sh_, sw_});
    // TensorFlow averages over the valid positions only.
    at::Tensor sum = at::avg_pool2d(at::constant_pad_nd(x, pad_, 0.0), {kh_, kw_}, {sh_, sw_});
    at::Tensor ones = at::ones({1, 1, x.size(2), x.size(3)}, x.options());
    at::Tensor count = at::avg_pool2d(at::constant_pad_nd(ones, pad_, 0.0), {kh_, kw_}, {sh_, sw_});
    return sum / count;
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }

 private:
  bool max_;
  bool padded_ = false;
  int64_t kh_ = 2, kw_ = 2, sh_ = 2, sw_ = 2;
  std::vector<int64_t> pad_;
};

class GlobalAveragePooling2D : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 3);
    require_channels_last(*this);
    keepdims_ = get_bool(*this, "keepdims", false);
    if (keepdims_) return {1, 1, in[0][2]};
    return {in[0][2]};
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    return in[0].mean({2, 3}, /*keepdim=*/keepdims_);
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }

 private:
  bool keepdims_ = false;
};

}  // namespace

std::unique_ptr<Layer> make_max_pooling2d() { return std::make_unique<Pooling2D>(true); }
std::unique_ptr<Layer> make_average_pooling2d() { return std::make_unique<Pooling2D>(false); }
std::unique_ptr<Layer> make_global_average_pooling2d() {
  return std::make_unique<GlobalAveragePooling2D>();
}

}  // namespace bdguard::graph
