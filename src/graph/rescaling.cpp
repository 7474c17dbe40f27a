// Rescaling (Keras 2.6+): y = x * scale + offset, e.g. pixels 0..255 to 0..1 inside the model.
#include "common.h"

namespace bdguard::graph {
namespace {

class Rescaling : public Layer {
 public:
  Shape build(const std::vector<Shape>& in) override {
    require_inputs(*this, in, 1, 0);
    scale_ = get_double(*this, "scale", 1.0);
    offset_ = get_double(*this, "offset", 0.0);
    return in[0];
  }
  at::Tensor forward(const std::vector<at::Tensor>& in) const override {
    at::Tensor y = scale_ == 1.0 ? in[0] : in[0] * scale_;
    return offset_ == 0.0 ? y : y + offset_;
  }
  std::unique_ptr<Layer> clone() const override { return clone_layer(*this); }

 private:
  double scale_ = 1.0, offset_ = 0.0;
};

}  // namespace

std::unique_ptr<Layer> make_rescaling() { return std::make_unique<Rescaling>(); }

}  // namespace bdguard::graph
