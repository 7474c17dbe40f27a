// bdguard campaign init|task|run|merge|submit --dry-run on the zoo of four small nets
// (tests/cli/make_campaign_zoo.sh) and on bad inputs from the hostile corpus. The real
// Slurm tests are in tests/slurm/.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bdguard/fileio.h"
#include "bdguard/k_arm.h"
#include "campaign_util.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;
using test::read_json;
using test::run_cli;
using test::zoo_dir;

// A folder of its own: run_cli() does not touch it.
std::string work_dir() {
  const std::string dir = test::temp_dir() + "-work";
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void copy_model(const std::string& from, const std::string& to) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

TEST(CampaignInit, ManifestListsModelsWithHashesGroundTruthAndDetectSettings) {
  BDGUARD_REQUIRE_ZOO();
  const std::string c = work_dir() + "/c";
  auto r = test::init_campaign(c, zoo_dir() + "/models",
                               " --ground-truth " + zoo_dir() + "/truth.csv --labels 0,3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto m = read_json(c + "/manifest.json");
  ASSERT_EQ(m["models"].size(), 4u);
  const char* names[] = {"bd_a.h5", "bd_b.h5", "clean_a.h5", "clean_b.h5"};
  for (size_t i = 0; i < 4; ++i) {
    const auto& e = m["models"][i];
    EXPECT_EQ(e["index"], i);
    EXPECT_EQ(e["name"], names[i]);
    EXPECT_EQ(e["sha256"], sha256_file(zoo_dir() + "/models/" + names[i]));
    EXPECT_TRUE(fs::path(e["path"].get<std::string>()).is_absolute());
  }
  EXPECT_EQ(m["models"][1]["ground_truth"]["target"], 3);
  EXPECT_EQ(m["models"][2]["ground_truth"]["backdoored"], false);
  const auto& s = m["settings"];
  EXPECT_EQ(s["methods"], "detect");
  EXPECT_EQ(s["labels"], "0,3");
  EXPECT_EQ(s["nc_steps"], 4);
  EXPECT_EQ(s["nc_batches_per_step"], 2);
  EXPECT_EQ(s["threads"], 1);
  EXPECT_EQ(s["clean_sha256"], sha256_file(zoo_dir() + "/data/valid.h5"));
}

TEST(CampaignInit, ListPathsAreRelativeToTheList) {
  BDGUARD_REQUIRE_ZOO();
  const std::string dir = work_dir();
  copy_model(zoo_dir() + "/models/bd_a.h5", dir + "/zoo/sub/one.h5");
  std::ofstream(dir + "/zoo/list.txt") << "# models\nsub/one.h5\n\n";
  ASSERT_EQ(test::init_campaign(dir + "/c", dir + "/zoo/list.txt").exit_code, 0);
  const auto m = read_json(dir + "/c/manifest.json");
  ASSERT_EQ(m["models"].size(), 1u);
  EXPECT_EQ(m["models"][0]["name"], "sub/one.h5");
  EXPECT_EQ(m["models"][0]["path"], dir + "/zoo/sub/one.h5");
}

TEST(CampaignInit, CompareNeedsItsFourDataFiles) {
  BDGUARD_REQUIRE_ZOO();
  auto r = test::init_campaign(work_dir() + "/c", zoo_dir() + "/models", " --methods compare");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--poisoned-valid, --test and --poisoned-test"), std::string::npos) << r.err;
}

TEST(CampaignTask, WithoutIndexOrSlurmArrayTaskIdIsAnError) {
  BDGUARD_REQUIRE_ZOO();
  const std::string c = work_dir() + "/c";
  ASSERT_EQ(test::init_campaign(c, zoo_dir() + "/models").exit_code, 0);
  auto r = run_cli("campaign task " + c);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("$SLURM_ARRAY_TASK_ID"), std::string::npos) << r.err;
}

TEST(CampaignTask, RepeatedTaskIsNotRedone) {
  BDGUARD_REQUIRE_ZOO();
  const std::string c = work_dir() + "/c";
  ASSERT_EQ(test::init_campaign(c, zoo_dir() + "/models").exit_code, 0);
  auto first = run_cli("campaign task " + c + " --index 1 --quiet");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string result = test::read_text(c + "/results/1.json");
  const auto doc = nlohmann::json::parse(result);
  EXPECT_EQ(doc["status"], "ok");
  EXPECT_TRUE(fs::exists(c + "/tasks/1/detect.json"));
  const double p = doc["trojan_probability"];
  EXPECT_GT(p, 0);
  EXPECT_LT(p, 1);
  auto again = run_cli("campaign task " + c + " --index 1 --quiet");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("done already"), std::string::npos) << again.out;
  EXPECT_EQ(test::read_text(c + "/results/1.json"), result);  // not rewritten
}

TEST(CampaignTask, ChangedModelFailsOnlyItsTaskWithTheHashes) {
  BDGUARD_REQUIRE_ZOO();
  const std::string dir = work_dir();
  copy_model(zoo_dir() + "/models/bd_a.h5", dir + "/zoo/a.h5");
  ASSERT_EQ(test::init_campaign(dir + "/c", dir + "/zoo").exit_code, 0);
  std::ofstream(dir + "/zoo/a.h5", std::ios::app) << "x";
  auto r = run_cli("campaign task " + dir + "/c --index 0 --quiet");
  EXPECT_EQ(r.exit_code, 4);  // kTaskFailedExit: recorded
  const auto doc = read_json(dir + "/c/results/0.json");
  EXPECT_EQ(doc["status"], "failed");
  EXPECT_NE(doc["error"].get<std::string>().find("the file changed since campaign init"),
            std::string::npos)
      << doc["error"];
  EXPECT_DOUBLE_EQ(doc["trojan_probability"].get<double>(), 0.5);
}

TEST(CampaignRun, LocalJobs2ScoresEveryModelAndMergesWithGroundTruth) {
  BDGUARD_REQUIRE_ZOO();
  const std::string c = work_dir() + "/c";
  ASSERT_EQ(
      test::init_campaign(c, zoo_dir() + "/models", " --ground-truth " + zoo_dir() + "/truth.csv")
          .exit_code,
      0);
  auto r = run_cli("campaign run " + c + " --jobs 2 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("4 models: 4 ok, 0 failed, 0 missing"), std::string::npos) << r.out;
  const std::string csv = test::read_text(c + "/results.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "index,model,trojan_probability,backdoored,target,seconds,score,status");
  EXPECT_NE(csv.find("\n1,bd_b.h5,"), std::string::npos) << csv;
  const auto doc = read_json(c + "/results.json");
  EXPECT_EQ(doc["n_ok"], 4);
  const auto& mt = doc["metrics"];
  EXPECT_EQ(mt["n"], 4);
  ASSERT_TRUE(mt["roc_auc"].is_number()) << mt;
  EXPECT_GE(mt["roc_auc"].get<double>(), 0);
  EXPECT_LE(mt["roc_auc"].get<double>(), 1);
  EXPECT_GT(mt["cross_entropy"].get<double>(), 0);
  const auto& cf = mt["confusion"];
  EXPECT_EQ(cf["tp"].get<int>() + cf["fn"].get<int>(), 2);
  EXPECT_EQ(cf["tn"].get<int>() + cf["fp"].get<int>(), 2);
  EXPECT_EQ(mt["target"]["n"], 2);
  for (const auto& row : doc["models"]) {
    const double p = row["trojan_probability"];
    const double s = row["score"].is_number() ? row["score"].get<double>() : INFINITY;
    EXPECT_NEAR(p, 1 / (1 + std::exp(-2 * (s - 2))), 1e-9);  // the documented map
    EXPECT_TRUE(fs::exists(c + "/logs/" + std::to_string(row["index"].get<int>()) + ".log"));
  }
  const std::string html = test::read_text(c + "/report.html");
  EXPECT_NE(html.find("ROC"), std::string::npos);
  EXPECT_NE(html.find("clean_b.h5"), std::string::npos);
  // A second run redoes nothing.
  auto again = run_cli("campaign run " + c + " --jobs 2");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(test::read_text(c + "/results.csv"), csv);
}

TEST(CampaignRun, BadInputsFailOnlyTheirTasks) {
  BDGUARD_REQUIRE_ZOO();
  const std::string dir = work_dir(), zoo = dir + "/zoo";
  copy_model(zoo_dir() + "/models/bd_a.h5", zoo + "/a_good.h5");
  std::ofstream(zoo + "/b_notes.h5") << "not a model: a text file named .h5\n";
  copy_model(test::hostile_corpus() + "/model_lambda.h5", zoo + "/c_lambda.h5");
  copy_model(test::hostile_corpus() + "/valid/tiny.h5", zoo + "/d_other_shape.h5");
  ASSERT_EQ(test::init_campaign(dir + "/c", zoo).exit_code, 0);
  auto r = run_cli("campaign run " + dir + "/c --jobs 2 --quiet");
  EXPECT_EQ(r.exit_code, 4) << r.err;  // tasks failed
  EXPECT_NE(r.out.find("4 models: 1 ok, 3 failed, 0 missing"), std::string::npos) << r.out;
  const auto doc = read_json(dir + "/c/results.json");
  ASSERT_EQ(doc["failed"].size(), 3u);
  const char* fragments[] = {"b_notes.h5", "Lambda", "for the model's input"};
  for (size_t i = 0; i < 3; ++i) {
    const auto& f = doc["failed"][i];
    EXPECT_EQ(f["index"], i + 1);
    EXPECT_DOUBLE_EQ(f["trojan_probability"].get<double>(), 0.5);
    const std::string error = f["error"];
    EXPECT_NE(error.find(fragments[i]), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos);  // one line
    const std::string log = test::read_text(dir + "/c/logs/" + std::to_string(i + 1) + ".log");
    EXPECT_NE(log.find("error: " + error), std::string::npos) << log;
  }
  EXPECT_NE(test::read_text(dir + "/c/results.csv").find("\n3,d_other_shape.h5,0.500000,,,"),
            std::string::npos);
  EXPECT_EQ(doc["models"][0]["status"], "ok");
}

TEST(CampaignRun, CompareTaskWritesTheDefenseTableBesideTheDetection) {
  BDGUARD_REQUIRE_ZOO();
  const std::string dir = work_dir(), d = zoo_dir() + "/data/";
  copy_model(zoo_dir() + "/models/bd_a.h5", dir + "/zoo/a.h5");
  ASSERT_EQ(test::init_campaign(dir + "/c", dir + "/zoo",
                                " --methods compare --defenses clp --poisoned-valid " + d +
                                    "bd_valid.h5 --test " + d + "test.h5 --poisoned-test " + d +
                                    "bd_test.h5")
                .exit_code,
            0);
  auto r = run_cli("campaign run " + dir + "/c --jobs 1 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const auto result = read_json(dir + "/c/results/0.json");
  EXPECT_EQ(result["methods"], "compare");
  EXPECT_EQ(result["details"]["best"], "clp");
  const auto table = read_json(dir + "/c/tasks/0/compare/compare.json");
  ASSERT_EQ(table["rows"].size(), 1u);
  EXPECT_EQ(table["rows"][0]["method"], "clp");
  EXPECT_TRUE(fs::exists(dir + "/c/tasks/0/detect.json"));  // the score's source
}

TEST(CampaignRun, ScanTasksScoreWithScanAndCalibrateFitsOnThem) {
  BDGUARD_REQUIRE_ZOO();
  const std::string dir = work_dir(), c = dir + "/c";
  ASSERT_EQ(test::init_campaign(c, zoo_dir() + "/models",
                                " --methods scan --detectors mm-bd --mm-starts 4 --mm-steps 40 "
                                "--ground-truth " +
                                    zoo_dir() + "/truth.csv")
                .exit_code,
            0);
  auto r = run_cli("campaign run " + c + " --jobs 2 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const auto result = read_json(c + "/results/0.json");
  EXPECT_EQ(result["methods"], "scan");
  ASSERT_EQ(result["details"]["detectors"].size(), 1u) << result;
  EXPECT_EQ(result["details"]["detectors"][0]["name"], "mm-bd");
  EXPECT_DOUBLE_EQ(result["trojan_probability"].get<double>(),
                   result["details"]["probability"].get<double>());
  const auto scan = read_json(c + "/tasks/0/scan.json");
  EXPECT_DOUBLE_EQ(scan["probability"].get<double>(), result["trojan_probability"].get<double>());
  const auto doc = read_json(c + "/results.json");
  EXPECT_NE(doc["probability_map"]["score"].get<std::string>().find("scan"), std::string::npos);
  EXPECT_NE(test::read_text(c + "/report.html").find("bdguard scan"), std::string::npos);

  auto fit = run_cli("scan calibrate --campaign " + c + " --out " + dir + "/calib.json --folds 2");
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_NE(fit.out.find("4 models (2 backdoored)"), std::string::npos) << fit.out;
  const auto calib = read_json(dir + "/calib.json");
  EXPECT_EQ(calib["detectors"], nlohmann::json::array({"mm-bd"}));
  EXPECT_EQ(calib["trained_on"]["models"], 4);
  EXPECT_EQ(calib["trained_on"]["campaign"], fs::absolute(c).lexically_normal().string());
  EXPECT_TRUE(calib["metrics"]["cv_roc_auc"].is_number()) << calib;
  auto other =
      run_cli("scan calibrate --campaign " + c + " --detectors k-arm --out " + dir + "/other.json");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_EQ(other.err.rfind("error: ", 0), 0u) << other.err;
  EXPECT_EQ(other.err.find('\n'), other.err.size() - 1) << other.err;
  EXPECT_NE(other.err.find("the campaign's (mm-bd)"), std::string::npos) << other.err;
  // The fitted file is one scan takes.
  auto again = run_cli("scan --model " + zoo_dir() + "/models/bd_a.h5 --no-data --out " + dir +
                       "/s --mm-starts 4 --mm-steps 40 --calibration " + dir + "/calib.json");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out.find("uncalibrated"), std::string::npos) << again.out;
}

TEST(CampaignRun, ScanTasksTakeTheKArmFlagsOfInit) {
  BDGUARD_REQUIRE_ZOO();
  const std::string c = work_dir() + "/c";
  ASSERT_EQ(test::init_campaign(c, zoo_dir() + "/models",
                                " --methods scan --detectors k-arm --k-arm-steps 20 "
                                "--k-arm-min-arms 5 --calibration none")
                .exit_code,
            0);
  const auto settings = read_json(c + "/manifest.json")["settings"];
  EXPECT_EQ(settings["k_arm_steps"], 20);
  EXPECT_EQ(settings["k_arm_min_arms"], 5);
  EXPECT_EQ(settings["k_arm_arms"], KArmOptions{}.max_arms);
  auto r = run_cli("campaign run " + c + " --jobs 2 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const auto k_arm = read_json(c + "/tasks/0/scan.json")["settings"]["k-arm"];
  EXPECT_EQ(k_arm["steps"], 20);
  EXPECT_EQ(k_arm["min_arms"], 5);
  EXPECT_EQ(k_arm["max_arms"], KArmOptions{}.max_arms);
}

TEST(CampaignRun, CalibrateMeasuresKArmsReferenceOnTheCleanModels) {
  BDGUARD_REQUIRE_ZOO();
  const std::string dir = work_dir(), c = dir + "/c";
  ASSERT_EQ(test::init_campaign(c, zoo_dir() + "/models",
                                " --methods scan --detectors k-arm --k-arm-steps 20 "
                                "--k-arm-min-arms 5 --k-arm-min-steps 3 --calibration none "
                                "--ground-truth " +
                                    zoo_dir() + "/truth.csv")
                .exit_code,
            0);
  ASSERT_EQ(run_cli("campaign run " + c + " --jobs 2 --quiet").exit_code, 0);
  auto fit = run_cli("scan calibrate --campaign " + c + " --transform identity --folds 0 --out " +
                     dir + "/calib.json");
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_NE(fit.out.find("K-Arm's reference from 2 clean models"), std::string::npos) << fit.out;
  const auto ref = read_json(dir + "/calib.json")["reference"]["k-arm"];
  EXPECT_EQ(ref["classes"], 10) << ref;
  EXPECT_EQ(ref["models"], 2);
  EXPECT_EQ(ref["sizes"].size(), 10u);
  EXPECT_EQ(read_json(c + "/tasks/0/evidence.json")["k-arm"]["classes"], 10);
  auto own = run_cli("scan calibrate --campaign " + c + " --reference none --folds 0 --out " + dir +
                     "/own.json");
  ASSERT_EQ(own.exit_code, 0) << own.err;
  EXPECT_FALSE(read_json(dir + "/own.json").contains("reference"));
}

TEST(CampaignRun, CalibrateRefusesACampaignThatDidNotScan) {
  BDGUARD_REQUIRE_ZOO();
  const std::string dir = work_dir();
  ASSERT_EQ(test::init_campaign(dir + "/c", zoo_dir() + "/models").exit_code, 0);
  auto r = run_cli("scan calibrate --campaign " + dir + "/c --out " + dir + "/calib.json");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("error: "), std::string::npos);
  EXPECT_NE(r.err.find("--methods scan"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/calib.json"));
}

TEST(CampaignMerge, MissingTasksAreListedAndScoredOneHalf) {
  BDGUARD_REQUIRE_ZOO();
  const std::string c = work_dir() + "/c";
  ASSERT_EQ(
      test::init_campaign(c, zoo_dir() + "/models", " --ground-truth " + zoo_dir() + "/truth.csv")
          .exit_code,
      0);
  auto r = run_cli("campaign merge " + c);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("4 models: 0 ok, 0 failed, 4 missing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("missing: task 2 (clean_a.h5)"), std::string::npos) << r.out;
  const auto doc = read_json(c + "/results.json");
  EXPECT_EQ(doc["failed"].size(), 4u);
  // Every model at 0.5: cross-entropy log 2 = 0.6931, ROC AUC 1/2 (all tied).
  EXPECT_NEAR(doc["metrics"]["cross_entropy"].get<double>(), std::log(2.0), 1e-12);
  EXPECT_DOUBLE_EQ(doc["metrics"]["roc_auc"].get<double>(), 0.5);
  EXPECT_EQ(doc["metrics"]["confusion"]["no_verdict"], 4);
}

TEST(CampaignSubmit, DryRunWritesBothScriptsAndSubmitsNothing) {
  BDGUARD_REQUIRE_ZOO();
  const std::string c = work_dir() + "/c";
  ASSERT_EQ(test::init_campaign(c, zoo_dir() + "/models").exit_code, 0);
  // sbatch that fails if called: the dry run must not call it.
  auto r = run_cli("campaign submit " + c +
                   " --slurm --dry-run --partition debug --time 20 --cpus 1 --mem 1G "
                   "--array-limit 2 --sbatch /bin/false");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string task = test::read_text(c + "/slurm/task.sbatch");
  const std::string merge = test::read_text(c + "/slurm/merge.sbatch");
  for (const char* line :
       {"#SBATCH --array=0-3%2\n", "#SBATCH --partition=debug\n", "#SBATCH --time=20\n",
        "#SBATCH --mem=1G\n", "#SBATCH --cpus-per-task=1\n"}) {
    EXPECT_NE(task.find(line), std::string::npos) << line << task;
  }
  EXPECT_NE(task.find(" campaign task '" + c + "'"), std::string::npos) << task;
  EXPECT_NE(merge.find("#SBATCH --dependency=afterok:ARRAY_JOB_ID\n"), std::string::npos) << merge;
  EXPECT_NE(merge.find("#SBATCH --kill-on-invalid-dep=yes\n"), std::string::npos) << merge;
  EXPECT_NE(r.out.find("dry run: nothing submitted"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(c + "/slurm/jobs.json"));
}

}  // namespace
}  // namespace bdguard
