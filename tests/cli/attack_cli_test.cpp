// bdguard attack blended, sig, wanet, and badnets' random triggers and all-to-all
// mapping, run as a user would, each trained for two steps on 256 images.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bdguard/badnets.h"
#include "bdguard/dataset.h"
#include "bdguard/fileio.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

test::CliResult tiny(const std::string& method, const std::string& out,
                     const std::string& flags = "") {
  return test::run_cli("attack " + method + " --out " + out + " " + flags +
                       " --max-train 256 --max-steps 2 --threads 1 --quiet");
}

nlohmann::json record(const std::string& dir) {
  return nlohmann::json::parse(test::read_text(dir + "/attack.json"));
}

// Lines of `text` that start with "error:".
int error_lines(const std::string& text) {
  std::istringstream in(text);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.rfind("error:", 0) == 0;
  return n;
}

TEST(CliAttackMethods, BlendedWritesEveryOutputAndRecordsItsFlags) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  auto r = tiny("blended", dir, "--alpha 0.3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f :
       {"bd_net.h5", "data/valid.h5", "data/test.h5", "data/bd_valid.h5", "data/bd_test.h5"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  }
  auto doc = record(dir);
  EXPECT_EQ(doc["options"]["attack"], "blended");
  EXPECT_EQ(doc["options"]["pattern"], "noise");
  EXPECT_EQ(doc["options"]["alpha"], 0.3);
  EXPECT_NE(doc["command"].get<std::string>().find("attack blended"), std::string::npos);
  EXPECT_TRUE(doc.contains("clean_accuracy"));
  EXPECT_TRUE(doc.contains("attack_success_rate"));
}

TEST(CliAttackMethods, SigCleanLabelPoisonsOnlyTargetImages) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  // 256 images hold about 26 of class 0: 5 % is 13 of them.
  auto r = tiny("sig", dir, "--clean-label --poison-rate 0.05");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = record(dir);
  EXPECT_EQ(doc["options"]["clean_label"], true);
  EXPECT_EQ(doc["options"]["delta"], 20.0);
  EXPECT_EQ(doc["options"]["frequency"], 6.0);
  EXPECT_EQ(doc["n_poisoned_train"], 13);
  // The poisoned test file: SIG added to the non-target test images, labelled 0.
  Batch test = LabDataset(dir + "/data/test.h5", {1, 28, 28}).read_all();
  Batch bd = LabDataset(dir + "/data/bd_test.h5", {1, 28, 28}).read_all();
  EXPECT_EQ(bd.images.size(0), test.labels.ne(0).sum().item<int64_t>());
  EXPECT_TRUE(bd.labels.eq(0).all().item<bool>());
}

TEST(CliAttackMethods, WanetRepeatsByteForByte) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  ASSERT_EQ(tiny("wanet", dir + "/a").exit_code, 0);
  ASSERT_EQ(tiny("wanet", dir + "/b").exit_code, 0);
  for (const char* f : {"bd_net.h5", "data/bd_valid.h5", "data/bd_test.h5"}) {
    EXPECT_EQ(sha256_file(dir + "/a/" + f), sha256_file(dir + "/b/" + f)) << f;
  }
  auto doc = record(dir + "/a");
  EXPECT_EQ(doc["options"]["k"], 4);
  EXPECT_EQ(doc["options"]["s"], 0.5);
  EXPECT_EQ(doc["options"]["cross_ratio"], 2.0);
  EXPECT_EQ(doc["trigger"]["field"].size(), 32u);  // 2 x 4 x 4
}

TEST(CliAttackMethods, AllToAllPoisonedTestHoldsEveryImageWithTheNextLabel) {
  BDGUARD_REQUIRE_FASHION_MNIST();
  const std::string dir = test::work_dir();
  auto r = tiny("badnets", dir, "--mapping all-to-all --trigger random --position random");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = record(dir);
  EXPECT_EQ(doc["options"]["mapping"], "all-to-all");
  EXPECT_EQ(doc["n_bd_test"], doc["n_test"]);
  Batch test = LabDataset(dir + "/data/test.h5", {1, 28, 28}).read_all();
  Batch bd = LabDataset(dir + "/data/bd_test.h5", {1, 28, 28}).read_all();
  EXPECT_TRUE(bd.labels.equal(test.labels.add(1).remainder(10)));
  // The 4x4 random patch sits where the record says, anywhere in the image.
  const int64_t top = doc["trigger"]["top"], left = doc["trigger"]["left"];
  EXPECT_LE(top, 24);
  EXPECT_LE(left, 24);
  at::Tensor outside = bd.images.clone();
  test.images.narrow(2, top, 4).narrow(3, left, 4).zero_();
  outside.narrow(2, top, 4).narrow(3, left, 4).zero_();
  EXPECT_TRUE(outside.equal(test.images));
}

TEST(CliAttackMethods, BadFlagsGiveOneErrorLine) {
  for (const std::string& args :
       {std::string("sig --out x --delta 300"), std::string("blended --out x --pattern nosuch"),
        std::string("wanet --out x --k 1"), std::string("badnets --out x --mapping some"),
        std::string("wanet --out x --cross-ratio -1")}) {
    auto r = test::run_cli("attack " + args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(error_lines(r.err), 1) << args << ": " << r.err;
  }
  const std::string dir = test::work_dir();
  auto r = test::run_cli("attack sig --out " + dir + "/o --clean-label --mapping all-to-all");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--clean-label"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace bdguard
