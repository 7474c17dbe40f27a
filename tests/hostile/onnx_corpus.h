// The ONNX part of the hostile-input corpus: one valid model and one malformed file per
// check that bdguard makes on an untrusted ONNX file, with what each refusal must say.
// Not yet written by make_corpus (the CLI does not read ONNX yet): tests/unit/
// onnx_proto_test.cpp writes it into a temporary folder and checks every case.
#pragma once

#include <string>
#include <vector>

namespace bdguard::test {

// Where a malformed file is refused.
enum class OnnxStage {
  kReader,  // read_model
  kGraph,   // read_model accepts it; converting its weights is refused (to_tensor and
            // require_finite on every initializer, as the graph mapper does)
};

struct OnnxCase {
  std::string file;  // name in the corpus folder
  OnnxStage stage;
  std::vector<std::string> fragments;  // text the one error line must contain, besides the path
};

// Writes DIR/valid/tiny.onnx and DIR/<file> for every case of onnx_corpus_cases().
// tiny.onnx: input [N, 3, 8, 8] -> /conv/Conv (4 filters 3x3, pads 1) -> /relu/Relu
// -> /pool/MaxPool (2x2, stride 2) -> /Flatten -> /fc/Gemm (transB 1) -> output [N, 5].
// Deterministic: the same bytes on every run.
void write_onnx_corpus(const std::string& dir);

// Every malformed file write_onnx_corpus writes, with its stage and error fragments.
const std::vector<OnnxCase>& onnx_corpus_cases();

}  // namespace bdguard::test
