// The model graph: what every defense works on, whatever file the model came from.
//
// A Model is a list of nodes in topological order. Each node produces one value: the
// model's input (raw pixels after the Preprocess step), a parameter (a weight tensor
// the model trains), a constant (an int64 shape, a Constant node's tensor), or the
// output of an op (op.h) applied to earlier nodes. Readers (keras.h, onnx.h) build it;
// writers save it back into the file it came from with only the changed tensors
// replaced. Images are NCHW, weights in PyTorch's layout (Conv OIHW).
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/op.h"

namespace bdguard {

// The image shape of a batch item: (C, H, W), or (F) for a model on vectors.
using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(3, 55, 47)"

enum class NodeKind { kInput, kParam, kConst, kOp };

struct Node {
  NodeKind kind = NodeKind::kOp;
  std::string name;  // unique in the graph
  std::unique_ptr<Op> op;
  std::vector<int> inputs;  // the nodes an op reads, in its order; -1: an absent optional input
  ValueInfo info;           // the node's output
  at::Tensor value;         // parameters and constants
  bool trainable = false;   // parameters: whether training changes it

  // Where the node came from, for writers, inspect and messages.
  std::string layer;        // the file's layer or node it belongs to ("conv_1", "/fc/Gemm")
  std::string layer_class;  // the file's class of that layer ("Conv2D", "Gemm")
  std::string source;       // the tensor's name in the file (an op's: its output's)
  // Parameters: value.permute(file_order) is the tensor as the file stores it (Keras
  // keeps Conv2D kernels HWIO); empty when the file stores this layout.
  std::vector<int64_t> file_order;
  // Parameters of an ONNX file: the node that reads it (by its first output's name) and
  // the input slot, so that a writer can give that reader alone a changed copy.
  std::string site_output;
  int site_slot = -1;

  bool is_op(const char* type) const;
  Node clone() const;
};

// The pixels a model sees: (pixel * scale - mean[c]) / std[c] for channel c. `mean`
// and `std` are empty (0 and 1) or hold one value or one per channel.
struct Preprocess {
  double scale = 1.0;
  std::vector<double> mean, std;
  bool identity() const;
  nlohmann::json to_json() const;
};

enum class ModelFormat { kMemory, kKeras, kOnnx };

// What a format's writer keeps of the file a model was read from (the ONNX reader keeps
// the parsed file, so the model can be written back with only changed tensors replaced).
// Immutable; clones share it.
class SourceFile {
 public:
  virtual ~SourceFile() = default;
};
const char* format_name(ModelFormat f);  // "memory", "keras", "onnx"

// What the graph's output holds: a final Softmax's probabilities, a LogSoftmax's
// log-probabilities, or the logits themselves (PyTorch's usual export).
enum class OutputKind { kProbabilities, kLogProbabilities, kLogits };

class Model {
 public:
  Model();
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  // A deep copy: tensors are cloned, so pruning the copy leaves this model alone.
  Model clone() const;

  // Building. Each call adds a node and returns its index; an op's inputs must already
  // be nodes, so the graph is in topological order by construction. Names are unique.
  // add_op infers the output (Op::infer) and checks its size limits; errors name
  // `origin` (the file) and `label` (default "node 'NAME' (TYPE)").
  int add_input(const std::string& name, const Dims& dims, at::ScalarType dtype = at::kFloat);
  int add_param(const std::string& name, at::Tensor value, bool trainable = true);
  int add_const(const std::string& name, at::Tensor value);
  int add_op(const std::string& name, std::unique_ptr<Op> op, std::vector<int> inputs,
             const std::string& label = "");
  void set_outputs(std::vector<int> outputs);
  std::string origin;

  size_t size() const { return nodes_.size(); }
  Node& node(size_t i) { return nodes_[i]; }
  const Node& node(size_t i) const { return nodes_[i]; }
  // Index of the node called `name`, or -1.
  int find(const std::string& name) const;
  // The ops that read node i.
  std::vector<int> consumers(int i) const;
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<int>& outputs() const { return outputs_; }

  // As a classifier: one input, one output of dims (N, classes).
  int input_index() const;
  int output_index() const;
  const Dims& input_dims() const { return node(static_cast<size_t>(input_index())).info.dims; }
  Shape input_shape() const;  // the input without its batch dim: (C, H, W)
  int64_t num_classes() const;
  OutputKind output_kind() const;
  // The node holding the class scores before a final Softmax or LogSoftmax (the
  // output itself for a graph that ends in logits).
  int logits_index() const;
  // Throws InvalidArgument unless the graph is a classifier as above.
  void require_classifier() const;

  Preprocess preprocess;
  // Where the model was read from (kMemory, with no path, for a model built here),
  // and for a Keras file whether it holds weights only (its architecture then came
  // from elsewhere).
  ModelFormat format = ModelFormat::kMemory;
  std::string source_path;
  bool weights_only = false;
  // The Keras model_config document of a model built from one (to write it afresh).
  nlohmann::json keras_config;
  std::shared_ptr<const SourceFile> source;

  // The input node's value for a batch of raw pixels (the Preprocess step).
  at::Tensor preprocessed(const at::Tensor& pixels) const;
  // The graph's output for an NCHW batch of raw pixels.
  at::Tensor forward(const at::Tensor& pixels) const;
  // Class probabilities: the output of a final Softmax, else the softmax of the logits.
  at::Tensor probabilities(const at::Tensor& pixels) const;
  // Runs the graph and returns the values of the nodes in `wanted`. Nodes in `given`
  // are not computed (nor what only they need): their values come from the map. A
  // parameter may be given too (its value is then replaced for this run). `pixels`
  // may be undefined when the input is not needed.
  std::vector<at::Tensor> run(const at::Tensor& pixels, const std::vector<int>& wanted,
                              const std::map<int, at::Tensor>& given = {}) const;

  // Trainable parameters' tensors and their nodes, in node order.
  std::vector<at::Tensor> parameters() const;
  std::vector<int> parameter_nodes() const;

 private:
  int add_node(Node n);
  std::vector<Node> nodes_;
  std::map<std::string, int> by_name_;
  std::vector<int> inputs_, outputs_;
};

// Labels (argmax of the output) of an NCHW batch, run in chunks of `batch` images.
at::Tensor predict_labels(const Model& m, const at::Tensor& x, int64_t batch = 256);

}  // namespace bdguard
