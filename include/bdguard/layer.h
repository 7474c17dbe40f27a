// The layer interface and the Keras layers bdguard implements.
//
// Contract of a layer (one instance per Keras layer, registered under its Keras name):
//  - `build(inputs)` is called once, in graph order, with the Keras shapes (batch
//    dimension left out, channels last) of its inputs. It validates its config
//    against them, fixes `weight_specs()`, and returns its own Keras output shape.
//  - `forward(inputs)` maps internal tensors to an internal tensor. Internally an
//    image batch is NCHW (Keras (H, W, C) becomes (N, C, H, W)); every other rank
//    keeps the Keras order. Layers that care about the axis order (Flatten,
//    Concatenate, Dense on images) convert, so results equal Keras' exactly.
//  - `weights` hold the Keras tensors in Keras layout and order (Conv2D kernel HWIO,
//    Dense kernel (in, out)), so they are read and written without conversion and
//    gradients flow to them directly.
// Add a layer class: derive from Layer, implement build/forward (and weight_specs
// if it has weights), and add one line to the registry in src/graph/registry.cpp.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bdguard {

// A Keras shape without the batch dimension, e.g. {55, 47, 3} or {160}.
using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(55, 47, 3)"

struct WeightSpec {
  std::string suffix;  // "kernel", "bias", "gamma", ...
  Shape shape;
};

struct Weight {
  std::string name;  // Keras weight name, e.g. "conv_1/kernel:0"
  at::Tensor value;  // float32, Keras layout
};

// Element-wise activations of Keras' `activation` argument.
enum class Activation { kLinear, kRelu, kSoftmax, kSigmoid, kTanh };
Activation parse_activation(const std::string& name, const std::string& layer);
const char* activation_name(Activation a);
// `channel_dim` is the axis softmax normalizes over.
at::Tensor apply_activation(Activation a, const at::Tensor& x, int64_t channel_dim = 1);
// The activation of a constant zero pre-activation (what a pruned channel outputs).
float activation_of_zero(Activation a);

class Layer {
 public:
  virtual ~Layer() = default;
  virtual Shape build(const std::vector<Shape>& inputs) = 0;
  virtual std::vector<WeightSpec> weight_specs() const { return {}; }
  virtual at::Tensor forward(const std::vector<at::Tensor>& inputs) const = 0;
  virtual std::unique_ptr<Layer> clone() const = 0;

  int64_t param_count() const;

  std::string name;
  std::string class_name;
  nlohmann::json config;
  std::vector<int> inputs;  // indices of the layers feeding this one, in call order
  Shape output_shape;
  std::vector<Weight> weights;
};

// Layers whose channels can be pruned, and the pieces the pruning sweep uses.
class Conv2D : public Layer {
 public:
  Shape build(const std::vector<Shape>& inputs) override;
  std::vector<WeightSpec> weight_specs() const override;
  at::Tensor forward(const std::vector<at::Tensor>& inputs) const override;
  std::unique_ptr<Layer> clone() const override;
  // The convolution without activation; `kernel`/`bias` default to the layer's own.
  at::Tensor pre_activation(const at::Tensor& x) const;
  // Convolution of input channel `c` alone (no bias): this layer's pre-activation is
  // linear in each input channel, and this is channel c's share of it.
  at::Tensor input_channel_contribution(const at::Tensor& x_c, int64_t c) const;
  int64_t filters() const { return filters_; }
  int64_t groups() const { return groups_; }
  Activation activation() const { return activation_; }
  bool use_bias() const { return use_bias_; }

 private:
  int64_t filters_ = 0, in_channels_ = 0, groups_ = 1;
  int64_t kh_ = 1, kw_ = 1, sh_ = 1, sw_ = 1, dh_ = 1, dw_ = 1;
  int64_t pad_top_ = 0, pad_bottom_ = 0, pad_left_ = 0, pad_right_ = 0;
  Activation activation_ = Activation::kLinear;
  bool use_bias_ = true;
};

class Dense : public Layer {
 public:
  Shape build(const std::vector<Shape>& inputs) override;
  std::vector<WeightSpec> weight_specs() const override;
  at::Tensor forward(const std::vector<at::Tensor>& inputs) const override;
  std::unique_ptr<Layer> clone() const override;
  at::Tensor pre_activation(const at::Tensor& x) const;
  int64_t units() const { return units_; }
  Activation activation() const { return activation_; }

 private:
  int64_t units_ = 0, in_features_ = 0;
  Activation activation_ = Activation::kLinear;
  bool use_bias_ = true;
};

// Builds the layer for a Keras class name; throws UnsupportedLayer naming the
// layer and class for anything else (Lambda above all: its config holds code).
std::unique_ptr<Layer> make_layer(const std::string& class_name, const std::string& layer_name);
// The Keras classes the registry knows, for error messages and docs.
std::vector<std::string> supported_layer_classes();

}  // namespace bdguard
