// Fuzzes the .npz reader (the zip directory, inflation limits, the .npy entries): the
// bytes are written to a file that LabDataset opens for a model taking 8x8 RGB images
// with 5 classes (and 8x8 grayscale). Anything but a bdguard::Error escaping is a
// finding, as are crashes, sanitizer reports and hangs.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "data_writers.h"

namespace {

std::string g_dir, g_data;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/bdguard-fuzz-npz-XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  g_dir = tmpl;
  g_data = g_dir + "/d.npz";
  std::atexit([] { std::filesystem::remove_all(g_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bdguard::test::write_bytes(g_data, std::string(reinterpret_cast<const char*>(data), size));
  bdguard::DataOptions options;
  options.num_classes = 5;
  options.max_tensor_bytes = int64_t{16} << 20;  // keeps each run small; the checks are the same
  for (const bdguard::Shape& input : {bdguard::Shape{3, 8, 8}, bdguard::Shape{1, 8, 8}}) {
    try {
      bdguard::LabDataset ds(g_data, input, options);
      if (ds.read_all().images.size(0) != ds.size()) __builtin_trap();
    } catch (const bdguard::Error&) {
    }
  }
  return 0;
}
