// The data readers besides lab HDF5: .npy pairs, .npz, image folders (class folders and
// labels.csv), IDX; each on tiny files written here, checked value by value.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "bdguard/data_formats.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"
#include "data_writers.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

// (2, 2, 2, 3) uint8 pixels 0..23 and labels {1, 0}.
at::Tensor nhwc_pixels() { return at::arange(24, at::kByte).reshape({2, 2, 2, 3}); }
at::Tensor two_labels() { return at::tensor({int64_t{1}, int64_t{0}}); }

// A w x h image of one gray or RGB value, written as PNG.
void write_image(const std::string& path, int64_t channels, int64_t h, int64_t w, float value) {
  write_png(path, at::full({channels, h, w}, value));
}

TEST(DataNpy, Uint8NhwcPairReadsWithItsLabels) {
  const std::string dir = test::temp_dir();
  test::write_bytes(dir + "/x.npy", test::npy_of(nhwc_pixels()));
  test::write_bytes(dir + "/y.npy", test::npy_of(two_labels()));
  DataOptions o;
  o.labels = {dir + "/y.npy"};
  LabDataset d(dir + "/x.npy", {3, 2, 2}, o);
  EXPECT_EQ(d.format(), DataFormat::kNpy);
  EXPECT_EQ(d.layout(), Layout::kNHWC);
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{1, 0}));
  Batch b = d.read_all();
  // Image 1, channel 2, row 0, column 1: element (1, 0, 1, 2) of the NHWC array = 12+3+2.
  EXPECT_EQ(b.images[1][2][0][1].item<float>(), 17.0f);
}

TEST(DataNpy, Float32NchwPairIsChannelsFirst) {
  const std::string dir = test::temp_dir();
  at::Tensor x = at::arange(24, at::kFloat).reshape({2, 3, 2, 2}) / 2;
  test::write_bytes(dir + "/x.npy", test::npy_of(x));
  test::write_bytes(dir + "/y.npy", test::npy_of(two_labels()));
  DataOptions o;
  o.labels = {dir + "/x.npy=" + dir + "/y.npy"};
  LabDataset d(dir + "/x.npy", {3, 2, 2}, o);
  EXPECT_EQ(d.layout(), Layout::kNCHW);
  EXPECT_EQ(d.read(1, 1).images[0][0][0][1].item<float>(), 6.5f);  // (12 + 1) / 2
}

TEST(DataNpy, WithoutLabelsIsRefused) {
  const std::string dir = test::temp_dir();
  test::write_bytes(dir + "/x.npy", test::npy_of(nhwc_pixels()));
  EXPECT_THROW(LabDataset(dir + "/x.npy", {3, 2, 2}), InvalidArgument);
}

TEST(DataNpz, XAndYRead) {
  const std::string dir = test::temp_dir();
  test::write_npz(dir + "/d.npz", nhwc_pixels(), two_labels());
  LabDataset d(dir + "/d.npz", {3, 2, 2});
  EXPECT_EQ(d.format(), DataFormat::kNpz);
  EXPECT_EQ(d.size(), 2);
  EXPECT_EQ(d.read_all().images.sum().item<float>(), 276.0f);  // 0 + 1 + ... + 23
}

TEST(DataNpz, DataAndLabelRead) {
  const std::string dir = test::temp_dir();
  test::write_npz(dir + "/d.npz", nhwc_pixels(), two_labels(), "data", "label");
  EXPECT_EQ(LabDataset(dir + "/d.npz", {3, 2, 2}).labels(), (std::vector<int64_t>{1, 0}));
}

TEST(DataNpz, OtherNamesAreRefusedListingThem) {
  const std::string dir = test::temp_dir();
  test::write_npz(dir + "/d.npz", nhwc_pixels(), two_labels(), "images", "targets");
  try {
    LabDataset(dir + "/d.npz", {3, 2, 2});
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("the arrays images, targets"), std::string::npos)
        << e.what();
  }
}

TEST(DataNpz, LabelsOutOfRangeAreRefused) {
  const std::string dir = test::temp_dir();
  test::write_npz(dir + "/d.npz", nhwc_pixels(), at::tensor({int64_t{1}, int64_t{7}}));
  DataOptions o;
  o.num_classes = 5;
  EXPECT_THROW(LabDataset(dir + "/d.npz", {3, 2, 2}, o), FormatError);
}

TEST(DataImageFolder, ClassesAreTheSortedFolderNames) {
  const std::string dir = test::temp_dir() + "/set";
  for (const char* c : {"dog", "cat"}) fs::create_directories(dir + "/" + c);
  write_image(dir + "/dog/a.png", 3, 4, 5, 200);
  write_image(dir + "/cat/b.png", 3, 4, 5, 100);
  write_image(dir + "/cat/a.png", 3, 4, 5, 50);
  LabDataset d(dir, {3, 4, 5});
  EXPECT_EQ(d.format(), DataFormat::kImageFolder);
  // cat/a, cat/b, dog/a.
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{0, 0, 1}));
  Batch b = d.read_all();
  EXPECT_EQ(b.images[0][1][3][4].item<float>(), 50.0f);
  EXPECT_EQ(b.images[2][0][0][0].item<float>(), 200.0f);
}

TEST(DataImageFolder, IntegerFolderNamesAreTheLabels) {
  const std::string dir = test::temp_dir() + "/set";
  for (const char* c : {"3", "10"}) {
    fs::create_directories(dir + "/" + c);
    write_image(dir + "/" + c + "/img.png", 1, 2, 2, 9);
  }
  // Sorted by name: "10" before "3".
  EXPECT_EQ(LabDataset(dir, {1, 2, 2}).labels(), (std::vector<int64_t>{10, 3}));
}

TEST(DataImageFolder, LabelsCsvGivesAFlatFolder) {
  const std::string dir = test::temp_dir() + "/flat";
  fs::create_directories(dir);
  write_image(dir + "/p.png", 1, 2, 2, 10);
  write_image(dir + "/q.png", 1, 2, 2, 20);
  test::write_bytes(dir + "/labels.csv", "file,label\nq.png,4\np.png,2\n");
  LabDataset d(dir, {1, 2, 2});
  EXPECT_EQ(d.format(), DataFormat::kImageList);
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{4, 2}));  // the file's order
  EXPECT_EQ(d.read_all().images[0].mean().item<float>(), 20.0f);
}

TEST(DataImageFolder, WrongSizeIsRefusedUnlessResize) {
  const std::string dir = test::temp_dir() + "/set";
  fs::create_directories(dir + "/0");
  write_image(dir + "/0/big.png", 1, 8, 8, 77);
  try {
    LabDataset(dir, {1, 4, 4});
    FAIL() << "no error";
  } catch (const ShapeMismatch& e) {
    EXPECT_NE(std::string(e.what()).find("big.png"), std::string::npos) << e.what();
  }
  DataOptions o;
  o.resize = true;
  Batch b = LabDataset(dir, {1, 4, 4}, o).read_all();
  EXPECT_EQ(b.images.sizes(), (at::IntArrayRef{1, 1, 4, 4}));
  EXPECT_EQ(b.images.min().item<float>(), 77.0f);  // a flat image stays flat
}

TEST(DataImageFolder, MoreFilesThanTheLimitAreRefused) {
  const std::string dir = test::temp_dir() + "/set";
  fs::create_directories(dir + "/0");
  for (const char* f : {"a.png", "b.png", "c.png"}) write_image(dir + "/0/" + f, 1, 2, 2, 1);
  DataOptions o;
  o.max_files = 2;
  EXPECT_THROW(LabDataset(dir, {1, 2, 2}, o), LimitExceeded);
  o.max_files = 3;
  EXPECT_EQ(LabDataset(dir, {1, 2, 2}, o).size(), 3);
}

TEST(DataIdx, ImagesWithLabelsFileRead) {
  const std::string dir = test::temp_dir();
  std::string img("\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02", 16);
  img += std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  test::write_bytes(dir + "/img-idx3-ubyte", img);
  test::write_bytes(dir + "/lab-idx1-ubyte",
                    std::string("\x00\x00\x08\x01\x00\x00\x00\x02\x05\x06", 10));
  DataOptions o;
  o.labels = {dir + "/lab-idx1-ubyte"};
  LabDataset d(dir + "/img-idx3-ubyte", {1, 2, 2}, o);
  EXPECT_EQ(d.format(), DataFormat::kIdx);
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(d.read(1, 1).images.sum().item<float>(), 26.0f);  // 5 + 6 + 7 + 8
}

TEST(DataFormatDetect, ByContentNotByName) {
  const std::string dir = test::temp_dir();
  test::write_npz(dir + "/archive.bin", nhwc_pixels(), two_labels());
  test::write_bytes(dir + "/array.h5", test::npy_of(two_labels()));
  EXPECT_EQ(detect_data_format(dir + "/archive.bin"), DataFormat::kNpz);
  EXPECT_EQ(detect_data_format(dir + "/array.h5"), DataFormat::kNpy);
  EXPECT_EQ(detect_data_format(dir), DataFormat::kImageFolder);
}

TEST(DataInspect, NpzSummary) {
  const std::string dir = test::temp_dir();
  test::write_npz(dir + "/d.npz", nhwc_pixels(), two_labels());
  DataSummary s = inspect_data(dir + "/d.npz", {});
  EXPECT_EQ(s.format, DataFormat::kNpz);
  EXPECT_EQ(s.size, 2);
  EXPECT_EQ(s.layout, "NHWC");
  EXPECT_EQ(s.dtype, "uint8");
  EXPECT_EQ(s.min, 0);
  EXPECT_EQ(s.max, 23);
  EXPECT_EQ(s.histogram, (std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 1}}));
}

TEST(DataSha256, FolderHashChangesWithAnImage) {
  const std::string dir = test::temp_dir() + "/set";
  fs::create_directories(dir + "/0");
  write_image(dir + "/0/a.png", 1, 2, 2, 1);
  const std::string before = sha256_data(dir);
  EXPECT_EQ(before.size(), 64u);
  write_image(dir + "/0/a.png", 1, 2, 2, 2);
  EXPECT_NE(sha256_data(dir), before);
}

}  // namespace
}  // namespace bdguard
