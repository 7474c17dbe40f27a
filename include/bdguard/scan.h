// bdguard scan: several backdoor detectors on one model, their scores combined into
// one probability that the model is backdoored.
//
// Each detector (src/detect/, one file each) returns per-label statistics, a
// model-level score (larger: more suspicious), a p-value where its statistic has one,
// the label it suspects and its time. The combination is a calibration (a logistic
// regression on the detectors' transformed scores, fitted on a labelled zoo and read
// from a file), or without one the uncalibrated rule: the smallest p-value,
// Bonferroni-corrected for the D detectors that have one, p = min(1, D * min_d p_d),
// becomes the probability alpha / (alpha + p) with alpha = 0.05, so that at the
// default threshold 0.5 the model is called backdoored exactly when p <= 0.05; a
// detector without a p-value (K-Arm) enters as sigmoid(score), its score being 0 at
// its own decision bound, and the larger probability wins (docs/detectors.md).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/detect.h"
#include "bdguard/k_arm.h"
#include "bdguard/mm_bd.h"
#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard {

constexpr double kScanThreshold = 0.5;       // probability at or above which: backdoored
constexpr double kUncalibratedAlpha = 0.05;  // the uncalibrated rule's level
constexpr double kMaxScore = 300;            // -log10 of a p-value of 0

// The detectors scan knows, and whether each needs clean data.
const std::vector<std::string>& scan_detector_names();  // {"mm-bd", "nc", "k-arm"}
bool detector_needs_data(const std::string& name);
// Detector names as --detectors takes them: "mm-bd,k-arm" ("" for none).
std::string detector_list(const std::vector<std::string>& names);

struct DetectorReport {
  std::string name;
  double score = 0;
  std::optional<double> p_value;
  int64_t target = -1;
  int64_t source = -1;  // the source label of a label-specific finding; -1: none
  nlohmann::json labels = nlohmann::json::array();  // per-label statistics
  double seconds = 0;
  nlohmann::json details = nlohmann::json::object();  // the detector's own fields
};

// MM-BD: score -log10(p) (at most kMaxScore), its p-value and target.
DetectorReport mm_bd_report(const MmBdResult& r);
// Neural Cleanse: score the largest anomaly index of a label whose mask norm is below
// the median (0 if none); p-value 1 - Phi(score)^K for K labels, the normal tail of
// the largest of K z-scores (an approximation: MAD-based indices of few labels have
// heavier tails); target the first flagged label, else the smallest norm.
DetectorReport nc_report(const NeuralCleanseResult& r);
// K-Arm: score ln(bound / size) less the symmetric check's penalty (k_arm.h), 0 at
// the reference code's decision bound; no p-value (nothing honest to give: the trigger
// size has no null distribution); target and source (-1: universal) the best arm's.
DetectorReport k_arm_report(const KArmResult& r);

// K-Arm's per-label reference (docs/detectors.md, TrojAI's clean reference models):
// for each label, the size of its universal trigger on the clean models of a labelled
// zoo, as the median of their log sizes (a fraction of the image). A trigger counts
// against its own label's natural trigger (Fashion-MNIST's bags have a handle that K-Arm
// finds in every model) instead of one bound shared by every label. It holds for
// models of the zoo's task: `classes` labels and (C, H, W) images `input`.
struct KArmReference {
  int64_t classes = 0;
  std::vector<int64_t> input;  // (C, H, W)
  std::vector<double> sizes;   // per label
  int64_t models = 0;          // the clean models it was measured on
};
// The reference of clean models' K-Arm reports (their `labels`: every arm; `details`:
// `classes` and `input`, as k_arm_report writes them). A label no universal arm
// measured keeps K-Arm's universal bound. InvalidArgument without a report, or for
// reports of models with other classes or image shapes.
KArmReference k_arm_reference(const std::vector<const DetectorReport*>& clean);
// K-Arm's score against a reference: the largest ln(sizes[t] / size) over the universal
// arms, or K-Arm's own score when its best arm is a pair (with the symmetric check
// that only that pair had) and larger. With every size at the universal bound it is
// K-Arm's own score. `target` and `source` (-1: universal) are the arm's.
struct ReferencedScore {
  double score = 0;
  int64_t target = -1, source = -1;
  double size = 1;       // the arm's trigger, a fraction of the image
  double reference = 0;  // its label's reference size, or K-Arm's bound for a pair
};
ReferencedScore k_arm_referenced_score(const KArmReference& ref, const DetectorReport& k_arm);
// Why `ref` does not hold for the model K-Arm scanned (its report's `details`): "" when
// it does.
std::string k_arm_reference_mismatch(const KArmReference& ref, const DetectorReport& k_arm);
nlohmann::json to_json(const KArmReference& r);

// A fitted combination, as a calibration file holds it (docs/commands/scan.md):
// {"format": "bdguard-scan-calibration", "version": 1, "detectors": [...],
//  "transform": "identity" | "log1p", "weights": [...], "intercept": b,
//  optional "reference": {"k-arm": {"classes", "input", "sizes", "models"}},
//  "trained_on": ..., optional "metrics": {...}}.
struct Calibration {
  std::vector<std::string> detectors;
  std::string transform = "identity";
  std::vector<double> weights;
  double intercept = 0;
  std::optional<KArmReference> k_arm_reference;
  nlohmann::json trained_on;
  nlohmann::json metrics = nlohmann::json::object();
};
// Reads `doc` strictly (every key known, types and sizes right; FormatError naming
// `file` otherwise).
Calibration parse_calibration(const nlohmann::json& doc, const std::string& file);
Calibration read_calibration(const std::string& path);
nlohmann::json to_json(const Calibration& c);
// scan.json's `calibration`: {"file", "sha256", "default", "detectors", "trained_on"} of `c` read
// from `file` (`is_default`: the shipped one, chosen without a flag); nulls and false without.
nlohmann::json calibration_json(const Calibration* c, const std::string& file, bool is_default);
// The feature of one score under `transform` (log1p of a negative score is of 0).
double calibration_feature(const std::string& transform, double score);

// Logistic regression by Newton's method (IRLS): P(y = 1 | x) = sigmoid(b + w . x),
// maximising the log-likelihood minus l2/2 |w|^2 (the intercept is not penalised).
// Rows of `x` all have the same length; `y` holds 0 and 1. Throws InvalidArgument
// when it does not converge (separable data with l2 = 0).
struct LogisticFit {
  std::vector<double> weights;
  double intercept = 0;
  int iterations = 0;
};
LogisticFit fit_logistic(const std::vector<std::vector<double>>& x, const std::vector<int>& y,
                         double l2 = 0);
double sigmoid(double z);

struct ScanVerdict {
  double probability = 0;
  bool backdoored = false;
  double threshold = kScanThreshold;
  int64_t target = -1;  // -1: none
  int64_t source = -1;  // -1: none (no label-specific finding)
  // With a calibration's K-Arm reference: {"applied", "why" (when not), "score",
  // "target", "source", "size", "reference_size"}; null without one.
  nlohmann::json reference;
};
// The calibration's features of one model's reports (in c.detectors' order, each the
// transformed score; K-Arm's against the calibration's reference where it holds for
// the model), with each feature's target and source. InvalidArgument unless `reports`
// are exactly the calibration's detectors (in any order).
struct CalibrationFeatures {
  std::vector<double> x;
  std::vector<int64_t> target, source;
  nlohmann::json reference;  // as ScanVerdict's
};
CalibrationFeatures calibration_features(const Calibration& c,
                                         const std::vector<DetectorReport>& reports);
// The calibrated verdict: sigmoid(intercept + weights . features). The target is that
// of the detector whose term w_d * feature_d is largest.
ScanVerdict combine(const Calibration& c, const std::vector<DetectorReport>& reports,
                    double threshold);
// The uncalibrated rule (above). The target is that of the smallest p-value, or of the
// detector without one whose sigmoid(score) is larger. InvalidArgument without reports.
ScanVerdict combine_uncalibrated(const std::vector<DetectorReport>& reports, double threshold);

// scan.json's verdict and detectors: {"probability", "backdoored", "threshold",
// "target", "source", "detectors": [{"name", "score", "p_value", "target", "labels",
// "seconds"}]} (labels and targets of -1 as null).
nlohmann::json scan_verdict_json(const ScanVerdict& v, const std::vector<DetectorReport>& reports);

struct ScanOptions {
  std::vector<std::string> detectors;  // in scan_detector_names()
  MmBdOptions mm_bd;
  NeuralCleanseOptions nc;
  KArmOptions k_arm;
};
struct ScanResult {
  std::vector<DetectorReport> reports;  // in the order of ScanOptions::detectors
  std::optional<MmBdResult> mm_bd;
  std::optional<NeuralCleanseResult> nc;
  std::optional<KArmResult> k_arm;
};
// Runs the detectors on `m`; `clean` may be null when none of them needs data.
ScanResult run_detectors(const Model& m, const TensorData* clean, const ScanOptions& o);

}  // namespace bdguard

namespace bdguard {

// Fits a calibration to labelled scores (`scores[i][d]`: model i, detector d of
// `detectors`) with `transform` and ridge `l2`, and records in its metrics the
// `folds`-fold cross-validated ROC-AUC and cross-entropy (campaign.h's roc_auc and
// cross_entropy, TrojAI's scores) (models dealt to folds in
// order i % folds; folds 0: none). `trained_on` is stored as given.
Calibration fit_calibration(const std::vector<std::vector<double>>& scores,
                            const std::vector<int>& y, const std::vector<std::string>& detectors,
                            const std::string& transform, double l2, int folds,
                            const nlohmann::json& trained_on);
// The same fitted on the models' reports (`reports[i]`: model i's, every detector of
// `detectors`), with K-Arm's per-label reference measured on the clean models
// (`with_reference`, K-Arm among `detectors`): on all of them for the file, and on each
// cross-validation fold's training models alone for its metrics, so that no model is
// scored against a reference it helped to make.
Calibration fit_calibration(const std::vector<std::vector<DetectorReport>>& reports,
                            const std::vector<int>& y, const std::vector<std::string>& detectors,
                            const std::string& transform, double l2, int folds, bool with_reference,
                            const nlohmann::json& trained_on);

}  // namespace bdguard
