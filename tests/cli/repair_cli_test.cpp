// bdguard repair as a user runs it: on the tiny BadNet trained at build time (a 4x4
// white square at the bottom right sends every image to label 3), and on bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "bdguard/fileio.h"
#include "bdguard/model_io.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::run_cli;

using test::kFastNc;

TEST(RepairCli, TinyBadNetPicksByTheRuleAndSavesTheInputsFormat) {
  BDGUARD_REQUIRE_TINY();
  const std::string d = test::tiny_dir("badnet"), out = test::temp_dir() + "/repaired.h5";
  auto r = run_cli(
      "repair --json --quiet --threads 2 --seed 1 --methods clp,nc-unlearn --set "
      "epochs=2" +
      kFastNc + "--model " + d + "/bd_net.h5 --clean " + d + "/data/valid.h5 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  for (const char* key : {"method", "clean_accuracy", "proxy_asr", "accuracy_drop", "candidates",
                          "output", "sha256", "seconds"}) {
    EXPECT_TRUE(doc.contains(key)) << key << " in " << r.out;
  }
  ASSERT_EQ(doc["candidates"].size(), 2u);
  for (const auto& c : doc["candidates"]) {
    for (const char* key : {"method", "clean_accuracy", "proxy_asr", "seconds"}) {
      EXPECT_TRUE(c.contains(key)) << key;
    }
  }
  // The documented rule: the lowest proxy ASR among those within 3 points.
  const double base = doc["before"]["clean_accuracy"];
  double best = 1e9;
  std::string want;
  for (const auto& c : doc["candidates"]) {
    if (!c["ok"].get<bool>() || base - c["clean_accuracy"].get<double>() > 3) continue;
    if (c["proxy_asr"].get<double>() < best) {
      best = c["proxy_asr"];
      want = c["method"];
    }
  }
  ASSERT_FALSE(want.empty()) << r.out;
  EXPECT_EQ(doc["method"], want);
  EXPECT_DOUBLE_EQ(doc["proxy_asr"].get<double>(), best);
  EXPECT_NEAR(doc["accuracy_drop"].get<double>(), base - doc["clean_accuracy"].get<double>(), 1e-9);
  // nc-unlearn unlearns the very triggers the proxy stamps: the BadNet's proxy ASR is high.
  EXPECT_GT(doc["before"]["proxy_asr"].get<double>(), 50) << r.out;
  EXPECT_EQ(doc["output"], out);
  EXPECT_EQ(doc["sha256"], sha256_file(out));
  EXPECT_EQ(load_model(out).num_classes(), 10);
}

TEST(RepairCli, BadInputIsOneErrorLine) {
  BDGUARD_REQUIRE_TINY();
  const std::string d = test::tiny_dir("badnet"), out = test::temp_dir() + "/r.h5";
  const std::string model = " --model " + d + "/bd_net.h5";
  const std::string clean = " --clean " + d + "/data/valid.h5";
  struct Case {
    std::string args;
    int code;
    const char* fragment;
  };
  const Case cases[] = {
      {model + " --out " + out, 2, "--clean"},                                 // no clean data
      {model + clean + " --out " + out + " --max-drop 200", 2, "--max-drop"},  // out of range
      {model + clean + " --out " + out + " --methods fine-tune-typo", 1, "fine-tune-typo"},
      {model + clean + " --out " + test::temp_dir() + "/r.onnx", 1, ".h5"},  // not its format
  };
  for (const auto& c : cases) {
    auto r = run_cli("repair --quiet" + c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

}  // namespace
}  // namespace bdguard
