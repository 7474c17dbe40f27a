// bdguard goodnet: labels on the real fixtures, every metric on a case counted by hand,
// and the manifest.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bdguard/dataset.h"
#include "bdguard/keras.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

// Input (1, 1, 2) -> Flatten -> Dense(3, softmax) with the given 2x3 kernel, no bias.
std::string tiny_model(const std::string& path, const std::vector<float>& kernel) {
  nlohmann::json config = nlohmann::json::parse(R"({"class_name": "Functional", "config": {
    "layers": [
      {"class_name": "InputLayer", "name": "input", "inbound_nodes": [],
       "config": {"batch_input_shape": [null, 1, 1, 2], "name": "input"}},
      {"class_name": "Flatten", "name": "flatten", "inbound_nodes": [[["input", 0, 0, {}]]],
       "config": {"name": "flatten"}},
      {"class_name": "Dense", "name": "output", "inbound_nodes": [[["flatten", 0, 0, {}]]],
       "config": {"name": "output", "units": 3, "activation": "softmax", "use_bias": false}}],
    "input_layers": [["input", 0, 0]], "output_layers": [["output", 0, 0]]}})");
  Model m = keras_model_from_config(config, "test");
  test::set_keras_weights(m, "output", {at::tensor(kernel).reshape({2, 3})});
  save_model(m, path);
  return path;
}

std::string data_file(const std::string& path, const std::vector<std::pair<float, float>>& px,
                      const std::vector<int64_t>& labels) {
  std::vector<float> flat;
  for (auto [a, b] : px) flat.insert(flat.end(), {a, b});
  at::Tensor x = at::tensor(flat).reshape({static_cast<int64_t>(px.size()), 2, 1, 1});
  write_lab_dataset(path, x, at::tensor(labels));
  return path;
}

TEST(GoodNetCli, EveryMetricMatchesACountByHand) {
  std::string d = test::temp_dir();
  // B's scores are (x0, x1, 0), P's are (x0, 0, x1); N = 3.
  std::string b = tiny_model(d + "/b.h5", {1, 0, 0, 0, 1, 0});
  std::string p = tiny_model(d + "/p.h5", {1, 0, 0, 0, 0, 1});
  // Clean: (5,1) true 0: B 0, P 0 -> G 0 (right). (1,5) true 1: B 1, P 2 -> G 3 (alarm).
  //        (5,1) true 2: B 0, P 0 -> G 0 (wrong). (1,5) true 2: B 1, P 2 -> G 3 (alarm).
  std::string clean = data_file(d + "/c.h5", {{5, 1}, {1, 5}, {5, 1}, {1, 5}}, {0, 1, 2, 2});
  // Poisoned, target 1: (1,5) B 1, P 2 -> G 3 (detected), twice; (5,1) and (3,1):
  // B 0, P 0 -> G 0.
  std::string bd = data_file(d + "/bd.h5", {{1, 5}, {1, 5}, {5, 1}, {3, 1}}, {1, 1, 1, 1});
  auto r = test::run_cli("goodnet eval --json --badnet " + b + " --pruned " + p + " --clean " +
                         clean + " --poisoned " + bd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto row = nlohmann::json::parse(r.out)["rows"][0];
  EXPECT_DOUBLE_EQ(row["goodnet_accuracy"].get<double>(), 25.0);  // 1 of 4
  EXPECT_DOUBLE_EQ(row["false_alarm_rate"].get<double>(), 50.0);  // 2 of 4
  EXPECT_DOUBLE_EQ(row["goodnet_asr"].get<double>(), 0.0);        // none labelled 1
  EXPECT_DOUBLE_EQ(row["detection_rate"].get<double>(), 50.0);    // 2 of 4 labelled 3
  EXPECT_DOUBLE_EQ(row["badnet_accuracy"].get<double>(), 50.0);   // rows 1 and 2
  EXPECT_DOUBLE_EQ(row["badnet_asr"].get<double>(), 50.0);        // two 1s
  EXPECT_DOUBLE_EQ(row["pruned_accuracy"].get<double>(), 50.0);   // rows 1 and 4
  EXPECT_DOUBLE_EQ(row["pruned_asr"].get<double>(), 0.0);
  EXPECT_EQ(row["n_clean"], 4);
  EXPECT_EQ(row["n_poisoned"], 4);
}

TEST(GoodNetCli, FixtureLabelsAgreeOrAreN) {
  BDGUARD_REQUIRE_CSAW();
  const std::string dir = test::csaw_dir();
  auto expected = nlohmann::json::parse(test::read_text(dir + "/expected.json"));
  const auto& bad = expected["models"]["lab3_bd_weights.h5"]["predictions"];
  const auto& pruned = expected["models"]["model_X=2.h5"]["predictions"];
  std::string images;
  std::vector<std::string> names;
  for (auto it = bad.begin(); it != bad.end(); ++it) {
    names.push_back(it.key());
    images += " '" + dir + "/images/" + it.key() + "'";
  }
  auto r = test::run_cli("goodnet predict --json --arch deepid --badnet " + dir +
                         "/lab3_bd_weights.h5 --pruned '" + dir + "/model_X=2.h5'" + images);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = nlohmann::json::parse(r.out);
  ASSERT_EQ(out.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    int64_t b = bad[names[i]]["top1"].get<int64_t>();
    int64_t p = pruned[names[i]]["top1"].get<int64_t>();
    EXPECT_EQ(out[i]["label"].get<int64_t>(), b == p ? b : 1283) << names[i];
    EXPECT_EQ(out[i]["backdoor_detected"].get<bool>(), b != p) << names[i];
  }
}

TEST(GoodNetCli, ManifestRoundTripsAndATamperedModelIsRefused) {
  std::string d = test::temp_dir();
  std::string b = tiny_model(d + "/b.h5", {1, 0, 0, 0, 1, 0});
  std::string p = tiny_model(d + "/p.h5", {1, 0, 0, 0, 0, 1});
  std::string clean = data_file(d + "/c.h5", {{5, 1}, {1, 5}}, {0, 1});
  std::string bd = data_file(d + "/bd.h5", {{1, 5}, {5, 1}}, {1, 1});
  ASSERT_EQ(
      test::run_cli("goodnet save --badnet " + b + " --pruned " + p + " --out " + d + "/g.json")
          .exit_code,
      0);
  auto direct = test::run_cli("goodnet eval --json --badnet " + b + " --pruned " + p + " --clean " +
                              clean + " --poisoned " + bd);
  auto via = test::run_cli("goodnet eval --json --goodnet " + d + "/g.json --clean " + clean +
                           " --poisoned " + bd);
  ASSERT_EQ(via.exit_code, 0) << via.err;
  auto a = nlohmann::json::parse(direct.out)["rows"][0],
       c = nlohmann::json::parse(via.out)["rows"][0];
  a.erase("pruned");
  c.erase("pruned");
  EXPECT_EQ(a, c);
  // The manifest keeps paths relative to itself: moving the folder keeps it valid.
  std::filesystem::rename(d, d + "-moved");
  auto moved = test::run_cli("goodnet eval --json --goodnet " + d + "-moved/g.json --clean " + d +
                             "-moved/c.h5 --poisoned " + d + "-moved/bd.h5");
  EXPECT_EQ(moved.exit_code, 0) << moved.err;
  std::ofstream(d + "-moved/p.h5", std::ios::app) << "x";
  auto tampered = test::run_cli("goodnet eval --goodnet " + d + "-moved/g.json --clean " + d +
                                "-moved/c.h5 --poisoned " + d + "-moved/bd.h5");
  EXPECT_EQ(tampered.exit_code, 1);
  EXPECT_NE(tampered.err.find("SHA-256"), std::string::npos) << tampered.err;
  EXPECT_NE(tampered.err.find("p.h5"), std::string::npos) << tampered.err;
  std::filesystem::remove_all(d + "-moved");
}

TEST(GoodNetCli, NetsOfDifferentArchitecturesAreRefused) {
  BDGUARD_REQUIRE_CSAW();
  std::string d = test::temp_dir();
  std::string p = tiny_model(d + "/p.h5", {1, 0, 0, 0, 0, 1});
  auto r2 = test::run_cli("goodnet eval --badnet " + test::csaw_dir() +
                          "/lab3_bd_weights.h5 --arch deepid --pruned " + p + " --clean " + p +
                          " --poisoned " + p);
  EXPECT_EQ(r2.exit_code, 1);
  EXPECT_NE(r2.err.find("input shape"), std::string::npos) << r2.err;
}

}  // namespace
}  // namespace bdguard
