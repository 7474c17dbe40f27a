// Fuzzes the .npy reader: the bytes are parsed as a .npy array (parse_npy), then written
// to a file that LabDataset opens as images beside a valid labels file, for a model
// taking 8x8 RGB images with 5 classes (and 8x8 grayscale). Anything but a
// bdguard::Error escaping is a finding, as are crashes, sanitizer reports and hangs.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "bdguard/data_formats.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "data_writers.h"

namespace {

std::string g_dir, g_images, g_labels;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/bdguard-fuzz-npy-XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  g_dir = tmpl;
  g_images = g_dir + "/x.npy";
  g_labels = g_dir + "/y.npy";
  bdguard::test::write_bytes(g_labels, bdguard::test::npy_of(at::tensor({int64_t{1}, int64_t{4}})));
  std::atexit([] { std::filesystem::remove_all(g_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  bdguard::DataLimits limits;
  limits.max_bytes = int64_t{16} << 20;  // keeps each run small; the checks are the same
  try {
    bdguard::NpyArray a = bdguard::parse_npy("fuzz.npy", bytes, limits);
    if (a.data.numel() < 0) __builtin_trap();
  } catch (const bdguard::Error&) {
  }
  bdguard::test::write_bytes(g_images, bytes);
  bdguard::DataOptions options;
  options.num_classes = 5;
  options.max_tensor_bytes = limits.max_bytes;
  options.labels = {g_labels};
  for (const bdguard::Shape& input : {bdguard::Shape{3, 8, 8}, bdguard::Shape{1, 8, 8}}) {
    try {
      bdguard::LabDataset ds(g_images, input, options);
      if (ds.read_all().images.size(0) != ds.size()) __builtin_trap();
    } catch (const bdguard::Error&) {
    }
  }
  return 0;
}
