// The operator interface of bdguard's model graph.
//
// The graph (model.h) is format-neutral: Keras layers and ONNX nodes become the same
// ops, named after ONNX's operators ("Conv", "Gemm", "BatchNormalization", ...), with
// ONNX's semantics (NCHW images, weights in PyTorch's layout: Conv OIHW). Readers
// translate a file's own conventions into ops (a Keras Flatten becomes a Transpose to
// channels-last and a Flatten); writers translate back.
//
// Contract of an op:
//  - `infer(inputs)` is called once, when the node is added, with what is known of
//    its inputs (nullptr for an absent optional input). It validates its attributes
//    against them and returns its output's ValueInfo. It throws ShapeMismatch or
//    UnsupportedOp (the graph adds the node's name and the file).
//  - `forward(inputs)` computes the output from the input tensors (undefined tensors
//    for absent inputs). It may be called with autograd on: ATen ops only.
//  - `clone()` copies the op (ops hold attributes only; tensors live in the graph).
//  - `forward_inference(inputs, hints)` is what the graph calls instead of forward()
//    when autograd is off. It must give forward()'s result bit for bit; the hints
//    only let it save memory traffic: write into an input that nothing else holds,
//    or apply a neighbouring Relu in the same pass (see InferenceHints). The default
//    is forward().
// Add an op: derive from Op (in src/graph/ops/, one file per kind), and register its
// readers in the formats that produce it.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace bdguard {

// The dimensions of a value, batch included: sizes >= 0, or kBatch for the batch size
// N that is known only when the model runs (a model's input is (N, C, H, W)).
using Dims = std::vector<int64_t>;
constexpr int64_t kBatch = -1;
// The batch size inside the known contents of an int64 value (a shape computed from
// the input's), where -1 already means "infer this dim".
constexpr int64_t kBatchValue = INT64_MIN;
std::string dims_str(const Dims& d);  // "(N, 3, 32, 32)"
// The number of elements of one batch item (the product of the non-batch dims).
int64_t per_item_elements(const Dims& d);

// What is known of a value before the model runs.
struct ValueInfo {
  Dims dims;
  at::ScalarType dtype = at::kFloat;
  // The contents of a small int64 tensor (a shape, indices), kBatchValue standing for
  // N, when they are known at build time (constants and shape arithmetic on them).
  std::optional<std::vector<int64_t>> known;
  bool batched() const;  // some dim is kBatch
};

// What the graph tells an op that runs without autograd (Op::forward_inference).
struct InferenceHints {
  // reusable[k]: input k is held by nothing else (its last reader is this op, and no
  // other tensor shares its storage), so the op may write its output into it.
  std::vector<char> reusable;
  // Set only for ops that say they can (fuses_relu_after / fuses_relu_before): the
  // output is to be relu(forward(inputs)), or forward() of relu(input 0).
  bool relu_after = false;
  bool relu_before = false;
  bool may_reuse(size_t k) const { return k < reusable.size() && reusable[k]; }
};

class Op {
 public:
  virtual ~Op() = default;
  // The operator's name: ONNX's ("Conv", "Relu", ...).
  virtual const char* type() const = 0;
  virtual ValueInfo infer(const std::vector<const ValueInfo*>& inputs) = 0;
  virtual at::Tensor forward(const std::vector<at::Tensor>& inputs) const = 0;
  virtual std::unique_ptr<Op> clone() const = 0;
  virtual at::Tensor forward_inference(const std::vector<at::Tensor>& inputs,
                                       const InferenceHints& hints) const {
    (void)hints;
    return forward(inputs);
  }
  // Whether forward_inference can apply a Relu to its output (BatchNormalization) or to
  // input 0 before reading it (MaxPool) in the same pass, when the graph asks.
  virtual bool fuses_relu_after() const { return false; }
  virtual bool fuses_relu_before() const { return false; }
  // The op's attributes as ONNX names them, for inspect and writers.
  virtual nlohmann::json attributes() const { return nlohmann::json::object(); }
  // Output channel c (axis 1) depends on input channel c of input 0 alone, and a
  // channel that is constant in the input is constant in the output (Relu, BatchNorm,
  // pooling, Dropout, Identity): what the pruning sweep follows above a pruned layer.
  virtual bool channelwise() const { return false; }
  // Moves values without computing (Flatten, Reshape, Transpose, Identity, Dropout):
  // every output element is one input element, independent of the values.
  virtual bool layout_only() const { return false; }
};

}  // namespace bdguard
