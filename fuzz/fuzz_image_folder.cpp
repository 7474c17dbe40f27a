// Fuzzes the image-folder reader. An even first byte: the rest is an image file in a
// class folder beside a valid PNG (DIR/0/a.png, DIR/1/b.png), read for a model taking
// 8x8 RGB images, as it is and with resizing. An odd first byte: the rest is the
// labels.csv of a flat folder holding two valid PNGs. Anything but a bdguard::Error
// escaping is a finding, as are crashes, sanitizer reports and hangs.
#include <ATen/ATen.h>
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

namespace fs = std::filesystem;

namespace {

std::string g_dir;

void try_read(const std::string& dir, bool resize) {
  bdguard::DataOptions options;
  options.num_classes = 5;
  options.max_tensor_bytes = int64_t{16} << 20;
  options.max_files = 16;
  options.resize = resize;
  try {
    bdguard::LabDataset ds(dir, {3, 8, 8}, options);
    if (ds.read_all().images.size(0) != ds.size()) __builtin_trap();
  } catch (const bdguard::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/bdguard-fuzz-images-XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  g_dir = tmpl;
  for (const char* d : {"/classes/0", "/classes/1", "/flat"}) fs::create_directories(g_dir + d);
  bdguard::write_png(g_dir + "/classes/1/b.png", at::full({3, 8, 8}, 128.0));
  bdguard::write_png(g_dir + "/flat/a.png", at::full({3, 8, 8}, 10.0));
  bdguard::write_png(g_dir + "/flat/b.png", at::full({1, 8, 8}, 20.0));
  std::atexit([] { fs::remove_all(g_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    bdguard::test::write_bytes(g_dir + "/classes/0/a.png", rest);
    try_read(g_dir + "/classes", false);
    try_read(g_dir + "/classes", true);
  } else {
    bdguard::test::write_bytes(g_dir + "/flat/labels.csv", rest);
    try_read(g_dir + "/flat", false);
  }
  return 0;
}
