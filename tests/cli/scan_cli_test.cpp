// bdguard scan as a user runs it: on hand-built models whose answer is known, on the
// tests' tiny BadNet and clean model, and on bad input (one `error:` line each).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bdguard/dataset.h"
#include "bdguard/keras.h"
#include "bdguard/model_io.h"
#include "keras_json.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::run_cli;

void expect_one_error_line(const test::CliResult& r) {
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

// input (7, 7, 1) -> flatten -> dense (`classes` logits): label c reads its own band of
// pixels (as tests/unit/mm_bd_test.cpp), and with `backdoor` label 2 also reads pixel
// 0 with weight 20: reachable by a one-pixel patch.
std::string hand_model(const std::string& path, int64_t classes, bool backdoor) {
  json cfg = test::functional(
      {7, 7, 1},
      {test::layer_json("Flatten", "flatten", json::object(), {"input"}),
       test::layer_json("Dense", "out", {{"units", classes}, {"activation", "linear"}},
                        {"flatten"})},
      "out");
  Model m = keras_model_from_config(cfg, "hand");
  at::Tensor kernel = at::zeros({49, classes});
  const int sizes[10] = {2, 3, 4, 5, 6, 2, 3, 4, 5, 2};
  int64_t p = 1;
  for (int64_t c = 0; c < classes; ++c) {
    for (int i = 0; i < sizes[c % 10]; ++i) kernel[p++][c] = 1.0;
  }
  if (backdoor) kernel[0][2] = 20.0;
  test::set_keras_weights(m, "out", {kernel, at::zeros({classes})});
  save_model(m, path);
  return path;
}

// MM-BD short enough for a test; kFast adds what the hand-built models need.
const std::string kFastMm = " --quiet --threads 1 --seed 1 --mm-starts 4 --mm-steps 150 ";
const std::string kFast = kFastMm + "--mm-lr 0.02 --pixel-range 0,1";

TEST(ScanCli, NoDataFindsTheOnePixelBackdoorAndExitsThree) {
  const std::string d = test::temp_dir();
  auto r = run_cli("scan --no-data --exit-code --calibration none --model " +
                   hand_model(d + "/bd.h5", 10, true) + kFast + " --out " + d + "/out");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out.rfind("backdoored: yes (p = ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("target 2;"), std::string::npos) << r.out;
  json doc = json::parse(test::read_text(d + "/out/scan.json"));
  for (const char* key : {"probability", "backdoored", "threshold", "target", "source", "detectors",
                          "calibration", "settings", "timings"}) {
    EXPECT_TRUE(doc.contains(key)) << key;
  }
  EXPECT_EQ(doc.size(), 9u);
  EXPECT_EQ(doc["target"], 2);
  EXPECT_TRUE(doc["source"].is_null());
  EXPECT_EQ(doc["threshold"], 0.5);
  ASSERT_EQ(doc["detectors"].size(), 1u);  // --no-data: MM-BD alone
  const json& mm = doc["detectors"][0];
  EXPECT_EQ(mm["name"], "mm-bd");
  EXPECT_LT(mm["p_value"].get<double>(), 1e-6);
  EXPECT_EQ(mm["labels"].size(), 10u);
  EXPECT_NEAR(mm["labels"][2]["max_margin"].get<double>(), 24, 1e-3);
  EXPECT_TRUE(doc["calibration"]["file"].is_null());
  EXPECT_TRUE(doc["settings"]["clean"].is_null());
  EXPECT_FALSE(fs::exists(d + "/out/triggers"));
}

TEST(ScanCli, NoDataOnAModelWithoutBackdoorSaysNo) {
  const std::string d = test::temp_dir();
  auto r = run_cli("scan --no-data --exit-code --calibration none --model " +
                   hand_model(d + "/clean.h5", 10, false) + kFast + " --out " + d + "/out");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("backdoored: no (p = ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("uncalibrated"), std::string::npos) << r.out;
}

// The shipped default (models/scan-calibration.json, K-Arm alone) decides which
// detectors `auto` runs with data; without data no calibration ships (MM-BD alone does
// not rank the calibration zoo: docs/detectors.md), so --no-data is uncalibrated.
TEST(ScanCli, WithoutCalibrationFlagUsesTheShippedOneForItsDetectors) {
  BDGUARD_REQUIRE_TINY();
  const std::string d = test::temp_dir();
  const std::string shipped = std::string(BDGUARD_SOURCE_DIR) + "/models/scan-calibration.json";
  ASSERT_TRUE(fs::exists(shipped)) << shipped;
  const std::string tiny = test::tiny_dir("badnet");
  auto r = run_cli("scan --json --quiet --threads 1 --seed 1 --k-arm-steps 200 --model " + tiny +
                   "/bd_net.h5 --clean " + tiny + "/data/valid.h5 --out " + d + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["calibration"]["file"], shipped);
  EXPECT_EQ(doc["calibration"]["default"], true);
  EXPECT_EQ(doc["calibration"]["trained_on"]["zoo"]["options"]["seed"], 5);
  ASSERT_EQ(doc["detectors"].size(), 1u);
  EXPECT_EQ(doc["detectors"][0]["name"], "k-arm");
  // Its K-Arm reference is of 10-class Fashion-MNIST models: it holds for this one.
  EXPECT_EQ(doc["calibration"]["reference"]["applied"], true) << doc["calibration"];
  auto none = run_cli("scan --no-data --json --model " + hand_model(d + "/bd.h5", 10, true) +
                      kFast + " --out " + d + "/none");
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_TRUE(json::parse(none.out)["calibration"]["file"].is_null()) << none.out;
}

TEST(ScanCli, CalibrationFileGivesTheLogisticProbability) {
  const std::string d = test::temp_dir();
  // -2 + 1 * score: the one-pixel backdoor's score (-log10 p > 6) makes it > 0.98.
  std::ofstream(d + "/calib.json")
      << R"({"format": "bdguard-scan-calibration", "version": 1, "detectors": ["mm-bd"],
             "transform": "identity", "weights": [1.0], "intercept": -2.0,
             "trained_on": "hand-made"})";
  auto r = run_cli("scan --no-data --json --calibration " + d + "/calib.json --model " +
                   hand_model(d + "/bd.h5", 10, true) + kFast + " --out " + d + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  const double score = doc["detectors"][0]["score"].get<double>();
  EXPECT_NEAR(doc["probability"].get<double>(), 1 / (1 + std::exp(2.0 - score)), 1e-12);
  EXPECT_EQ(doc["calibration"]["trained_on"], "hand-made");
  EXPECT_EQ(doc["calibration"]["sha256"].get<std::string>().size(), 64u);
}

// A K-Arm calibration whose reference is of `classes`-class models of 1x28x28 images,
// every label's clean trigger half the image: probability sigmoid(-1 + score).
std::string reference_calibration(const std::string& dir, int classes) {
  json sizes = json::array();
  for (int i = 0; i < classes; ++i) sizes.push_back(0.5);
  const json doc = {
      {"format", "bdguard-scan-calibration"},
      {"version", 1},
      {"detectors", {"k-arm"}},
      {"transform", "identity"},
      {"weights", {1.0}},
      {"intercept", -1.0},
      {"reference",
       {{"k-arm",
         {{"classes", classes}, {"input", {1, 28, 28}}, {"sizes", sizes}, {"models", 3}}}}},
      {"trained_on", "hand-made"}};
  const std::string file = dir + "/calib_" + std::to_string(classes) + ".json";
  std::ofstream(file) << doc.dump();
  return file;
}

const std::string kFastKArm = " --threads 1 --k-arm-steps 60 --k-arm-min-steps 8 ";

TEST(ScanCli, KArmIsScoredAgainstTheCalibrationsPerLabelReference) {
  BDGUARD_REQUIRE_TINY();
  const std::string d = test::temp_dir();
  const std::string tiny = test::tiny_dir("badnet");
  auto r = run_cli("scan --json --quiet" + kFastKArm + "--calibration " +
                   reference_calibration(d, 10) + " --model " + tiny + "/bd_net.h5 --clean " +
                   tiny + "/data/valid.h5 --out " + d + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  const json& ref = doc["calibration"]["reference"];
  ASSERT_EQ(ref["applied"], true) << doc["calibration"];
  // The largest ln(0.5 / size) over the universal arms, and its label the target.
  double best = -INFINITY;
  int64_t label = -1;
  for (const auto& arm : doc["detectors"][0]["labels"]) {
    if (!arm["source"].is_null()) continue;
    const double s = std::log(0.5 / arm["size"].get<double>());
    if (s > best) best = s, label = arm["target"].get<int64_t>();
  }
  if (doc["detectors"][0]["source"].is_null()) {
    EXPECT_NEAR(ref["score"].get<double>(), best, 1e-12);
    EXPECT_EQ(ref["target"], label);
  }
  EXPECT_NEAR(doc["probability"].get<double>(),
              1 / (1 + std::exp(1.0 - ref["score"].get<double>())), 1e-12);
  EXPECT_EQ(doc["target"], ref["target"]);
}

TEST(ScanCli, AReferenceOfAnotherTaskFallsBackToKArmsOwnScore) {
  BDGUARD_REQUIRE_TINY();
  const std::string d = test::temp_dir();
  const std::string tiny = test::tiny_dir("badnet");
  auto r =
      run_cli("scan" + kFastKArm + "--calibration " + reference_calibration(d, 3) + " --model " +
              tiny + "/bd_net.h5 --clean " + tiny + "/data/valid.h5 --out " + d + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("on clean models"), std::string::npos) << r.out;
  const json doc = json::parse(test::read_text(d + "/out/scan.json"));
  const json& ref = doc["calibration"]["reference"];
  EXPECT_EQ(ref["applied"], false);
  EXPECT_NE(ref["why"].get<std::string>().find("10 classes"), std::string::npos) << ref;
  const double score = doc["detectors"][0]["score"].get<double>();
  EXPECT_NEAR(doc["probability"].get<double>(), 1 / (1 + std::exp(1.0 - score)), 1e-12);
}

TEST(ScanCli, TinyBadNetRunsEveryDetectorAndWritesTriggers) {
  BDGUARD_REQUIRE_TINY();
  const std::string d = test::temp_dir();
  const std::string tiny = test::tiny_dir("badnet");
  auto r = run_cli("scan --k-arm-steps 200 --detectors mm-bd,nc,k-arm" + kFastMm + test::kFastNc +
                   "--model " + tiny + "/bd_net.h5 --clean " + tiny + "/data/valid.h5 --out " + d +
                   "/out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("backdoored: ", 0), 0u) << r.out;
  json doc = json::parse(test::read_text(d + "/out/scan.json"));
  ASSERT_EQ(doc["detectors"].size(), 3u);
  EXPECT_EQ(doc["detectors"][0]["name"], "mm-bd");
  EXPECT_EQ(doc["detectors"][1]["name"], "nc");
  EXPECT_EQ(doc["detectors"][2]["name"], "k-arm");
  // Neural Cleanse's smallest trigger and K-Arm's are the BadNet's target, 3.
  EXPECT_EQ(doc["detectors"][1]["target"], 3);
  EXPECT_EQ(doc["detectors"][2]["target"], 3);
  EXPECT_TRUE(doc["detectors"][2]["p_value"].is_null());
  EXPECT_TRUE(doc["detectors"][2]["source"].is_null());  // a universal trigger
  EXPECT_TRUE(fs::exists(d + "/out/triggers/label_3_trigger.png"));
  for (const char* f : {"mask", "pattern", "trigger", "example"}) {
    EXPECT_TRUE(fs::exists(d + "/out/triggers/k-arm_label_3_" + std::string(f) + ".png")) << f;
  }
}

TEST(ScanCli, TinyCleanModelWithoutData) {
  BDGUARD_REQUIRE_TINY();
  const std::string d = test::temp_dir();
  auto r = run_cli("scan --no-data" + kFastMm + "--model " + test::tiny_dir("clean") +
                   "/bd_net.h5 --out " + d + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("backdoored: ", 0), 0u) << r.out;
  json doc = json::parse(test::read_text(d + "/out/scan.json"));
  EXPECT_EQ(doc["detectors"].size(), 1u);
}

TEST(ScanCli, BadInputIsOneErrorLine) {
  const std::string d = test::temp_dir();
  const std::string bd = hand_model(d + "/bd.h5", 10, true);
  const std::string base = " --quiet --out " + d + "/out";
  // Neither --clean nor --no-data.
  expect_one_error_line(run_cli("scan --model " + bd + base + "1"));
  // A detector that needs data, without data.
  expect_one_error_line(run_cli("scan --no-data --detectors nc --model " + bd + base + "2"));
  expect_one_error_line(run_cli("scan --no-data --detectors k-arm --model " + bd + base + "2"));
  expect_one_error_line(run_cli("scan --no-data --detectors mm-bd,k9 --model " + bd + base + "3"));
  // A model of two classes, and one of a single class.
  expect_one_error_line(
      run_cli("scan --no-data --model " + hand_model(d + "/two.h5", 2, false) + base + "4"));
  expect_one_error_line(
      run_cli("scan --no-data --model " + hand_model(d + "/one.h5", 1, false) + base + "5"));
  // Data whose images do not match the model's input.
  write_lab_dataset(d + "/small.h5", at::zeros({4, 1, 5, 5}), at::zeros({4}, at::kLong));
  expect_one_error_line(run_cli("scan --clean " + d + "/small.h5 --model " + bd + base + "6"));
  // A calibration file that is not one, and one fitted for other detectors.
  std::ofstream(d + "/notjson.json") << "not json";
  expect_one_error_line(
      run_cli("scan --no-data --calibration " + d + "/notjson.json --model " + bd + base + "7"));
  std::ofstream(d + "/other.json")
      << R"({"format": "bdguard-scan-calibration", "version": 1, "detectors": ["mm-bd", "nc"],
             "transform": "identity", "weights": [1.0, 1.0], "intercept": 0,
             "trained_on": "x"})";
  expect_one_error_line(
      run_cli("scan --no-data --calibration " + d + "/other.json --model " + bd + base + "8"));
  // Nothing was written for any of them.
  for (int i = 1; i <= 8; ++i)
    EXPECT_FALSE(fs::exists(d + "/out" + std::to_string(i) + "/scan.json"));
}

}  // namespace
}  // namespace bdguard
