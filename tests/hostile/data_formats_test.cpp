// Damaged or hostile .npy, .npz and image folders are refused with a typed error naming
// the file, before any large allocation.
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

const std::string kLabels = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }";

// `what` in the message of the error `f` throws, of type E.
template <class E, class F>
void expect_error(F f, const std::string& what) {
  try {
    f();
    FAIL() << "no error; expected one saying " << what;
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

NpyArray parse(const std::string& bytes) { return parse_npy("t.npy", bytes, {}); }

TEST(HostileNpy, WellFormedParses) {
  NpyArray a = parse(test::npy_with_header(kLabels, std::string(16, '\0')));
  EXPECT_EQ(a.shape, (Shape{2}));
  EXPECT_EQ(a.dtype, "int64");
}

TEST(HostileNpy, TruncatedDataIsRefused) {
  expect_error<FormatError>([] { parse(test::npy_with_header(kLabels, std::string(15, '\0'))); },
                            "truncated");
}

TEST(HostileNpy, TruncatedHeaderIsRefused) {
  std::string full = test::npy_with_header(kLabels, std::string(16, '\0'));
  expect_error<FormatError>([&] { parse(full.substr(0, 40)); }, "truncated");
}

TEST(HostileNpy, BadHeadersAreRefused) {
  for (const std::string dict :
       {"{'descr': '<i8', 'shape': (2,), }",                                  // key missing
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), 'x': 1, }",  // extra key
        "{'descr': '<i8', 'descr': '<i8', 'fortran_order': False, 'shape': (2,)}",
        "{'descr': '<i8', 'fortran_order': 0, 'shape': (2,), }",           // not a bool
        "{'descr': '<i8', 'fortran_order': False, 'shape': (-2,), }",      // negative
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), } junk",  // trailing
        "__import__('os').system('true')"}) {
    EXPECT_THROW(parse(test::npy_with_header(dict, std::string(16, '\0'))), FormatError) << dict;
  }
}

TEST(HostileNpy, PickledObjectDtypeIsRefused) {
  const std::string dict = "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }";
  expect_error<FormatError>([&] { parse(test::npy_with_header(dict, std::string(16, '\0'))); },
                            "pickled");
}

TEST(HostileNpy, StructuredBigEndianAndFortranAreRefused) {
  for (const std::string dict :
       {"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }",
        "{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }",
        "{'descr': '<i8', 'fortran_order': True, 'shape': (2,), }"}) {
    EXPECT_THROW(parse(test::npy_with_header(dict, std::string(16, '\0'))), FormatError) << dict;
  }
}

TEST(HostileNpy, HugeShapeIsRefusedBeforeAllocating) {
  for (const std::string shape :
       {"(1000000000, 1000000000)", "(4611686018427387904, 4)", "(99999999999999999999,)"}) {
    const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    EXPECT_THROW(parse(test::npy_with_header(dict, "")), Error) << shape;
  }
  expect_error<LimitExceeded>(
      [] {
        parse(test::npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000000), }", ""));
      },
      "bytes of data");
}

TEST(HostileNpy, OversizedHeaderLengthIsRefused) {
  std::string bytes = "\x93NUMPY\x02";
  bytes += std::string("\x00\x00\x00\x10\x00", 5);  // version 2.0, 1 MiB header
  expect_error<LimitExceeded>([&] { parse(bytes + std::string(64, ' ')); }, "npy header");
}

std::string npz_path() { return test::temp_dir() + "/d.npz"; }
std::string labels_npy() { return test::npy_of(at::tensor({int64_t{0}, int64_t{1}})); }
std::string images_npy() { return test::npy_of(at::zeros({2, 1, 2, 2}, at::kByte)); }

void open_npz(const std::vector<test::ZipEntry>& entries) {
  test::write_bytes(npz_path(), test::zip_bytes(entries));
  LabDataset(npz_path(), {1, 2, 2});
}

TEST(HostileNpz, WellFormedReads) {
  EXPECT_NO_THROW(open_npz({{"x.npy", images_npy(), true}, {"y.npy", labels_npy()}}));
}

TEST(HostileNpz, ZipBombRatioIsRefusedBeforeInflating) {
  // 1 GiB announced from a few hundred bytes: no deflate stream compresses that well.
  expect_error<LimitExceeded>(
      [] {
        open_npz({{"x.npy", images_npy(), true, int64_t{1} << 30}, {"y.npy", labels_npy()}});
      },
      "compression ratio");
}

TEST(HostileNpz, MoreDataThanAnnouncedIsRefused) {
  test::ZipEntry x{"x.npy", images_npy() + std::string(1000, '\0'), true};
  x.announced_size = static_cast<int64_t>(images_npy().size());
  expect_error<FormatError>(
      [&] {
        open_npz({x, {"y.npy", labels_npy()}});
      },
      "more data than announced");
}

TEST(HostileNpz, OversizedEntryIsRefused) {
  DataLimits small;
  small.max_bytes = 4;  // the 8 bytes of x are more
  test::write_bytes(npz_path(),
                    test::zip_bytes({{"x.npy", images_npy()}, {"y.npy", labels_npy()}}));
  EXPECT_THROW(read_npz(npz_path(), small), LimitExceeded);
}

TEST(HostileNpz, PathTraversalNamesAreRefused) {
  for (const std::string name : {"../x.npy", "/etc/x.npy", "sub/x.npy", "..\\x.npy", ".."}) {
    EXPECT_THROW(open_npz({{name, images_npy()}, {"y.npy", labels_npy()}}), FormatError) << name;
  }
}

TEST(HostileNpz, DamagedCrcIsRefused) {
  std::string zip = test::zip_bytes({{"x.npy", images_npy()}, {"y.npy", labels_npy()}});
  zip[30 + 5 + 70] ^= 1;  // the last byte of x.npy (72 bytes, stored after its 35-byte header)
  test::write_bytes(npz_path(), zip);
  expect_error<FormatError>([] { LabDataset(npz_path(), {1, 2, 2}); }, "CRC");
}

TEST(HostileNpz, TruncatedArchiveIsRefused) {
  std::string zip = test::zip_bytes({{"x.npy", images_npy()}, {"y.npy", labels_npy()}});
  for (size_t cut : {zip.size() - 1, zip.size() / 2, size_t{3}}) {
    test::write_bytes(npz_path(), zip.substr(0, cut));
    EXPECT_THROW(LabDataset(npz_path(), {1, 2, 2}), Error) << cut;
  }
}

TEST(HostileNpz, PickledArrayInsideIsRefused) {
  const std::string obj = test::npy_with_header(
      "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", std::string(16, '\0'));
  expect_error<FormatError>(
      [&] {
        open_npz({{"x.npy", images_npy()}, {"y.npy", obj}});
      },
      "pickled");
}

std::string class_folder() {
  const std::string dir = test::temp_dir() + "/set";
  fs::create_directories(dir + "/0");
  write_png(dir + "/0/ok.png", at::zeros({1, 4, 4}));
  return dir;
}

TEST(HostileImageFolder, NonImageFileInAClassFolderIsRefusedByName) {
  const std::string dir = class_folder();
  test::write_bytes(dir + "/0/notes.txt", "hello");
  expect_error<FormatError>([&] { LabDataset(dir, {1, 4, 4}); }, "notes.txt");
}

TEST(HostileImageFolder, UndecodableImageIsRefusedByName) {
  const std::string dir = class_folder();
  test::write_bytes(dir + "/0/broken.png", "\x89PNG\r\n\x1a\n garbage");
  expect_error<FormatError>([&] { LabDataset(dir, {1, 4, 4}); }, "broken.png");
}

TEST(HostileImageFolder, WrongSizeImageIsRefusedByName) {
  const std::string dir = class_folder();
  write_png(dir + "/0/wide.png", at::zeros({1, 4, 9}));
  expect_error<ShapeMismatch>([&] { LabDataset(dir, {1, 4, 4}); }, "wide.png");
}

TEST(HostileImageFolder, HugePngHeaderIsRefused) {
  const std::string dir = class_folder();
  std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x7f\xff\xff\xff\x7f\xff\xff\xff", 24);
  test::write_bytes(dir + "/0/huge.png", png + std::string(16, '\0'));
  expect_error<LimitExceeded>([&] { LabDataset(dir, {1, 4, 4}); }, "huge.png");
}

TEST(HostileImageFolder, LabelsCsvPathsOutsideTheFolderAreRefused) {
  const std::string dir = test::temp_dir() + "/flat";
  fs::create_directories(dir);
  write_png(dir + "/a.png", at::zeros({1, 4, 4}));
  for (const std::string row :
       {"../a.png,1", "/etc/passwd,1", "sub/a.png,0", "a.png,-1", "a.png,1e3", "missing.png,0"}) {
    test::write_bytes(dir + "/labels.csv", "file,label\n" + row + "\n");
    EXPECT_THROW(LabDataset(dir, {1, 4, 4}), Error) << row;
  }
}

TEST(HostileImageFolder, EmptyFolderIsRefused) {
  const std::string dir = test::temp_dir() + "/empty";
  fs::create_directories(dir);
  EXPECT_THROW(LabDataset(dir, {1, 4, 4}), FormatError);
}

}  // namespace
}  // namespace bdguard
