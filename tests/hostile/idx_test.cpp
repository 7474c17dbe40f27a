// Damaged or hostile IDX files are refused with a typed error before any large allocation.
#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "bdguard/badnets.h"
#include "bdguard/error.h"
#include "test_util.h"

namespace bdguard {
namespace {

std::vector<unsigned char> be32(uint32_t v) {
  return {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
}

std::string write_gz(const std::string& dir, const std::string& name,
                     const std::vector<std::vector<unsigned char>>& parts) {
  const std::string path = dir + "/" + name;
  gzFile f = gzopen(path.c_str(), "wb");
  for (const auto& p : parts) gzwrite(f, p.data(), static_cast<unsigned>(p.size()));
  gzclose(f);
  return path;
}

std::string images(const std::string& dir, uint32_t n, uint32_t rows, uint32_t cols,
                   size_t pixels) {
  return write_gz(
      dir, "images.gz",
      {be32(0x803), be32(n), be32(rows), be32(cols), std::vector<unsigned char>(pixels, 7)});
}
std::string labels(const std::string& dir, uint32_t n, size_t count) {
  return write_gz(dir, "labels.gz", {be32(0x801), be32(n), std::vector<unsigned char>(count, 1)});
}

TEST(HostileIdx, WellFormedFilesRead) {
  const std::string dir = test::temp_dir();
  std::string img = images(dir, 3, 2, 2, 12);
  TensorData d = read_idx(img, labels(dir, 3, 3));
  EXPECT_EQ(d.images.sizes(), (at::IntArrayRef{3, 1, 2, 2}));
  EXPECT_EQ(d.labels.sum().item<int64_t>(), 3);
}

TEST(HostileIdx, WrongMagicIsAFormatError) {
  const std::string dir = test::temp_dir();
  std::string img =
      write_gz(dir, "images.gz", {be32(0x801), be32(1), be32(2), be32(2), {0, 0, 0, 0}});
  EXPECT_THROW(read_idx(img, labels(dir, 1, 1)), FormatError);
}

TEST(HostileIdx, HugeCountsAreRefusedBeforeAllocating) {
  const std::string dir = test::temp_dir();
  std::string img = images(dir, 0x7fffffff, 28, 28, 16);
  EXPECT_THROW(read_idx(img, labels(dir, 1, 1)), LimitExceeded);
  std::string wide = images(dir, 1, 100000, 100000, 16);
  EXPECT_THROW(read_idx(wide, labels(dir, 1, 1)), LimitExceeded);
}

TEST(HostileIdx, TruncatedPixelsAreAFormatError) {
  const std::string dir = test::temp_dir();
  std::string img = images(dir, 4, 2, 2, 10);  // 16 announced
  EXPECT_THROW(read_idx(img, labels(dir, 4, 4)), FormatError);
}

TEST(HostileIdx, LabelCountMustMatch) {
  const std::string dir = test::temp_dir();
  std::string img = images(dir, 3, 2, 2, 12);
  EXPECT_THROW(read_idx(img, labels(dir, 2, 2)), ShapeMismatch);
}

TEST(HostileIdx, TrailingBytesAreAFormatError) {
  const std::string dir = test::temp_dir();
  std::string img = images(dir, 3, 2, 2, 13);
  EXPECT_THROW(read_idx(img, labels(dir, 3, 3)), FormatError);
}

TEST(HostileIdx, MissingFileIsAnIoError) {
  const std::string dir = test::temp_dir();
  EXPECT_THROW(read_idx(dir + "/none.gz", labels(dir, 1, 1)), IoError);
}

}  // namespace
}  // namespace bdguard
