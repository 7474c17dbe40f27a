// Fuzzes the lab data reader: the bytes are written to a file that LabDataset opens for
// a model taking 8x8 RGB images with 5 classes (and 8x8 grayscale), then the first and
// last batches are read. Anything but a bdguard::Error escaping is a finding, as are
// crashes, sanitizer reports and hangs.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "bdguard/dataset.h"
#include "bdguard/error.h"

namespace {

std::string g_dir, g_data;

void read_some(const bdguard::LabDataset& ds) {
  constexpr int64_t kBatch = 16;
  const int64_t n = ds.size();
  for (int64_t start : {int64_t{0}, std::max<int64_t>(0, n - kBatch)}) {
    bdguard::Batch b = ds.read(start, std::min(kBatch, n - start));
    if (b.images.size(0) != b.labels.size(0)) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/bdguard-fuzz-data-XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  g_dir = tmpl;
  g_data = g_dir + "/data.h5";
  std::atexit([] { std::filesystem::remove_all(g_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FILE* f = std::fopen(g_data.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  bdguard::DataOptions options;
  options.num_classes = 5;
  options.max_tensor_bytes = int64_t{16} << 20;  // keeps each run small; the check is the same
  // (C, H, W), as Model::input_shape gives it.
  for (const bdguard::Shape& input : {bdguard::Shape{3, 8, 8}, bdguard::Shape{1, 8, 8}}) {
    try {
      read_some(bdguard::LabDataset(g_data, input, options));
    } catch (const bdguard::Error&) {
      // Refused with a message.
    }
  }
  return 0;
}
