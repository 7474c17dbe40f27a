// Data as users hold it, through the binary: `bdguard data inspect` and `data take`, and the tiny
// BadNet's lab HDF5 data converted to .npz and to image folders giving exactly the same
// `bdguard eval`, `detect` and `compare` results as the HDF5 files.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "bdguard/dataset.h"
#include "data_writers.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(DataCli, InspectJsonDescribesAnNpz) {
  const std::string dir = test::temp_dir();
  at::Tensor x = at::arange(24, at::kByte).reshape({2, 2, 2, 3});
  test::write_npz(dir + "/d.npz", x, at::tensor({int64_t{4}, int64_t{4}}));
  auto r = test::run_cli("data inspect --json " + q(dir + "/d.npz"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["format"], "npz");
  EXPECT_EQ(doc["images"], 2);
  EXPECT_EQ(doc["shape"], json::array({2, 2, 2, 3}));
  EXPECT_EQ(doc["layout"], "NHWC");
  EXPECT_EQ(doc["dtype"], "uint8");
  EXPECT_EQ(doc["max"], 23.0);
  EXPECT_EQ(doc["labels"], json({{"4", 2}}));
}

TEST(DataCli, InspectRefusesAPickledNpyWithOneErrorLine) {
  const std::string dir = test::temp_dir();
  test::write_bytes(dir + "/x.npy", test::npy_with_header(
                                        "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                                        std::string(8, '\0')));
  auto r =
      test::run_cli("data inspect " + q(dir + "/x.npy") + " --data-labels " + q(dir + "/x.npy"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("pickled"), std::string::npos) << r.err;
}

TEST(DataCli, TakeWritesTheRowsAskedForAsLabHdf5FromAnNpz) {
  const std::string dir = test::temp_dir();
  at::Tensor x = at::arange(5 * 2 * 2 * 3, at::kByte).reshape({5, 2, 2, 3});  // NHWC
  test::write_npz(dir + "/d.npz", x, at::arange(5, at::kLong));
  auto r = test::run_cli("data take --json --skip 1 --first 3 " + q(dir + "/d.npz") + " --out " +
                         q(dir + "/part.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images"], 3);
  LabDataset part(dir + "/part.h5", {3, 2, 2});
  ASSERT_EQ(part.size(), 3);
  Batch b = part.read(0, 3);
  EXPECT_TRUE(b.images.equal(x.slice(0, 1, 4).permute({0, 3, 1, 2}).to(at::kFloat)));
  EXPECT_EQ(part.labels(), (std::vector<int64_t>{1, 2, 3}));
  // --first past the end takes what is there; --skip past the end is refused.
  r = test::run_cli("data take --json --skip 4 --first 9 " + q(dir + "/d.npz") + " --out " +
                    q(dir + "/tail.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images"], 1);
}

TEST(DataCli, TakeRefusesASkipPastTheEndAndAnOutputThatIsNotH5) {
  const std::string dir = test::temp_dir();
  test::write_npz(dir + "/d.npz", at::zeros({2, 1, 4, 4}, at::kByte), at::zeros({2}, at::kLong));
  auto r = test::run_cli("data take --skip 3 " + q(dir + "/d.npz") + " --out " + q(dir + "/x.h5"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("--skip"), std::string::npos) << r.err;
  r = test::run_cli("data take " + q(dir + "/d.npz") + " --out " + q(dir + "/x.npz"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(".h5"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/x.npz"));
}

// The first `n` rows of a lab file as uint8 (the tiny data are whole pixel values).
std::pair<at::Tensor, at::Tensor> first_rows(const std::string& path, const Shape& shape,
                                             int64_t n) {
  LabDataset d(path, shape);
  Batch b = d.read(0, std::min(n, d.size()));
  EXPECT_TRUE(b.images.equal(b.images.round().clamp(0, 255))) << path << ": not uint8 pixels";
  return {b.images.contiguous(), b.labels};
}

// DIR/<label>/<row>.png, rows zero-padded so that the folder's order is the file's.
void write_class_folders(const std::string& dir, const at::Tensor& x, const at::Tensor& y) {
  for (int64_t i = 0; i < x.size(0); ++i) {
    const std::string cls = dir + "/" + std::to_string(y[i].item<int64_t>());
    fs::create_directories(cls);
    char name[32];
    std::snprintf(name, sizeof name, "%05lld.png", static_cast<long long>(i));
    write_png(cls + "/" + name, x[i]);
  }
}

TEST(DataCli, EvalIsTheSameOnHdf5NpzAndImageFolders) {
  BDGUARD_REQUIRE_TINY();
  const std::string tiny = test::tiny_dir("badnet");
  const std::string dir = test::temp_dir();
  const std::string model = tiny + "/bd_net.h5";
  const Shape shape{1, 28, 28};
  std::string h5_args, npz_args, folder_args;
  for (const auto& [flag, file] :
       {std::pair{"--clean", "test"}, std::pair{"--poisoned", "bd_test"}}) {
    auto [x, y] = first_rows(tiny + "/data/" + file + ".h5", shape, 400);
    const std::string base = dir + "/" + file;
    write_lab_dataset(base + ".h5", x, y);
    // As NumPy users hold it: uint8, channels last, int64 labels.
    test::write_npz(base + ".npz", x.permute({0, 2, 3, 1}).contiguous().to(at::kByte), y);
    write_class_folders(base, x, y);
    h5_args += std::string(" ") + flag + " " + q(base + ".h5");
    npz_args += std::string(" ") + flag + " " + q(base + ".npz");
    folder_args += std::string(" ") + flag + " " + q(base);
  }
  const std::string eval = "eval --json --threads 1 --model " + q(model);
  auto h5 = test::run_cli(eval + h5_args);
  ASSERT_EQ(h5.exit_code, 0) << h5.err;
  auto npz = test::run_cli(eval + npz_args);
  ASSERT_EQ(npz.exit_code, 0) << npz.err;
  auto folder = test::run_cli(eval + folder_args);
  ASSERT_EQ(folder.exit_code, 0) << folder.err;
  EXPECT_EQ(npz.out, h5.out);
  EXPECT_EQ(folder.out, h5.out);
  json doc = json::parse(h5.out);
  EXPECT_EQ(doc["n_clean"], 400);
  EXPECT_GT(doc["attack_success_rate"].get<double>(), 50.0);  // the tiny BadNet's backdoor
}

TEST(DataCli, LabelsIsASecondNameOfDataLabelsForAnNpyPair) {
  BDGUARD_REQUIRE_TINY();
  const std::string tiny = test::tiny_dir("badnet");
  const std::string dir = test::temp_dir();
  auto [x, y] = first_rows(tiny + "/data/test.h5", Shape{1, 28, 28}, 200);
  test::write_bytes(dir + "/x.npy", test::npy_of(x.to(at::kByte)));
  test::write_bytes(dir + "/y.npy", test::npy_of(y));
  const std::string eval =
      "eval --json --threads 1 --model " + q(tiny + "/bd_net.h5") + " --clean " + q(dir + "/x.npy");
  auto long_name = test::run_cli(eval + " --data-labels " + q(dir + "/y.npy"));
  ASSERT_EQ(long_name.exit_code, 0) << long_name.err;
  auto short_name = test::run_cli(eval + " --labels " + q(dir + "/y.npy"));
  ASSERT_EQ(short_name.exit_code, 0) << short_name.err;
  EXPECT_EQ(short_name.out, long_name.out);
  EXPECT_EQ(json::parse(long_name.out)["n_clean"], 200);
  // detect keeps --labels for its candidate target labels.
  auto detect = test::run_cli("detect --help");
  EXPECT_NE(detect.out.find("candidate labels"), std::string::npos) << detect.out;
}

// What detect and compare report that depends on the data (not timings, not paths).
json data_figures(const json& doc) {
  json out;
  for (const char* key : {"labels", "flagged", "backdoored", "median", "mad", "baseline"}) {
    if (doc.contains(key)) out[key] = doc[key];
  }
  if (doc.contains("rows")) {
    for (const auto& row : doc["rows"]) {
      out["rows"].push_back({{"method", row["method"]},
                             {"clean_accuracy", row["clean_accuracy"]},
                             {"asr", row["asr"]}});
    }
  }
  if (out.contains("labels")) {
    for (auto& l : out["labels"]) l.erase("seconds");
  }
  if (out.contains("baseline")) out["baseline"].erase("seconds");
  return out;
}

// The check: the demo-like data as an .npz and as class folders give exactly
// the same detect and compare results as the HDF5 files (rows sorted by label, so that
// the class folders keep the files' order, which seeded sampling depends on).
TEST(DataCli, DetectAndCompareAreTheSameOnHdf5NpzAndImageFolders) {
  BDGUARD_REQUIRE_TINY();
  const std::string tiny = test::tiny_dir("badnet");
  const std::string dir = test::temp_dir();
  const Shape shape{1, 28, 28};
  std::string args[3];
  for (const auto& [flag, file] :
       {std::pair{"--valid", "valid"}, std::pair{"--poisoned-valid", "bd_valid"},
        std::pair{"--test", "test"}, std::pair{"--poisoned-test", "bd_test"}}) {
    auto [x, y] = first_rows(tiny + "/data/" + file + ".h5", shape, 300);
    const at::Tensor order = std::get<1>(y.sort(/*stable=*/true, 0, false));
    x = x.index_select(0, order).contiguous();
    y = y.index_select(0, order).contiguous();
    const std::string base = dir + "/" + file;
    write_lab_dataset(base + ".h5", x, y);
    test::write_npz(base + ".npz", x.permute({0, 2, 3, 1}).contiguous().to(at::kByte), y);
    write_class_folders(base, x, y);
    const std::string forms[3] = {base + ".h5", base + ".npz", base};
    for (int i = 0; i < 3; ++i) args[i] += std::string(" ") + flag + " " + q(forms[i]);
  }
  const std::string model = " --model " + q(tiny + "/bd_net.h5");
  json detect[3], compare[3];
  for (int i = 0; i < 3; ++i) {
    // detect takes the clean data as --clean: the validation set.
    const std::string valid = args[i].substr(0, args[i].find(" --poisoned-valid"));
    auto d = test::run_cli("detect --json --quiet --threads 1 --seed 1" + test::kFastNc + model +
                           " --clean" + valid.substr(std::string(" --valid").size()) + " --out " +
                           q(dir + "/nc" + std::to_string(i)));
    ASSERT_EQ(d.exit_code, 0) << d.err;
    detect[i] = data_figures(json::parse(d.out));
    const std::string out = dir + "/cmp" + std::to_string(i);
    auto c = test::run_cli(
        "compare --json --quiet --threads 1 --no-proxy --methods finetune "
        "--epochs 1" +
        model + args[i] + " --out " + q(out));
    ASSERT_EQ(c.exit_code, 0) << c.err;
    compare[i] = data_figures(json::parse(c.out));
  }
  ASSERT_FALSE(detect[0]["labels"].empty()) << detect[0];
  ASSERT_FALSE(compare[0]["rows"].empty()) << compare[0];
  for (int i = 1; i < 3; ++i) {
    EXPECT_EQ(detect[i], detect[0]) << "form " << i;
    EXPECT_EQ(compare[i], compare[0]) << "form " << i;
  }
}

}  // namespace
}  // namespace bdguard
