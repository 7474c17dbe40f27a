// bdguard scan's library side: the detectors' reports, the logistic fit on hand-made
// scores, the calibration file read strictly, and the verdicts with and without one.
#include "bdguard/scan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "bdguard/error.h"
#include "test_util.h"

namespace bdguard {
namespace {

using nlohmann::json;

TEST(LogisticFit, SaturatedModelGivesTheLogOdds) {
  // x = 0: 1 of 4 positive (log-odds ln(1/3)); x = 1: 3 of 4 (ln 3). The fit is exact:
  // intercept -ln 3, weight ln 3 - (-ln 3) = 2 ln 3.
  const std::vector<std::vector<double>> x{{0}, {0}, {0}, {0}, {1}, {1}, {1}, {1}};
  const std::vector<int> y{1, 0, 0, 0, 1, 1, 1, 0};
  LogisticFit f = fit_logistic(x, y);
  EXPECT_NEAR(f.intercept, -std::log(3.0), 1e-9);
  ASSERT_EQ(f.weights.size(), 1u);
  EXPECT_NEAR(f.weights[0], 2 * std::log(3.0), 1e-9);
}

TEST(LogisticFit, SeparableScoresNeedARidge) {
  const std::vector<std::vector<double>> x{{0}, {1}, {2}, {3}};
  const std::vector<int> y{0, 0, 1, 1};
  EXPECT_THROW(fit_logistic(x, y), InvalidArgument);
  LogisticFit f = fit_logistic(x, y, /*l2=*/0.1);
  // Symmetric data: the boundary sits at x = 1.5.
  EXPECT_NEAR(f.intercept + 1.5 * f.weights[0], 0, 1e-9);
  EXPECT_GT(f.weights[0], 0);
}

TEST(LogisticFit, RejectsRaggedRowsAndOtherLabels) {
  EXPECT_THROW(fit_logistic({{0}, {1, 2}}, {0, 1}), InvalidArgument);
  EXPECT_THROW(fit_logistic({{0}, {1}}, {0, 2}), InvalidArgument);
  EXPECT_THROW(fit_logistic({}, {}), InvalidArgument);
}

json calibration_doc() {
  return {{"format", "bdguard-scan-calibration"},
          {"version", 1},
          {"detectors", {"mm-bd", "nc"}},
          {"transform", "identity"},
          {"weights", {2.0, 1.0}},
          {"intercept", -3.0},
          {"trained_on", "hand-made"}};
}

TEST(Calibration, ReadsAValidDocumentAndWritesItBack) {
  Calibration c = parse_calibration(calibration_doc(), "c.json");
  EXPECT_EQ(c.detectors, (std::vector<std::string>{"mm-bd", "nc"}));
  EXPECT_EQ(c.weights, (std::vector<double>{2.0, 1.0}));
  EXPECT_EQ(c.intercept, -3.0);
  Calibration back = parse_calibration(to_json(c), "c.json");
  EXPECT_EQ(back.weights, c.weights);
  EXPECT_EQ(back.trained_on, "hand-made");
}

TEST(Calibration, RejectsWhatIsNotOne) {
  auto rejects = [](const std::function<void(json&)>& change) {
    json d = calibration_doc();
    change(d);
    EXPECT_THROW(parse_calibration(d, "c.json"), FormatError) << d.dump();
  };
  rejects([](json& d) { d = json::array(); });
  rejects([](json& d) { d.erase("format"); });
  rejects([](json& d) { d["version"] = 2; });
  rejects([](json& d) { d["weights"] = {1.0}; });
  rejects([](json& d) { d["detectors"] = {"mm-bd", "strip"}; });
  rejects([](json& d) { d["detectors"] = {"nc", "nc"}; });
  rejects([](json& d) { d["transform"] = "square"; });
  rejects([](json& d) { d["intercept"] = "0"; });
  rejects([](json& d) { d.erase("trained_on"); });
  rejects([](json& d) { d["bias"] = 1; });
}

TEST(Calibration, FileReaderRefusesDeepNestingAndOversizedFiles) {
  const std::string dir = test::temp_dir();
  const std::string ok = dir + "/ok.json", deep = dir + "/deep.json", big = dir + "/big.json";
  std::ofstream(ok) << calibration_doc().dump();
  EXPECT_EQ(read_calibration(ok).weights, (std::vector<double>{2.0, 1.0}));
  json d = calibration_doc();
  d["trained_on"] = json::parse(std::string(100, '[') + std::string(100, ']'));
  std::ofstream(deep) << d.dump();
  EXPECT_THROW(read_calibration(deep), LimitExceeded);
  d = calibration_doc();
  d["trained_on"] = std::string(size_t{1} << 20, 'x');
  std::ofstream(big) << d.dump();
  EXPECT_THROW(read_calibration(big), LimitExceeded);
}

DetectorReport report(const std::string& name, double score, double p, int64_t target) {
  DetectorReport r;
  r.name = name;
  r.score = score;
  r.p_value = p;
  r.target = target;
  return r;
}

TEST(Combine, CalibratedProbabilityIsTheLogisticOfTheWeightedScores) {
  Calibration c = parse_calibration(calibration_doc(), "c.json");
  // -3 + 2 * 1.5 + 1 * 0.5 = 0.5: sigmoid 0.6225; the larger term (mm-bd's 3) gives
  // the target.
  ScanVerdict v = combine(c, {report("nc", 0.5, 0.3, 7), report("mm-bd", 1.5, 0.03, 3)}, 0.5);
  EXPECT_NEAR(v.probability, 1 / (1 + std::exp(-0.5)), 1e-12);
  EXPECT_TRUE(v.backdoored);
  EXPECT_EQ(v.target, 3);
  EXPECT_EQ(v.source, -1);
  EXPECT_FALSE(
      combine(c, {report("nc", 0.5, 0.3, 7), report("mm-bd", 1.5, 0.03, 3)}, 0.7).backdoored);
}

TEST(Combine, RejectsACalibrationForOtherDetectors) {
  Calibration c = parse_calibration(calibration_doc(), "c.json");
  EXPECT_THROW(combine(c, {report("mm-bd", 1.5, 0.03, 3)}, 0.5), InvalidArgument);
}

TEST(Combine, UncalibratedRuleIsBonferroniOnTheSmallestPValue) {
  // p = min(1, 2 * 0.01) = 0.02: probability 0.05 / 0.07.
  ScanVerdict v = combine_uncalibrated({report("mm-bd", 2, 0.01, 3), report("nc", 1, 0.2, 5)}, 0.5);
  EXPECT_NEAR(v.probability, 0.05 / 0.07, 1e-12);
  EXPECT_TRUE(v.backdoored);
  EXPECT_EQ(v.target, 3);
  // p = 2 * 0.04 = 0.08 > 0.05: probability 0.05 / 0.13 < 0.5.
  ScanVerdict w = combine_uncalibrated({report("mm-bd", 2, 0.3, 3), report("nc", 1, 0.04, 5)}, 0.5);
  EXPECT_NEAR(w.probability, 0.05 / 0.13, 1e-12);
  EXPECT_FALSE(w.backdoored);
  EXPECT_EQ(w.target, 5);
}

TEST(Combine, UncalibratedRuleTakesTheSigmoidOfAScoreWithoutPValue) {
  // mm-bd: p = 0.3, probability 0.05 / 0.35 = 0.143; k-arm: sigmoid(1) = 0.731 wins,
  // with its target and source.
  DetectorReport k = report("k-arm", 1, 0, 0);
  k.p_value.reset();
  k.source = 4;
  ScanVerdict v = combine_uncalibrated({report("mm-bd", 0.5, 0.3, 8), k}, 0.5);
  EXPECT_NEAR(v.probability, 1 / (1 + std::exp(-1.0)), 1e-12);
  EXPECT_TRUE(v.backdoored);
  EXPECT_EQ(v.target, 0);
  EXPECT_EQ(v.source, 4);
  // Alone, below its bound: sigmoid(-1) = 0.269.
  k.score = -1;
  ScanVerdict w = combine_uncalibrated({k}, 0.5);
  EXPECT_NEAR(w.probability, 1 / (1 + std::exp(1.0)), 1e-12);
  EXPECT_FALSE(w.backdoored);
}

TEST(KArmReport, ScoreTargetAndSourceAreTheResultsWithoutPValue) {
  KArmResult r;
  r.score = 0.7;
  r.target = 3;
  r.source = 5;
  r.size = 0.01;
  r.arms.resize(2);
  DetectorReport d = k_arm_report(r);
  EXPECT_EQ(d.name, "k-arm");
  EXPECT_EQ(d.score, 0.7);
  EXPECT_FALSE(d.p_value.has_value());
  EXPECT_EQ(d.target, 3);
  EXPECT_EQ(d.source, 5);
  EXPECT_EQ(d.details["source"], 5);
  EXPECT_EQ(d.details["mode"], "label-specific");
  EXPECT_EQ(d.labels.size(), 2u);
}

TEST(NcReport, ScoreIsTheLargestIndexBelowTheMedian) {
  NeuralCleanseResult r;
  r.median = 10;
  const double norms[4] = {2, 10, 12, 30}, index[4] = {3, 0, 0.5, 5};
  for (int i = 0; i < 4; ++i) {
    LabelTrigger t;
    t.label = i;
    t.mask_l1 = norms[i];
    t.anomaly_index = index[i];
    t.refined = true;
    r.labels.push_back(t);
  }
  r.flagged = {0};
  DetectorReport d = nc_report(r);
  EXPECT_EQ(d.score, 3);  // label 3's index 5 is above the median: not counted
  EXPECT_EQ(d.target, 0);
  // 1 - Phi(3)^4 = 0.00538866861429521 (mpmath).
  EXPECT_NEAR(*d.p_value, 0.00538866861429521, 1e-13);
  EXPECT_EQ(d.labels.size(), 4u);
}

TEST(MmBdReport, ScoreIsMinusLogTenOfP) {
  MmBdResult r;
  r.margins = {1, 2, 9};
  r.steps = {1, 1, 1};
  r.target = 2;
  r.p_value = 1e-3;
  DetectorReport d = mm_bd_report(r);
  EXPECT_NEAR(d.score, 3, 1e-12);
  EXPECT_EQ(d.target, 2);
  r.p_value = 0;
  EXPECT_EQ(mm_bd_report(r).score, kMaxScore);
}

}  // namespace
}  // namespace bdguard

namespace bdguard {
namespace {

TEST(FitCalibration, FitsTheTransformedScoresAndCrossValidates) {
  // log1p turns the scores e - 1 and 0 into 1 and 0: the saturated fit of LogisticFit's
  // test, so the weight is 2 ln 3 and the intercept -ln 3.
  const double e1 = std::exp(1.0) - 1;
  std::vector<std::vector<double>> s{{0}, {0}, {0}, {0}, {e1}, {e1}, {e1}, {e1}};
  std::vector<int> y{1, 0, 0, 0, 1, 1, 1, 0};
  Calibration c = fit_calibration(s, y, {"mm-bd"}, "log1p", 0, 0, "hand-made");
  EXPECT_NEAR(c.weights[0], 2 * std::log(3.0), 1e-9);
  EXPECT_NEAR(c.intercept, -std::log(3.0), 1e-9);
  EXPECT_EQ(parse_calibration(to_json(c), "c.json").weights, c.weights);
  Calibration cv = fit_calibration(s, y, {"mm-bd"}, "log1p", 0.1, 2, "hand-made");
  EXPECT_TRUE(cv.metrics.contains("cv_roc_auc"));
  EXPECT_TRUE(cv.metrics.contains("cv_cross_entropy"));
}

}  // namespace
}  // namespace bdguard
