// bdguard attack badnets, finetune and demo, run as a user would.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bdguard/badnets.h"
#include "bdguard/fileio.h"
#include "bdguard/keras.h"
#include "bdguard/prune.h"
#include "model_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

// Two training steps on 256 images: enough to exercise every output.
test::CliResult tiny_attack(const std::string& out) {
  return test::run_cli("attack badnets --out " + out +
                       " --max-train 256 --max-steps 2 --threads 1 --quiet");
}

TEST(CliAttack, WritesModelDataAndRecordAndRepeatsByteForByte) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  ASSERT_EQ(tiny_attack(dir + "/a").exit_code, 0);
  ASSERT_EQ(tiny_attack(dir + "/b").exit_code, 0);
  for (const char* f : {"bd_net.h5", "data/valid.h5", "data/test.h5", "data/bd_valid.h5",
                        "data/bd_test.h5", "example_poisoned.png"}) {
    ASSERT_TRUE(fs::exists(dir + "/a/" + f)) << f;
    EXPECT_EQ(sha256_file(dir + "/a/" + f), sha256_file(dir + "/b/" + f)) << f;
  }
  auto record = nlohmann::json::parse(test::read_text(dir + "/a/attack.json"));
  EXPECT_NE(record["command"].get<std::string>().find("--seed 1 --threads 1"), std::string::npos);
  EXPECT_EQ(record["n_valid"], 5000);
  EXPECT_EQ(record["n_test"], 5000);
  EXPECT_EQ(record["n_poisoned_train"], 26);  // round(0.1 * 256)
  Model m = load_model(dir + "/a/bd_net.h5");
  EXPECT_GE(m.find("conv_3"), 0);
}

TEST(CliFinetune, WritesTheSameStructureAndReportsBeforeAndAfter) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  ASSERT_EQ(tiny_attack(dir).exit_code, 0);
  auto r = test::run_cli(
      "finetune --model " + dir + "/bd_net.h5 --clean " + dir + "/data/valid.h5 --poisoned " + dir +
      "/data/bd_valid.h5 --holdout 0.9 --epochs 1 --threads 1 --json --out " + dir + "/ft.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["n_holdout"], 4500);
  EXPECT_EQ(doc["n_train"], 500);
  EXPECT_TRUE(doc["after"]["asr"].is_number());
  Model in = load_model(dir + "/bd_net.h5"), out = load_model(dir + "/ft.h5");
  ASSERT_EQ(in.size(), out.size());
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(in.node(i).name, out.node(i).name);
  EXPECT_NE(sha256_file(dir + "/bd_net.h5"), sha256_file(dir + "/ft.h5"));
}

TEST(CliPruneFinetune, EverySavedModelIsFinePrunedWithItsChannelsStillPruned) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  ASSERT_EQ(tiny_attack(dir).exit_code, 0);
  auto r = test::run_cli("prune --model " + dir + "/bd_net.h5 --clean " + dir +
                         "/data/valid.h5 --poisoned " + dir + "/data/bd_valid.h5 --out " + dir +
                         "/prune --drops 1 --finetune --epochs 1 --holdout 0.9 --threads 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  ASSERT_TRUE(doc.contains("finetuned"));
  ASSERT_FALSE(doc["finetuned"].empty());
  for (const auto& e : doc["finetuned"]) {
    const std::string path = dir + "/prune/" + e["file"].get<std::string>();
    const std::string pruned_path = path.substr(0, path.size() - 13) + ".h5";  // "_finetuned.h5"
    Model pruned = load_model(pruned_path), tuned = load_model(path);
    EXPECT_EQ(test::zeros_of(tuned, "conv_3"), test::zeros_of(pruned, "conv_3"));
    EXPECT_FALSE(test::zeros_of(tuned, "conv_3").empty());
  }
}

TEST(CliFinetune, TestWithoutPoisonedTestIsAUsageError) {
  auto r =
      test::run_cli("finetune --model /dev/null --clean /dev/null --test /dev/null --out x.h5");
  EXPECT_EQ(r.exit_code, 2);
}

TEST(CliDemo, RefusesAFolderHoldingOtherFiles) {
  const std::string dir = test::work_dir();
  std::ofstream(dir + "/mine.txt") << "not a demo";
  auto r = test::run_cli("demo --out " + dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/mine.txt"));
}

}  // namespace
}  // namespace bdguard
