// bdguard defend nad / i-bau as a user runs them: on the tiny Keras BadNet (--json
// keys, the output file) and on a real PyTorch ONNX export (the output stays ONNX).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bdguard/dataset.h"
#include "bdguard/model_io.h"
#include "bdguard/train.h"
#include "defend_fixture.h"
#include "onnx_fixtures.h"
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

void expect_defend_json(const std::string& method, const std::string& flags) {
  const std::string dir = test::temp_dir();
  const std::string out = dir + "/" + method + ".h5";
  auto r = test::run_cli("defend " + method + " --json --quiet --no-proxy --threads 2 --model " +
                         test::tiny_dir("badnet") + "/bd_net.h5 --clean " +
                         test::write_tiny_rows("valid.h5", 600) + " --poisoned " +
                         test::write_tiny_rows("bd_valid.h5", 300) + " --out " + out + " " + flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  EXPECT_EQ(doc["method"], method);
  for (const char* key : {"clean_accuracy", "asr", "seconds"}) {
    EXPECT_TRUE(doc[key].is_number()) << key << ": " << doc.dump();
  }
  EXPECT_EQ(doc["output"], out);
  EXPECT_EQ(doc["sha256"].get<std::string>().size(), 64u);
  EXPECT_TRUE(std::filesystem::exists(out));
  EXPECT_EQ(load_model(out).format, ModelFormat::kKeras);
}

TEST(DefendNadIbauCli, NadJsonHasTheKeys) {
  BDGUARD_REQUIRE_TINY();
  expect_defend_json("nad", "--nad-teacher-epochs 1 --epochs 1 --nad-betas 500,1000");
}

TEST(DefendNadIbauCli, IbauJsonHasTheKeys) {
  BDGUARD_REQUIRE_TINY();
  expect_defend_json("i-bau", "--ibau-rounds 1 --ibau-k 3 --pixel-range 0,255");
}

TEST(DefendNadIbauCli, OnnxModelGivesOnnx) {
  REQUIRE_ONNX_FIXTURES();
  LoadOptions lo;
  lo.preprocess.scale = 1.0 / 255;
  const Model m = load_model(test::cnn(), {}, lo);
  const std::string valid = test::write_set(m, test::temp_dir() + "/valid.h5", 1, 200, false);
  const std::string bd_valid = test::write_set(m, test::temp_dir() + "/bd_valid.h5", 2, 100, true);
  const std::string base =
      "defend --json --quiet --no-proxy --threads 2 --input-scale 0.00392156862745098 "
      "--model " +
      test::cnn() + " --clean " + valid + " --poisoned " + bd_valid + " --out " + test::temp_dir();
  for (const std::string method : {"nad", "i-bau"}) {
    const std::string flags = method == "nad" ? " --nad-teacher-epochs 1 --epochs 1"
                                              : " --ibau-rounds 1 --train-batch 40";
    auto r = test::run_cli(base + "/" + method + ".onnx" + flags + " " + method);
    ASSERT_EQ(r.exit_code, 0) << method << ": " << r.err;
    const json doc = json::parse(r.out);
    EXPECT_EQ(doc["method"], method);
    const Model back = load_model(doc["output"].get<std::string>(), {}, lo);
    EXPECT_EQ(back.format, ModelFormat::kOnnx) << method;
    EXPECT_EQ(back.size(), m.size()) << method;
  }
}

}  // namespace
}  // namespace bdguard
