// bdguard zoo make, run as a user would: a tiny zoo (few images, one epoch, no quality
// bar), resumed, and taken as it is by campaign init.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "bdguard/badnets.h"
#include "bdguard/fileio.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

// Three models of 300 images, one epoch: a clean one and two BadNets (patch and
// all-to-all), every model accepted (--min-asr 0 --max-drop 100).
std::string tiny_zoo_flags(const std::string& out) {
  return "zoo make --out " + out +
         " --models 3 --seed 3 --kinds clean,badnets,all-to-all --archs fmnist "
         "--clean-fraction 0.34 --max-train 300 --epochs 1 --min-asr 0 --max-drop 100 "
         "--jobs 2 --threads 1 --quiet";
}

TEST(CliZoo, MakesModelsDataAndGroundTruthThatCampaignTakes) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir(), zoo = dir + "/zoo";
  auto r = test::run_cli(tiny_zoo_flags(zoo));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_text(zoo + "/ground_truth.csv")
                .find("model,backdoored,target,kind,arch,poison_rate,asr,criteria_met\n"),
            0u);
  const auto doc = nlohmann::json::parse(test::read_text(zoo + "/zoo.json"));
  ASSERT_EQ(doc["models"].size(), 3u);
  int backdoored = 0;
  for (const auto& m : doc["models"]) {
    EXPECT_TRUE(fs::exists(zoo + "/" + m["file"].get<std::string>())) << m.dump();
    EXPECT_EQ(sha256_file(zoo + "/" + m["file"].get<std::string>()), m["sha256"]);
    if (m["kind"] != "clean") {
      ++backdoored;
      EXPECT_TRUE(fs::exists(zoo + "/" + m["bd_test"].get<std::string>()));
    }
    if (m["kind"] == "all-to-all") {
      EXPECT_TRUE(m["target"].is_null());
    }
  }
  EXPECT_EQ(backdoored, 2);
  EXPECT_TRUE(fs::exists(zoo + "/data/valid.h5"));
  EXPECT_TRUE(fs::exists(zoo + "/data/test.h5"));
  EXPECT_FALSE(fs::exists(zoo + "/work/model_000"));
  // The ground truth as it is, extra columns and `all` included.
  auto c = test::run_cli("campaign init --out " + dir + "/c --models " + zoo +
                         "/models --ground-truth " + zoo + "/ground_truth.csv --clean " + zoo +
                         "/data/valid.h5");
  EXPECT_EQ(c.exit_code, 0) << c.err;
}

TEST(CliZoo, ResumingTrainsNothingAgain) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string zoo = test::work_dir() + "/zoo";
  ASSERT_EQ(test::run_cli(tiny_zoo_flags(zoo)).exit_code, 0);
  const auto before = fs::last_write_time(zoo + "/records/model_001.json");
  fs::remove(zoo + "/zoo.json");
  auto r = test::run_cli(tiny_zoo_flags(zoo));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::last_write_time(zoo + "/records/model_001.json"), before);
  EXPECT_TRUE(fs::exists(zoo + "/zoo.json"));
  auto other = test::run_cli(tiny_zoo_flags(zoo) + " --poison-rates 0.2");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("poison_rates"), std::string::npos) << other.err;
}

TEST(CliZoo, UnknownKindIsOneErrorLine) {
  auto r = test::run_cli("zoo make --out " + test::work_dir() + "/z --kinds clean,nope");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
}  // namespace bdguard
