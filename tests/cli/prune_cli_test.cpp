// bdguard prune end to end on lab-format data built from the real fixture faces.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bdguard/keras.h"
#include "bdguard/prune.h"
#include "data/synthetic_faces.h"
#include "hdf5/h5.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

struct Fixture {
  std::string dir, valid, bd_valid, test, bd_test;
};

Fixture make_data(int64_t n) {
  Fixture f;
  f.dir = test::temp_dir();
  std::tie(f.valid, f.bd_valid) = synthetic::write_pair(test::csaw_dir(), f.dir, "valid", n, 1);
  std::tie(f.test, f.bd_test) = synthetic::write_pair(test::csaw_dir(), f.dir, "test", n, 7);
  return f;
}

std::string bytes_of(const std::string& path) { return test::read_text(path); }

// Every byte of `out` equals `in` except inside the raw data of the listed datasets.
void expect_only_datasets_changed(const std::string& in, const std::string& out,
                                  const std::vector<std::string>& datasets) {
  std::string a = bytes_of(in), b = bytes_of(out);
  ASSERT_EQ(a.size(), b.size());
  h5::File f = h5::File::open(out);
  for (const auto& d : datasets) {
    int64_t off = h5::raw_data_offset(f, d);
    ASSERT_GE(off, 0) << d;
    auto info = h5::dataset_info(f, d);
    int64_t n = 4;
    for (int64_t x : info.dims) n *= x;
    a.replace(static_cast<size_t>(off), static_cast<size_t>(n), static_cast<size_t>(n), '\0');
    b.replace(static_cast<size_t>(off), static_cast<size_t>(n), static_cast<size_t>(n), '\0');
  }
  EXPECT_TRUE(a == b) << out << " differs from " << in << " outside " << datasets.size()
                      << " datasets";
}

std::vector<int64_t> sorted_prefix(const std::vector<int64_t>& order, int k) {
  std::vector<int64_t> v(order.begin(), order.begin() + k);
  std::sort(v.begin(), v.end());
  return v;
}

TEST(PruneCli, WholeSweepOnFixtureFacesWritesCurveAndModels) {
  BDGUARD_REQUIRE_CSAW();
  Fixture d = make_data(60);
  const std::string model = test::csaw_dir() + "/lab3_bd_weights.h5";
  const std::string out = d.dir + "/out";
  auto r = test::run_cli("prune --quiet --model " + model + " --arch deepid --clean " + d.valid +
                         " --poisoned " + d.bd_valid + " --test " + d.test + " --poisoned-test " +
                         d.bd_test + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::istringstream csv(test::read_text(out + "/sweep.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "step,channel,fraction_pruned,valid_accuracy,valid_asr,test_accuracy,test_asr");
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 61);  // step 0 and 60 channels

  auto doc = nlohmann::json::parse(test::read_text(out + "/sweep.json"));
  EXPECT_EQ(doc["layer"], "conv_3");
  EXPECT_EQ(doc["cut_layer"], "pool_3");
  EXPECT_EQ(doc["pruning_order"].size(), 60u);
  EXPECT_EQ(doc["mean_activation"].size(), 60u);
  auto order = doc["pruning_order"].get<std::vector<int64_t>>();
  ASSERT_EQ(doc["saved_models"].size(), 3u);
  for (const auto& s : doc["saved_models"]) {
    if (!s["reached"].get<bool>()) continue;
    const std::string file = out + "/" + s["file"].get<std::string>();
    ASSERT_TRUE(std::filesystem::exists(file)) << file;
    EXPECT_GE(s["valid_drop"].get<double>(), s["drop"].get<double>());
    // Weights-only in, weights-only out; only conv_3's kernel and bias changed.
    expect_only_datasets_changed(model, file, {"/conv_3/conv_3/kernel:0", "/conv_3/conv_3/bias:0"});
    Model m = load_model(file, {"deepid", ""});
    EXPECT_EQ(test::zeros_of(m, "conv_3"), sorted_prefix(order, s["step"].get<int>()));
  }
  EXPECT_FALSE(doc["goodnet"].empty());
}

TEST(PruneCli, FullModelInGivesFullModelOut) {
  BDGUARD_REQUIRE_CSAW();
  Fixture d = make_data(40);
  const std::string model = test::csaw_dir() + "/model_X=2.h5";
  const std::string out = d.dir + "/out";
  auto r = test::run_cli("prune --quiet --model '" + model + "' --clean " + d.valid +
                         " --poisoned " + d.bd_valid + " --drops 0.1 --out " + out + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  // The 45 channels pruned already have mean activation 0: they come first.
  auto order = doc["pruning_order"].get<std::vector<int64_t>>();
  Model original = load_model(model);
  auto already = test::zeros_of(original, "conv_3");
  EXPECT_EQ(sorted_prefix(order, 45), already);
  const auto& s = doc["saved_models"][0];
  ASSERT_TRUE(s["reached"].get<bool>()) << "losing one image of 40 is a 2.5-point drop";
  {
    const std::string file = out + "/model_X=0.1.h5";
    h5::File f = h5::File::open(file);
    EXPECT_TRUE(h5::has_attr(f, "/", "model_config"));
    expect_only_datasets_changed(
        model, file,
        {"/model_weights/conv_3/conv_3/kernel:0", "/model_weights/conv_3/conv_3/bias:0"});
  }
}

TEST(PruneCli, SweepFilesAreIdenticalForAnyThreadCount) {
  BDGUARD_REQUIRE_CSAW();
  Fixture d = make_data(40);
  const std::string model = test::csaw_dir() + "/lab3_bd_weights.h5";
  std::string base = "prune --quiet --model " + model + " --arch deepid --clean " + d.valid +
                     " --poisoned " + d.bd_valid + " --out ";
  ASSERT_EQ(test::run_cli(base + d.dir + "/t1 --threads 1").exit_code, 0);
  ASSERT_EQ(test::run_cli(base + d.dir + "/t2 --threads 2").exit_code, 0);
  EXPECT_EQ(test::read_text(d.dir + "/t1/sweep.csv"), test::read_text(d.dir + "/t2/sweep.csv"));
  auto j1 = nlohmann::json::parse(test::read_text(d.dir + "/t1/sweep.json"));
  auto j2 = nlohmann::json::parse(test::read_text(d.dir + "/t2/sweep.json"));
  j1.erase("timings");
  j2.erase("timings");
  EXPECT_EQ(j1.dump(), j2.dump());
  for (const char* f : {"model_X=2.h5", "model_X=4.h5", "model_X=10.h5"}) {
    EXPECT_EQ(test::read_text(d.dir + "/t1/" + f), test::read_text(d.dir + "/t2/" + f)) << f;
  }
}

TEST(PruneCli, RefusesANonEmptyOutputFolderWithoutForce) {
  BDGUARD_REQUIRE_CSAW();
  Fixture d = make_data(10);
  const std::string out = d.dir + "/out";
  std::filesystem::create_directories(out);
  std::ofstream(out + "/keep.txt") << "mine";
  std::string cmd = "prune --quiet --model " + test::csaw_dir() +
                    "/lab3_bd_weights.h5 --arch deepid --clean " + d.valid + " --poisoned " +
                    d.bd_valid + " --out " + out;
  auto r = test::run_cli(cmd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_text(out + "/keep.txt"), "mine");
  EXPECT_EQ(test::run_cli(cmd + " --force").exit_code, 0);
}

TEST(PruneCli, LayerMustNameAConvOrALinearLayer) {
  BDGUARD_REQUIRE_CSAW();
  Fixture d = make_data(10);
  auto r = test::run_cli("prune --quiet --model " + test::csaw_dir() +
                         "/lab3_bd_weights.h5 --arch deepid --clean " + d.valid + " --poisoned " +
                         d.bd_valid + " --layer pool_3 --out " + d.dir + "/out");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: "), std::string::npos);
  EXPECT_NE(r.err.find("a Conv, Gemm or MatMul node"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pool_3"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(d.dir + "/out")) << "refused before writing";
}

TEST(PruneCli, DenseLayerPrunesItsInputFeatures) {
  // fc_1 (a Dense) reads pool_3's 5 x 4 x 60 = 1200 values: --layer fc_1 prunes those
  // features, zeroing the kernel row each one meets, and only fc_1's kernel changes.
  BDGUARD_REQUIRE_CSAW();
  Fixture d = make_data(20);
  const std::string model = test::csaw_dir() + "/lab3_bd_weights.h5";
  auto r = test::run_cli("prune --quiet --model " + model + " --arch deepid --clean " + d.valid +
                         " --poisoned " + d.bd_valid +
                         " --layer fc_1 --stop-drop 3 --drops 2 "
                         "--out " +
                         d.dir + "/out --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["channels"], 1200);
  EXPECT_EQ(doc["target"]["kind"], "linear_input_features");
  EXPECT_EQ(doc["cut_layer"], "flatten_1");
  const auto& s = doc["saved_models"][0];
  if (s["reached"].get<bool>()) {
    const std::string file = d.dir + "/out/" + s["file"].get<std::string>();
    expect_only_datasets_changed(model, file, {"/fc_1/fc_1/kernel:0"});
  }
}

}  // namespace
}  // namespace bdguard
