// bdguard campaign submit --slurm on a real one-node Slurm (scripts/slurm-local.sh, one
// cluster per test, the tests one at a time: RESOURCE_LOCK in tests/CMakeLists.txt).
// Each test skips, saying why, when Slurm is not installed, this is not root, or the
// cluster does not start.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "campaign_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;
using test::read_json;
using test::run_cli;
using test::zoo_dir;

const std::string kScript = std::string(BDGUARD_SOURCE_DIR) + "/scripts/slurm-local.sh";

// stdout of a shell command (its exit code in `rc`).
std::string shell(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  if (rc) *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

bool installed(const std::string& program) {
  int rc = 0;
  shell("PATH=$PATH:/usr/sbin:/sbin command -v " + program + " >/dev/null 2>&1", &rc);
  return rc == 0;
}

// The states of job `id` (every task of an array) once none is pending or running, or
// empty after `timeout_s`.
std::vector<std::string> wait_job(const std::string& id, int timeout_s = 240) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    std::istringstream in(shell("scontrol -o show job " + id + " 2>/dev/null"));
    std::vector<std::string> states;
    bool active = false;
    for (std::string line; std::getline(in, line);) {
      const auto at = line.find(" JobState=");
      if (at == std::string::npos) continue;
      const std::string s = line.substr(at + 10, line.find(' ', at + 10) - at - 10);
      states.push_back(s);
      active |= s == "PENDING" || s == "RUNNING" || s == "CONFIGURING" || s == "COMPLETING";
    }
    if (!states.empty() && !active) return states;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return {};
}

class CampaignSlurm : public ::testing::Test {
 protected:
  void SetUp() override {
    BDGUARD_REQUIRE_ZOO();
    if (!installed("slurmctld") || !installed("slurmd") || !installed("sbatch") ||
        !installed("munged")) {
      GTEST_SKIP() << "Slurm is not installed (slurmctld, slurmd, slurm-client, munge: "
                      "scripts/setup.sh installs them): Slurm test skipped";
    }
    if (getuid() != 0) GTEST_SKIP() << "not root: scripts/slurm-local.sh needs root; skipped";
    // Short: munged's socket path (DIR/munge.socket) must stay under 108 bytes.
    dir_ = (fs::temp_directory_path() / ("bdg-slurm-" + std::to_string(getpid()))).string();
    int rc = 0;
    const std::string log = test::temp_dir() + "-slurm-start.log";
    shell("PATH=$PATH:/usr/sbin:/sbin " + kScript + " start " + dir_ + " >/dev/null 2>" + log, &rc);
    if (rc != 0) {
      GTEST_SKIP() << "the one-node Slurm did not start (" << kScript
                   << " start): " << test::read_text(log);
    }
    started_ = true;
    setenv("SLURM_CONF", (dir_ + "/slurm.conf").c_str(), 1);
  }
  void TearDown() override {
    if (started_) shell("PATH=$PATH:/usr/sbin:/sbin " + kScript + " stop " + dir_ + " 2>&1");
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // `campaign submit C --slurm --json ARGS`: the array's and the merge's job ids.
  std::pair<std::string, std::string> submit(const std::string& c, const std::string& args = "") {
    auto r = run_cli("campaign submit " + c + " --slurm --json" + args);
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    if (r.exit_code != 0) return {};
    const auto doc = nlohmann::json::parse(r.out);
    return {doc["array_job"], doc["merge_job"]};
  }

  std::string dir_;
  bool started_ = false;
};

std::string work_dir() {
  const std::string dir = test::temp_dir() + "-work";
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A zoo of the BadNet bd_a and a text file named .h5 (its task fails).
std::string zoo_with_a_bad_file(const std::string& dir) {
  fs::create_directories(dir + "/zoo");
  fs::copy_file(zoo_dir() + "/models/bd_a.h5", dir + "/zoo/a_good.h5");
  std::ofstream(dir + "/zoo/b_notes.h5") << "not a model\n";
  return dir + "/zoo";
}

TEST_F(CampaignSlurm, SubmitGivesTheSameResultsCsvAsALocalRun) {
  const std::string dir = work_dir();
  const std::string truth = " --ground-truth " + zoo_dir() + "/truth.csv";
  ASSERT_EQ(test::init_campaign(dir + "/local", zoo_dir() + "/models", truth).exit_code, 0);
  ASSERT_EQ(test::init_campaign(dir + "/slurm", zoo_dir() + "/models", truth).exit_code, 0);
  auto local = run_cli("campaign run " + dir + "/local --jobs 2 --quiet");
  ASSERT_EQ(local.exit_code, 0) << local.err;

  const auto [array, merge] = submit(dir + "/slurm", " --array-limit 2 --cpus 1");
  ASSERT_FALSE(merge.empty());
  const auto states = wait_job(merge);
  ASSERT_EQ(states, std::vector<std::string>{"COMPLETED"}) << shell("scontrol show job " + merge);
  EXPECT_EQ(test::csv_without_seconds(dir + "/slurm/results.csv"),
            test::csv_without_seconds(dir + "/local/results.csv"));
  EXPECT_EQ(read_json(dir + "/slurm/results.json")["metrics"],
            read_json(dir + "/local/results.json")["metrics"]);
  for (int i = 0; i < 4; ++i) {
    const auto r = read_json(dir + "/slurm/results/" + std::to_string(i) + ".json");
    EXPECT_EQ(r["slurm_job"], array + "_" + std::to_string(i));
    EXPECT_TRUE(
        fs::exists(dir + "/slurm/slurm/logs/task-" + array + "_" + std::to_string(i) + ".err"));
  }
  EXPECT_TRUE(fs::exists(dir + "/slurm/report.html"));
}

TEST_F(CampaignSlurm, FailingTaskIsReportedByTheMerge) {
  const std::string dir = work_dir();
  ASSERT_EQ(test::init_campaign(dir + "/c", zoo_with_a_bad_file(dir)).exit_code, 0);
  const auto [array, merge] = submit(dir + "/c", " --merge-anyway");
  ASSERT_FALSE(merge.empty());
  ASSERT_EQ(wait_job(merge), std::vector<std::string>{"COMPLETED"})
      << shell("scontrol show job " + merge);
  EXPECT_EQ(wait_job(array + "_1"), std::vector<std::string>{"FAILED"});  // exit code 4
  const std::string out = test::read_text(dir + "/c/slurm/logs/merge-" + merge + ".out");
  EXPECT_NE(out.find("2 models: 1 ok, 1 failed, 0 missing"), std::string::npos) << out;
  EXPECT_NE(out.find("failed: task 1 (b_notes.h5)"), std::string::npos) << out;
  const auto doc = read_json(dir + "/c/results.json");
  ASSERT_EQ(doc["failed"].size(), 1u);
  EXPECT_EQ(doc["failed"][0]["index"], 1);
  EXPECT_DOUBLE_EQ(doc["failed"][0]["trojan_probability"].get<double>(), 0.5);
  const std::string err = test::read_text(dir + "/c/slurm/logs/task-" + array + "_1.err");
  EXPECT_NE(err.find("error: " + doc["failed"][0]["error"].get<std::string>()), std::string::npos)
      << err;
}

TEST_F(CampaignSlurm, FailedTaskCancelsTheAfterokMergeAndFailedResubmitsOnlyIt) {
  const std::string dir = work_dir(), c = dir + "/c";
  ASSERT_EQ(test::init_campaign(c, zoo_with_a_bad_file(dir)).exit_code, 0);
  const auto [array, merge] = submit(c);
  ASSERT_FALSE(merge.empty());
  EXPECT_EQ(wait_job(array).size(), 2u);
  // kill_invalid_depend: the merge is cancelled, not left pending for ever.
  EXPECT_EQ(wait_job(merge, 30), std::vector<std::string>{"CANCELLED"});
  EXPECT_FALSE(fs::exists(c + "/results.csv"));
  const auto [array2, merge2] = submit(c, " --failed");
  ASSERT_FALSE(merge2.empty());
  wait_job(merge2);
  const auto jobs = read_json(c + "/slurm/jobs.json")["submissions"];
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[1]["indices"], nlohmann::json::array({1}));
  EXPECT_EQ(jobs[1]["array"], "1%1");
  // Task 0 ran once: its result is from the first array.
  EXPECT_EQ(read_json(c + "/results/0.json")["slurm_job"], array + "_0");
  EXPECT_EQ(read_json(c + "/results/1.json")["slurm_job"], array2 + "_1");
}

TEST_F(CampaignSlurm, ZooMakeTrainsOnSlurmAndFinishes) {
  // Two tiny models: the clean array, the other array after it, then zoo finish.
  const std::string zoo = work_dir() + "/zoo";
  auto r =
      run_cli("zoo make --out " + zoo +
              " --models 2 --seed 4 --kinds clean,badnets --archs fmnist --clean-fraction 0.5"
              " --max-train 300 --epochs 1 --min-asr 0 --max-drop 100 --slurm --cpus 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const auto jobs = nlohmann::json::parse(r.out);
  ASSERT_TRUE(jobs.contains("finish_job")) << r.out;
  ASSERT_EQ(wait_job(jobs["finish_job"]), std::vector<std::string>{"COMPLETED"})
      << shell("scontrol show job " + jobs["finish_job"].get<std::string>());
  const auto doc = read_json(zoo + "/zoo.json");
  ASSERT_EQ(doc["models"].size(), 2u);
  for (const auto& m : doc["models"]) {
    EXPECT_TRUE(fs::exists(zoo + "/" + m["file"].get<std::string>())) << m.dump();
  }
  EXPECT_EQ(test::read_text(zoo + "/ground_truth.csv").find("model,backdoored,target,kind"), 0u);
}

}  // namespace
}  // namespace bdguard
