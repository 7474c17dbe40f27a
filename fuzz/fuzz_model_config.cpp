// Fuzzes the model_config parser and graph builder: parse_model_config, then
// keras_model_from_config, on arbitrary bytes. Anything but a bdguard::Error escaping is
// a finding (a std::exception from an unchecked JSON access, a LibTorch error), as are
// crashes, sanitizer reports and hangs. When a graph builds and is small, it is also
// run once (its weights are zeros) and every node's value must have the dims the
// builder inferred (run_graph.h).
#include <cstddef>
#include <cstdint>
#include <string>

#include "bdguard/error.h"
#include "bdguard/keras.h"
#include "run_graph.h"

namespace {

constexpr int64_t kMaxRunElements = int64_t{1} << 16;  // run only small graphs (speed)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    nlohmann::json doc = bdguard::parse_model_config(text, "fuzz.json");
    const bdguard::Model m = bdguard::keras_model_from_config(doc, "fuzz.json");
    bdguard::fuzz::run_and_check(m, /*batch=*/1, kMaxRunElements);
  } catch (const bdguard::Error&) {
    // Refused with a message: the expected outcome for most inputs.
  }
  return 0;
}
