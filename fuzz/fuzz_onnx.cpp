// Fuzzes the ONNX reader end to end: the bytes are written to a file that load_model
// opens as bdguard does (read_model's checks and parse, the graph mapper, the classifier
// check; inputs with HDF5's signature, which it reads as Keras, are skipped). A model it
// accepts is also run once on a batch of two images when it is small, and every node's
// value must have the inferred dims (run_graph.h). Anything but a bdguard::Error
// escaping load_model (a c10::Error from LibTorch, a std::exception from protobuf) is a
// finding, as are crashes, sanitizer reports and hangs.
#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "bdguard/error.h"
#include "bdguard/model.h"
#include "bdguard/model_io.h"
#include "run_graph.h"

namespace {

// Run only models whose values hold this many numbers in all (speed: the ResNet fixture
// seed, some 0.7M weights, still runs).
constexpr int64_t kMaxRunElements = int64_t{1} << 21;

std::string g_dir, g_model;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/bdguard-fuzz-onnx-XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  g_dir = tmpl;
  g_model = g_dir + "/model.onnx";
  std::atexit([] { std::filesystem::remove_all(g_dir); });
  at::set_num_threads(1);  // one input at a time; threads only add noise
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // load_model reads a file with HDF5's signature as Keras (fuzz_keras_weights' part).
  if (size >= 8 && std::memcmp(data, "\x89HDF\r\n\x1a\n", 8) == 0) return 0;
  FILE* f = std::fopen(g_model.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  bdguard::LoadOptions options;
  options.max_tensor_bytes = int64_t{16} << 20;  // keeps each run small; the check is the same
  try {
    const bdguard::Model m = bdguard::load_model(g_model, {}, options);
    bdguard::fuzz::run_and_check(m, /*batch=*/2, kMaxRunElements);
  } catch (const bdguard::Error&) {
    // Refused with a message.
  }
  return 0;
}
