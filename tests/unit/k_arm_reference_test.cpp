// K-Arm's per-label reference (scan.h): measured on clean models' reports, a model's
// score against it, the calibration file's "reference" read strictly, and a fit that
// measures the reference on each fold's own clean models.
#include <gtest/gtest.h>

#include <cmath>

#include "bdguard/error.h"
#include "bdguard/scan.h"

namespace bdguard {
namespace {

using nlohmann::json;

// A K-Arm report of a 3-class model of 1x4x4 images whose universal arms have these
// sizes (label i: sizes[i]), its own best arm the smallest.
DetectorReport k_arm(const std::vector<double>& sizes, int64_t classes = 3) {
  DetectorReport r;
  r.name = "k-arm";
  double smallest = 2;
  for (size_t i = 0; i < sizes.size(); ++i) {
    r.labels.push_back({{"target", i}, {"source", nullptr}, {"size", sizes[i]}});
    if (sizes[i] < smallest) {
      smallest = sizes[i];
      r.target = static_cast<int64_t>(i);
    }
  }
  r.score = k_arm_score(smallest, KArmOptions{}.universal_bound, NAN, 10);
  r.details = {{"classes", classes}, {"input", {1, 4, 4}}, {"size", smallest}};
  return r;
}

TEST(KArmReference, IsEachLabelsMedianSizeOnTheCleanModels) {
  const DetectorReport a = k_arm({0.1, 0.02, 0.4}), b = k_arm({0.3, 0.08, 0.4}),
                       c = k_arm({0.2, 0.04, 0.1});
  const KArmReference ref = k_arm_reference({&a, &b, &c});
  EXPECT_EQ(ref.classes, 3);
  EXPECT_EQ(ref.input, (std::vector<int64_t>{1, 4, 4}));
  EXPECT_EQ(ref.models, 3);
  ASSERT_EQ(ref.sizes.size(), 3u);
  EXPECT_NEAR(ref.sizes[0], 0.2, 1e-15);
  EXPECT_NEAR(ref.sizes[1], 0.04, 1e-15);
  EXPECT_NEAR(ref.sizes[2], 0.4, 1e-15);
  // Two models: the geometric mean of the middle pair.
  EXPECT_NEAR(k_arm_reference({&a, &b}).sizes[1], 0.04, 1e-15);
}

TEST(KArmReference, ScoresEachArmAgainstItsOwnLabel) {
  const DetectorReport a = k_arm({0.1, 0.02, 0.4}), b = k_arm({0.1, 0.02, 0.4});
  const KArmReference ref = k_arm_reference({&a, &b});
  // Label 1's natural trigger is the smallest, but label 2's is 4 times below its own.
  const ReferencedScore s = k_arm_referenced_score(ref, k_arm({0.1, 0.02, 0.1}));
  EXPECT_EQ(s.target, 2);
  EXPECT_EQ(s.source, -1);
  EXPECT_NEAR(s.score, std::log(4.0), 1e-12);
  EXPECT_NEAR(s.size, 0.1, 1e-15);
  EXPECT_NEAR(s.reference, 0.4, 1e-15);
  // A clean model like the references scores 0.
  EXPECT_NEAR(k_arm_referenced_score(ref, a).score, 0, 1e-12);
}

TEST(KArmReference, AtTheUniversalBoundItIsKArmsOwnScore) {
  KArmReference ref;
  ref.classes = 3;
  ref.input = {1, 4, 4};
  ref.sizes.assign(3, KArmOptions{}.universal_bound);
  const DetectorReport r = k_arm({0.1, 0.005, 0.4});
  const ReferencedScore s = k_arm_referenced_score(ref, r);
  EXPECT_NEAR(s.score, r.score, 1e-12);
  EXPECT_EQ(s.target, r.target);
}

TEST(KArmReference, KeepsKArmsCheckedPairWhenItScoresHigher) {
  const DetectorReport a = k_arm({0.1, 0.1, 0.1});
  const KArmReference ref = k_arm_reference({&a});
  DetectorReport pair = k_arm({0.1, 0.1, 0.1});
  pair.labels.push_back({{"target", 2}, {"source", 0}, {"size", 0.001}});
  pair.target = 2;
  pair.source = 0;
  pair.score = 1.5;  // after the symmetric check
  const ReferencedScore s = k_arm_referenced_score(ref, pair);
  EXPECT_EQ(s.target, 2);
  EXPECT_EQ(s.source, 0);
  EXPECT_EQ(s.score, 1.5);
  pair.score = -1;  // the check found it natural: the universal arms' 0 wins
  EXPECT_EQ(k_arm_referenced_score(ref, pair).source, -1);
}

TEST(KArmReference, HoldsOnlyForModelsOfItsTask) {
  const DetectorReport a = k_arm({0.1, 0.1, 0.1});
  const KArmReference ref = k_arm_reference({&a});
  EXPECT_EQ(k_arm_reference_mismatch(ref, a), "");
  const DetectorReport wide = k_arm({0.1, 0.1, 0.1, 0.1}, 4);
  EXPECT_NE(k_arm_reference_mismatch(ref, wide).find("4 classes"), std::string::npos);
  EXPECT_THROW(k_arm_reference({&a, &wide}), InvalidArgument);
  EXPECT_THROW(k_arm_reference({}), InvalidArgument);
  DetectorReport old = a;  // written before K-Arm recorded the model's classes
  old.details.erase("classes");
  EXPECT_THROW(k_arm_reference({&old}), InvalidArgument);
}

json referenced_doc() {
  return {{"format", "bdguard-scan-calibration"},
          {"version", 1},
          {"detectors", {"k-arm"}},
          {"transform", "identity"},
          {"weights", {2.0}},
          {"intercept", -1.0},
          {"reference",
           {{"k-arm",
             {{"classes", 3}, {"input", {1, 4, 4}}, {"sizes", {0.1, 0.1, 0.4}}, {"models", 2}}}}},
          {"trained_on", "hand-made"}};
}

TEST(KArmReference, CalibrationFileReadsAndWritesIt) {
  const Calibration c = parse_calibration(referenced_doc(), "c.json");
  ASSERT_TRUE(c.k_arm_reference.has_value());
  EXPECT_EQ(c.k_arm_reference->sizes, (std::vector<double>{0.1, 0.1, 0.4}));
  EXPECT_EQ(to_json(c)["reference"], referenced_doc()["reference"]);
  auto rejects = [](const std::function<void(json&)>& change) {
    json d = referenced_doc();
    change(d);
    EXPECT_THROW(parse_calibration(d, "c.json"), FormatError) << d.dump();
  };
  rejects([](json& d) { d["reference"]["k-arm"]["sizes"] = {0.1, 0.1}; });
  rejects([](json& d) { d["reference"]["k-arm"]["sizes"] = {0.1, 0.1, 0}; });
  rejects([](json& d) { d["reference"]["k-arm"]["sizes"] = {0.1, 0.1, 2}; });
  rejects([](json& d) { d["reference"]["k-arm"]["classes"] = 1; });
  rejects([](json& d) { d["reference"]["k-arm"]["input"] = {4, 4}; });
  rejects([](json& d) { d["reference"]["k-arm"].erase("models"); });
  rejects([](json& d) { d["reference"] = {{"mm-bd", d["reference"]["k-arm"]}}; });
  rejects([](json& d) { d["detectors"] = {"mm-bd"}; });  // a reference for a detector not fitted
}

TEST(KArmReference, CombineScoresAgainstItWhereItHolds) {
  const Calibration c = parse_calibration(referenced_doc(), "c.json");
  // Label 2's trigger 0.1 against its 0.4: ln 4; -1 + 2 ln 4.
  const ScanVerdict v = combine(c, {k_arm({0.2, 0.05, 0.1})}, 0.5);
  EXPECT_NEAR(v.probability, sigmoid(-1 + 2 * std::log(4.0)), 1e-12);
  EXPECT_EQ(v.target, 2);
  EXPECT_EQ(v.reference["applied"], true);
  EXPECT_EQ(v.reference["target"], 2);
  // Another task: K-Arm's own score, and why.
  const DetectorReport other = k_arm({0.2, 0.05, 0.1, 0.3}, 4);
  const ScanVerdict w = combine(c, {other}, 0.5);
  EXPECT_NEAR(w.probability, sigmoid(-1 + 2 * other.score), 1e-12);
  EXPECT_EQ(w.target, 1);
  EXPECT_EQ(w.reference["applied"], false);
  EXPECT_NE(w.reference["why"].get<std::string>().find("4 classes"), std::string::npos);
}

TEST(KArmReference, FitMeasuresItOnEachFoldsCleanModelsAlone) {
  // Every model has label 0's natural trigger (0.015); the BadNets have label 1's or
  // 2's at 0.02 (theirs: 0.3 on clean models).
  std::vector<std::vector<DetectorReport>> reports;
  std::vector<int> y;
  for (int i = 0; i < 12; ++i) {
    const bool bd = i % 2 == 1;
    const double jitter = 1 + 0.05 * (i % 3);
    std::vector<double> s{0.015 * jitter, 0.3 * jitter, 0.3};
    if (bd) s[1 + (i / 2) % 2] = 0.02 * jitter;
    reports.push_back({k_arm(s)});
    y.push_back(bd ? 1 : 0);
  }
  const Calibration with = fit_calibration(reports, y, {"k-arm"}, "identity", 1, 3, true, "t");
  ASSERT_TRUE(with.k_arm_reference.has_value());
  EXPECT_EQ(with.k_arm_reference->models, 6);
  EXPECT_GT(with.weights[0], 0);
  EXPECT_EQ(with.metrics["cv_roc_auc"], 1.0);
  // K-Arm's own score: label 0's natural trigger is as small as a backdoor's.
  const Calibration without = fit_calibration(reports, y, {"k-arm"}, "identity", 1, 3, false, "t");
  EXPECT_FALSE(without.k_arm_reference.has_value());
  EXPECT_LT(without.metrics["cv_roc_auc"].get<double>(), 1.0);
  EXPECT_THROW(fit_calibration(reports, y, {"mm-bd"}, "identity", 1, 3, true, "t"),
               InvalidArgument);
}

}  // namespace
}  // namespace bdguard
