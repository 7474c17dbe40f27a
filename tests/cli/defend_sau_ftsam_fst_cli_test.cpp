// sau, ft-sam and fst through bdguard compare, one epoch each: on the tiny Keras BadNet
// (every row defended, each model saved as Keras with the BadNet's graph) and on a real
// PyTorch ONNX export (the models stay ONNX).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bdguard/model_io.h"
#include "defend_fixture.h"
#include "onnx_fixtures.h"
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

const char* kMethods = "sau,ft-sam,fst";

// Runs compare on the four data files with the three methods; returns compare.json.
json compare_three(const std::string& model_flags, const std::string& valid,
                   const std::string& bd_valid, const std::string& test, const std::string& bd_test,
                   const std::string& out) {
  auto r =
      test::run_cli("compare --quiet --threads 2 --epochs 1 --methods " + std::string(kMethods) +
                    test::kFastNc + model_flags + " --valid " + valid + " --poisoned-valid " +
                    bd_valid + " --test " + test + " --poisoned-test " + bd_test + " --out " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? json::parse(test::read_text(out + "/compare.json")) : json();
}

void expect_rows_saved_as(const json& doc, const std::string& out, const Model& badnet,
                          ModelFormat format, const LoadOptions& lo = {}) {
  ASSERT_EQ(doc["rows"].size(), 3u) << doc.dump();
  for (const auto& row : doc["rows"]) {
    const std::string method = row["method"].get<std::string>();
    EXPECT_TRUE(row["ok"].get<bool>()) << method << ": " << row.dump();
    EXPECT_EQ(row["figures"]["epochs_run"], 1) << method;
    const Model back = load_model(out + "/" + row["model"].get<std::string>(), {}, lo);
    EXPECT_EQ(back.format, format) << method;
    EXPECT_EQ(back.size(), badnet.size()) << method;
  }
}

TEST(DefendSauFtSamFstCli, CompareOnTheTinyKerasBadNet) {
  BDGUARD_REQUIRE_TINY();
  // 600 clean and 300 poisoned images, as validation and as test data.
  const std::string d = test::tiny_dir("badnet"), out = test::temp_dir() + "/cmp";
  const std::string valid = test::write_tiny_rows("valid.h5", 600);
  const std::string bd_valid = test::write_tiny_rows("bd_valid.h5", 300);
  const json doc =
      compare_three(" --model " + d + "/bd_net.h5", valid, bd_valid, valid, bd_valid, out);
  expect_rows_saved_as(doc, out, load_model(d + "/bd_net.h5"), ModelFormat::kKeras);
  for (const auto& row : doc["rows"]) {
    EXPECT_EQ(row["model"], "models/" + row["method"].get<std::string>() + ".h5");
  }
}

TEST(DefendSauFtSamFstCli, CompareOnAnOnnxModelGivesOnnx) {
  REQUIRE_ONNX_FIXTURES();
  LoadOptions lo;
  lo.preprocess.scale = 1.0 / 255;
  const Model m = load_model(test::cnn(), {}, lo);
  const std::string dir = test::work_dir();
  const std::string valid = test::write_set(m, dir + "/valid.h5", 1, 200, false);
  const std::string bd_valid = test::write_set(m, dir + "/bd_valid.h5", 2, 100, true);
  const std::string out = test::temp_dir() + "/cmp";
  const json doc =
      compare_three(" --train-batch 40 --input-scale 0.00392156862745098 --model " + test::cnn(),
                    valid, bd_valid, valid, bd_valid, out);
  expect_rows_saved_as(doc, out, m, ModelFormat::kOnnx, lo);
}

}  // namespace
}  // namespace bdguard
