// The tiny BadNet's lab HDF5 data, converted to .npz and to image folders, gives the
// same predictions, image for image, as the HDF5 file (the library side of
// tests/cli/data_cli_test.cpp's eval check).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "bdguard/dataset.h"
#include "bdguard/evaluate.h"
#include "bdguard/model_io.h"
#include "data_writers.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kRows = 200;

std::string row_name(int64_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "%05lld.png", static_cast<long long>(i));
  return name;
}

TEST(DataEquivalence, NpzAndFoldersPredictAsTheHdf5File) {
  BDGUARD_REQUIRE_TINY();
  const std::string tiny = test::tiny_dir("badnet");
  Model m = load_model(tiny + "/bd_net.h5");
  const std::string dir = test::temp_dir();
  for (const char* file : {"test", "bd_test"}) {
    LabDataset full(tiny + "/data/" + file + ".h5", m.input_shape());
    Batch b = full.read(0, std::min(kRows, full.size()));
    ASSERT_TRUE(b.images.equal(b.images.round().clamp(0, 255))) << file << ": not uint8 pixels";
    const at::Tensor x = b.images.contiguous(), y = b.labels;
    const std::string base = dir + "/" + file;
    write_lab_dataset(base + ".h5", x, y);
    test::write_npz(base + ".npz", x.permute({0, 2, 3, 1}).contiguous().to(at::kByte), y);
    // A flat folder in the file's order, and class folders (sorted by class).
    fs::create_directories(base + "_flat");
    std::string csv = "file,label\n";
    for (int64_t i = 0; i < x.size(0); ++i) {
      write_png(base + "_flat/" + row_name(i), x[i]);
      csv += row_name(i) + "," + std::to_string(y[i].item<int64_t>()) + "\n";
      const std::string cls = base + "_classes/" + std::to_string(y[i].item<int64_t>());
      fs::create_directories(cls);
      write_png(cls + "/" + row_name(i), x[i]);
    }
    test::write_bytes(base + "_flat/labels.csv", csv);

    LabDataset h5(base + ".h5", m.input_shape()), npz(base + ".npz", m.input_shape());
    LabDataset flat(base + "_flat", m.input_shape()), classes(base + "_classes", m.input_shape());
    const auto want = predict_dataset({&m}, h5, 64)[0];
    EXPECT_EQ(npz.layout(), Layout::kNHWC);
    EXPECT_EQ(predict_dataset({&m}, npz, 64)[0], want) << file;
    EXPECT_EQ(predict_dataset({&m}, flat, 64)[0], want) << file;
    EXPECT_EQ(flat.labels(), h5.labels());
    EXPECT_EQ(match_rate(predict_dataset({&m}, classes, 64)[0], classes.labels()),
              match_rate(want, h5.labels()))
        << file;
  }
}

}  // namespace
}  // namespace bdguard
