// Fuzzes the Keras HDF5 reader: the bytes are written to a file that load_model opens
// three ways: as a full model (its own model_config), as a weights-only file with the
// built-in DeepID architecture, and as a weights-only file with the architecture of the
// 5-layer model that make_corpus writes (so mutations of those seeds go deep). Anything
// but a bdguard::Error escaping is a finding, as are crashes, sanitizer reports and hangs.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "bdguard/error.h"
#include "bdguard/keras.h"

namespace {

std::string g_dir, g_model, g_arch;

// The architecture of make_corpus' valid/tiny_weights.h5 (tests/hostile/make_corpus.cpp).
constexpr const char* kTinyArch = R"({"class_name": "Functional", "config": {"name": "tiny",
 "layers": [
  {"class_name": "InputLayer", "name": "input", "inbound_nodes": [],
   "config": {"name": "input", "batch_input_shape": [null, 8, 8, 3]}},
  {"class_name": "Conv2D", "name": "conv", "inbound_nodes": [[["input", 0, 0, {}]]],
   "config": {"name": "conv", "filters": 4, "kernel_size": [3, 3], "activation": "relu"}},
  {"class_name": "MaxPooling2D", "name": "pool", "inbound_nodes": [[["conv", 0, 0, {}]]],
   "config": {"name": "pool", "pool_size": [2, 2]}},
  {"class_name": "Flatten", "name": "flatten", "inbound_nodes": [[["pool", 0, 0, {}]]],
   "config": {"name": "flatten"}},
  {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["flatten", 0, 0, {}]]],
   "config": {"name": "dense", "units": 5, "activation": "softmax"}}],
 "input_layers": [["input", 0, 0]], "output_layers": [["dense", 0, 0]]}})";

void write(const std::string& path, const void* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/bdguard-fuzz-keras-XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  g_dir = tmpl;
  g_model = g_dir + "/model.h5";
  g_arch = g_dir + "/arch.json";
  write(g_arch, kTinyArch, std::char_traits<char>::length(kTinyArch));
  std::atexit([] { std::filesystem::remove_all(g_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write(g_model, data, size);
  bdguard::LoadOptions options;
  options.max_tensor_bytes = int64_t{16} << 20;  // keeps each run small; the check is the same
  for (const bdguard::ArchSource& arch : {bdguard::ArchSource{}, bdguard::ArchSource{"deepid", ""},
                                          bdguard::ArchSource{"", g_arch}}) {
    try {
      bdguard::load_model(g_model, arch, options);
    } catch (const bdguard::Error&) {
      // Refused with a message.
    }
  }
  return 0;
}
