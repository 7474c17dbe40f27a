// A Keras functional model: the layer graph built from `model_config`, its weights,
// and the forward pass. Loading and saving Keras HDF5 files lives in keras.h.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/layer.h"

namespace bdguard {

class Model {
 public:
  Model();
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  // A deep copy: weights are cloned, so pruning the copy leaves this model alone.
  Model clone() const;

  // Builds the graph from a Keras `model_config` document ({"class_name":
  // "Functional"|"Model"|"Sequential", "config": ...}); weights are left empty.
  // `origin` names the file in error messages.
  static Model from_config(const nlohmann::json& model_config, const std::string& origin);

  const nlohmann::json& config() const { return config_; }
  size_t size() const { return layers_.size(); }
  Layer& layer(size_t i) { return *layers_[i]; }
  const Layer& layer(size_t i) const { return *layers_[i]; }
  // Index of the layer called `name`, or -1.
  int find(const std::string& name) const;
  // Layers that take layer i's output as an input.
  std::vector<int> consumers(int i) const;
  int input_index() const { return input_; }
  int output_index() const { return output_; }

  const Shape& input_shape() const { return layers_[static_cast<size_t>(input_)]->output_shape; }
  const Shape& output_shape() const { return layers_[static_cast<size_t>(output_)]->output_shape; }
  // Number of classes: the size of the output vector.
  int64_t num_classes() const;

  // Pixels are multiplied by this before the first layer (1 for the lab's models).
  double input_scale = 1.0;
  // Where the model was read from (empty for a model built in memory), and whether that
  // file holds weights only (its architecture then came from elsewhere).
  std::string source_path;
  bool weights_only = false;

  // Output of the model (softmax probabilities for a classifier) for an NCHW batch of
  // raw pixels.
  at::Tensor forward(const at::Tensor& x) const;
  // Runs the graph and returns the outputs of the layers in `wanted`. Layers in `given`
  // are not computed: their values are taken from the map (the input may then be undefined).
  std::vector<at::Tensor> run(const at::Tensor& x, const std::vector<int>& wanted,
                              const std::map<int, at::Tensor>& given = {}) const;

  // All weights of all layers, in layer order (e.g. for an optimizer).
  std::vector<at::Tensor> parameters() const;

 private:
  nlohmann::json config_;
  std::vector<std::unique_ptr<Layer>> layers_;  // topological order
  int input_ = -1, output_ = -1;
};

// Labels (argmax of the output) of an NCHW batch, run in chunks of `batch` images.
at::Tensor predict_labels(const Model& m, const at::Tensor& x, int64_t batch = 256);

}  // namespace bdguard
