// The campaign library on hand-made inputs: the trojan probability, TrojAI's metrics,
// the Slurm array spec and scripts, the ground-truth CSV, task results.
#include "bdguard/campaign.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "bdguard/error.h"
#include "test_util.h"

namespace bdguard {
namespace {

namespace fs = std::filesystem;

TEST(CampaignProbability, IsALogisticOfTheScoreCentredAtTheVerdictThreshold) {
  EXPECT_DOUBLE_EQ(trojan_probability(2.0), 0.5);
  EXPECT_NEAR(trojan_probability(0.0), 1 / (1 + std::exp(4.0)), 1e-12);   // 0.018
  EXPECT_NEAR(trojan_probability(3.0), 1 / (1 + std::exp(-2.0)), 1e-12);  // 0.881
  EXPECT_DOUBLE_EQ(trojan_probability(std::numeric_limits<double>::infinity()), 1.0);
  EXPECT_LT(trojan_probability(1.9), trojan_probability(2.1));  // monotone
}

TEST(CampaignMetrics, RocAucCountsOrderedPairsAndTiesAsHalf) {
  // Backdoored 0.9, 0.4; clean 0.6, 0.4: pairs (0.9>0.6) 1, (0.9>0.4) 1, (0.4<0.6) 0,
  // (0.4=0.4) 1/2: 2.5 of 4.
  EXPECT_DOUBLE_EQ(roc_auc({0.9, 0.4, 0.6, 0.4}, {1, 1, 0, 0}), 0.625);
  EXPECT_DOUBLE_EQ(roc_auc({0.9, 0.8, 0.2, 0.1}, {1, 1, 0, 0}), 1.0);
  EXPECT_TRUE(std::isnan(roc_auc({0.9, 0.8}, {1, 1})));
}

TEST(CampaignMetrics, RocCurveGoesFromOriginToOneWithTiesInOneStep) {
  const auto roc = roc_curve({0.9, 0.4, 0.6, 0.4}, {1, 1, 0, 0});
  ASSERT_EQ(roc.size(), 4u);  // (0,0), 0.9: (0,.5), 0.6: (.5,.5), 0.4: (1,1)
  EXPECT_DOUBLE_EQ(roc[1].tpr, 0.5);
  EXPECT_DOUBLE_EQ(roc[2].fpr, 0.5);
  EXPECT_DOUBLE_EQ(roc[3].fpr, 1.0);
  EXPECT_DOUBLE_EQ(roc[3].tpr, 1.0);
}

TEST(CampaignMetrics, CrossEntropyOfHalfIsLogTwo) {
  EXPECT_NEAR(cross_entropy({0.5, 0.5}, {1, 0}), std::log(2.0), 1e-12);
  // -(log 0.8 + log(1 - 0.4)) / 2
  EXPECT_NEAR(cross_entropy({0.8, 0.4}, {1, 0}), -(std::log(0.8) + std::log(0.6)) / 2, 1e-12);
  EXPECT_LT(cross_entropy({1.0}, {0}), 28.0);  // clipped at 1e-12: -log(1e-12) = 27.6
}

TEST(CampaignMetrics, ConfusionCountsNoVerdictApart) {
  const Confusion c = confusion({1, 0, 1, -1, 0}, {1, 1, 0, 0, 0});
  EXPECT_EQ(c.tp, 1);
  EXPECT_EQ(c.fn, 1);
  EXPECT_EQ(c.fp, 1);
  EXPECT_EQ(c.tn, 1);
  EXPECT_EQ(c.no_verdict, 1);
}

TEST(CampaignMetrics, BrierAndEachKindAgainstTheCleanModels) {
  // Two clean models (p 0.1, 0.3), a badnets one (0.9) and a wanet one (0.2).
  std::vector<MergeRow> rows;
  const double p[] = {0.1, 0.3, 0.9, 0.2};
  const char* kind[] = {"clean", "clean", "badnets", "wanet"};
  for (int i = 0; i < 4; ++i) {
    MergeRow r;
    r.model.index = i;
    r.model.truth = GroundTruth{i >= 2, std::nullopt, false, {{"kind", kind[i]}}};
    r.status = "ok";
    r.trojan_probability = p[i];
    r.backdoored = p[i] >= 0.5;
    rows.push_back(r);
  }
  std::vector<RocPoint> roc;
  const nlohmann::json m = campaign_metrics(rows, &roc, nullptr);
  // Brier: (0.01 + 0.09 + 0.01 + 0.64) / 4.
  EXPECT_NEAR(m["brier"].get<double>(), 0.1875, 1e-12);
  ASSERT_TRUE(m.contains("by_kind"));
  EXPECT_EQ(m["by_kind"]["badnets"]["n"], 3);
  EXPECT_DOUBLE_EQ(m["by_kind"]["badnets"]["roc_auc"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(m["by_kind"]["wanet"]["roc_auc"].get<double>(), 0.5);  // 0.2: above 0.1 only
  EXPECT_DOUBLE_EQ(m["by_kind"]["wanet"]["tpr"].get<double>(), 0.0);
}

TEST(CampaignSbatch, ArraySpecCompressesRunsAndAddsTheLimit) {
  EXPECT_EQ(slurm_array_spec({0, 1, 2, 3}, 2), "0-3%2");
  EXPECT_EQ(slurm_array_spec({3, 7, 9, 10, 11}, 0), "3,7,9-11");
}

TEST(CampaignSbatch, ScriptsCarryTheArrayLogsResourcesAndDependency) {
  Manifest m;
  m.dir = "/tmp/camp";
  SlurmOptions o;
  o.bdguard = "/opt/bdguard";
  o.partition = "gpu";
  o.time = "1:00:00";
  o.mem = "2G";
  o.cpus = 2;
  o.array_limit = 2;
  o.indices = {0, 1, 2, 3};
  const std::string task = slurm_task_script(m, o);
  for (const char* line :
       {"#SBATCH --array=0-3%2\n", "#SBATCH --output=/tmp/camp/slurm/logs/task-%A_%a.out\n",
        "#SBATCH --error=/tmp/camp/slurm/logs/task-%A_%a.err\n", "#SBATCH --partition=gpu\n",
        "#SBATCH --time=1:00:00\n", "#SBATCH --cpus-per-task=2\n", "#SBATCH --mem=2G\n",
        "exec '/opt/bdguard' campaign task '/tmp/camp'\n"}) {
    EXPECT_NE(task.find(line), std::string::npos) << line << " in\n" << task;
  }
  const std::string merge = slurm_merge_script(m, o, "123");
  EXPECT_NE(merge.find("#SBATCH --dependency=afterok:123\n"), std::string::npos) << merge;
  EXPECT_NE(merge.find("#SBATCH --kill-on-invalid-dep=yes\n"), std::string::npos) << merge;
  EXPECT_NE(merge.find("campaign merge '/tmp/camp'"), std::string::npos) << merge;
}

TEST(CampaignSbatch, PathWithSpaceIsRefused) {
  Manifest m;
  m.dir = "/tmp/my camp";
  SlurmOptions o;
  o.bdguard = "/opt/bdguard";
  o.indices = {0};
  EXPECT_THROW(slurm_task_script(m, o), InvalidArgument);
}

TEST(CampaignGroundTruth, ReadsRowsWithOptionalTargetAndNamesTheBadLine) {
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/t.csv") << "model,backdoored,target\nbd_a,1,0\n\"clean,b\",no,\n";
  const auto rows = read_ground_truth(dir + "/t.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(rows[0].truth.backdoored);
  EXPECT_EQ(rows[0].truth.target, 0);
  EXPECT_EQ(rows[1].model, "clean,b");
  EXPECT_FALSE(rows[1].truth.target.has_value());
  std::ofstream(dir + "/bad.csv") << "model,backdoored\nbd_a,maybe\n";
  try {
    read_ground_truth(dir + "/bad.csv");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2: backdoored"), std::string::npos) << e.what();
  }
}

TEST(CampaignGroundTruth, KeepsExtraColumnsAndReadsTargetAll) {
  // A zoo's ground truth: the columns in another order, `all` for all-to-all, and more.
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/t.csv")
      << "kind,model,backdoored,target,arch,poison_rate\n"
      << "badnets,m0,1,3,fmnist,0.05\nall-to-all,m1,1,all,vgg,0.1\nclean,m2,0,,resbn,0\n";
  const auto rows = read_ground_truth(dir + "/t.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].model, "m0");
  EXPECT_EQ(rows[0].truth.target, 3);
  EXPECT_EQ(rows[0].truth.extra.at("kind"), "badnets");
  EXPECT_EQ(rows[0].truth.extra.at("poison_rate"), "0.05");
  EXPECT_TRUE(rows[1].truth.all_to_all);
  EXPECT_FALSE(rows[1].truth.target.has_value());
  EXPECT_FALSE(rows[2].truth.backdoored);
  EXPECT_EQ(rows[2].truth.extra.at("arch"), "resbn");
  std::ofstream(dir + "/bad.csv") << "name,backdoored\nm0,1\n";
  EXPECT_THROW(read_ground_truth(dir + "/bad.csv"), FormatError);
}

TEST(CampaignTaskResult, RoundTripsThroughJsonWithAnInfiniteScore) {
  TaskResult r;
  r.index = 3;
  r.status = "ok";
  r.score = std::numeric_limits<double>::infinity();
  r.trojan_probability = 1;
  r.target = 7;
  r.backdoored = true;
  const TaskResult back = task_result_from_json(to_json(r), "x.json");
  EXPECT_EQ(back.index, 3);
  EXPECT_TRUE(std::isinf(back.score));
  EXPECT_EQ(back.target, 7);
  EXPECT_TRUE(back.backdoored);
}

TEST(CampaignModels, FolderIsSearchedForH5AndOnnxSortedByPath) {
  const std::string dir = test::temp_dir();
  fs::create_directories(dir + "/zoo/sub");
  for (const char* f : {"zoo/b.h5", "zoo/a.ONNX", "zoo/sub/c.h5", "zoo/readme.txt"}) {
    std::ofstream(dir + "/" + f) << f;
  }
  const auto models = find_models(dir + "/zoo");
  ASSERT_EQ(models.size(), 3u);
  EXPECT_EQ(models[0].name, "a.ONNX");
  EXPECT_EQ(models[1].name, "b.h5");
  EXPECT_EQ(models[2].name, "sub/c.h5");
  EXPECT_EQ(models[2].index, 2);
  EXPECT_EQ(models[0].sha256.size(), 64u);
}

}  // namespace
}  // namespace bdguard
