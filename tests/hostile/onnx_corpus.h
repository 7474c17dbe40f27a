// The ONNX part of the hostile-input corpus: one valid model and one malformed file per
// check that bdguard makes on an untrusted ONNX file, with what each refusal must say.
// make_corpus writes it with the rest of the corpus (hostile_test.cpp runs the CLI on
// every file); tests/unit/onnx_proto_test.cpp also writes it into a temporary folder and
// checks every case against the library.
#pragma once

#include <string>
#include <vector>

namespace bdguard::test {

// Where a malformed file is refused.
enum class OnnxStage {
  kReader,  // read_model
  kGraph,   // read_model accepts it; load_model refuses it: the graph mapper (weights,
            // ops, their options and shapes) or the classifier check
};

struct OnnxCase {
  std::string file;  // name in the corpus folder
  OnnxStage stage;
  std::vector<std::string> fragments;  // text the one error line must contain, besides the path
};

// Writes DIR/valid/tiny.onnx, DIR/valid/tiny_initializers_as_inputs.onnx (the same model
// with every initializer also listed as a graph input) and DIR/<file> for every case of
// onnx_corpus_cases(). tiny.onnx: input [N, 3, 8, 8] -> /conv/Conv (4 filters 3x3,
// pads 1) -> /relu/Relu -> /pool/MaxPool (2x2, stride 2) -> /Flatten -> /fc/Gemm
// (transB 1) -> output [N, 5]. Deterministic: the same bytes on every run.
void write_onnx_corpus(const std::string& dir);

// Every malformed file write_onnx_corpus writes, with its stage and error fragments.
const std::vector<OnnxCase>& onnx_corpus_cases();

}  // namespace bdguard::test
