// Fuzzes the model_config parser and graph builder: parse_model_config, then
// Model::from_config, on arbitrary bytes. Anything but a bdguard::Error escaping is a
// finding (a std::exception from an unchecked JSON access, a LibTorch error), as are
// crashes, sanitizer reports and hangs. When a graph builds and is small, it is also
// run once on zeros, and its output must have the shape build() promised.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "bdguard/model.h"

namespace {

constexpr int64_t kMaxRunElements = int64_t{1} << 16;  // run only small graphs (speed)

int64_t elements(const bdguard::Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;  // build() bounds every shape to 2^28 elements
  return n;
}

void run_small_graph(bdguard::Model& m) {
  int64_t total = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    total += elements(m.layer(i).output_shape);
    for (const auto& spec : m.layer(i).weight_specs()) {
      for (int64_t d : spec.shape) {
        if (d < 1) __builtin_trap();  // a weight shape must have positive dimensions
      }
      total += elements(spec.shape);
    }
  }
  if (total > kMaxRunElements) return;
  for (size_t i = 0; i < m.size(); ++i) {
    for (const auto& spec : m.layer(i).weight_specs()) {
      // BatchNormalization's variance must not be negative; ones keep every layer finite.
      m.layer(i).weights.push_back({spec.suffix, at::ones(spec.shape, at::kFloat)});
    }
  }
  const bdguard::Shape& in = m.input_shape();
  at::Tensor x = in.size() == 3 ? at::zeros({1, in[2], in[0], in[1]}) : at::zeros(in).unsqueeze(0);
  at::Tensor y = m.forward(x);
  // The output shape build() promised: Keras order, batch first (images are internally NCHW).
  const bdguard::Shape& out = m.output_shape();
  bdguard::Shape got(y.sizes().begin() + 1, y.sizes().end());
  if (got.size() == 3) got = {got[1], got[2], got[0]};
  if (got != out) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    nlohmann::json doc = bdguard::parse_model_config(text, "fuzz.json");
    bdguard::Model m = bdguard::Model::from_config(doc, "fuzz.json");
    run_small_graph(m);
  } catch (const bdguard::Error&) {
    // Refused with a message: the expected outcome for most inputs.
  }
  return 0;
}
