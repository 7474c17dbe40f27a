// Fitting a calibration on a labelled zoo (bdguard/scan.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "bdguard/campaign.h"
#include "bdguard/error.h"
#include "bdguard/scan.h"

namespace bdguard {

namespace {

// The K-Arm reports of the clean models among `rows` (indices into `reports`).
std::vector<const DetectorReport*> clean_k_arm(
    const std::vector<std::vector<DetectorReport>>& reports, const std::vector<int>& y,
    const std::vector<size_t>& rows) {
  std::vector<const DetectorReport*> out;
  for (size_t i : rows) {
    if (y[i] != 0) continue;
    for (const auto& r : reports[i]) {
      if (r.name == "k-arm") out.push_back(&r);
    }
  }
  return out;
}

// Calibration `c`'s features of `reports[i]` for every i in `rows`.
std::vector<std::vector<double>> features(const Calibration& c,
                                          const std::vector<std::vector<DetectorReport>>& reports,
                                          const std::vector<size_t>& rows) {
  std::vector<std::vector<double>> x;
  for (size_t i : rows) x.push_back(calibration_features(c, reports[i]).x);
  return x;
}

}  // namespace

Calibration fit_calibration(const std::vector<std::vector<DetectorReport>>& reports,
                            const std::vector<int>& y, const std::vector<std::string>& detectors,
                            const std::string& transform, double l2, int folds, bool with_reference,
                            const nlohmann::json& trained_on) {
  if (transform != "identity" && transform != "log1p") {
    fail<InvalidArgument>("", "calibration transform", "identity or log1p", transform);
  }
  if (reports.size() != y.size()) {
    fail<InvalidArgument>(
        "", "calibration", "a label per model",
        std::to_string(reports.size()) + " models, " + std::to_string(y.size()) + " labels");
  }
  if (with_reference && std::find(detectors.begin(), detectors.end(), "k-arm") == detectors.end()) {
    fail<InvalidArgument>("", "calibration reference", "k-arm among the detectors",
                          detector_list(detectors));
  }
  // A calibration of `rows`: the reference of their clean models, then the fit.
  auto fit_on = [&](const std::vector<size_t>& rows) {
    Calibration c;
    c.detectors = detectors;
    c.transform = transform;
    if (with_reference) c.k_arm_reference = k_arm_reference(clean_k_arm(reports, y, rows));
    std::vector<int> ty;
    for (size_t i : rows) ty.push_back(y[i]);
    const LogisticFit fit = fit_logistic(features(c, reports, rows), ty, l2);
    c.weights = fit.weights;
    c.intercept = fit.intercept;
    return c;
  };
  std::vector<size_t> all(reports.size());
  std::iota(all.begin(), all.end(), size_t{0});
  Calibration c = fit_on(all);
  c.trained_on = trained_on;
  c.metrics = {{"models", reports.size()}, {"l2", l2}, {"folds", folds}};
  if (folds >= 2) {
    std::vector<double> p(reports.size());
    for (int f = 0; f < folds; ++f) {
      std::vector<size_t> train, test;
      for (size_t i : all) {
        (static_cast<int>(i % static_cast<size_t>(folds)) == f ? test : train).push_back(i);
      }
      if (test.empty()) continue;
      const Calibration fc = fit_on(train);
      for (size_t i : test) {
        double z = fc.intercept;
        const std::vector<double> x = calibration_features(fc, reports[i]).x;
        for (size_t d = 0; d < x.size(); ++d) z += fc.weights[d] * x[d];
        p[i] = sigmoid(z);
      }
    }
    c.metrics["cv_roc_auc"] = roc_auc(p, y);
    c.metrics["cv_cross_entropy"] = cross_entropy(p, y);
  }
  return c;
}

Calibration fit_calibration(const std::vector<std::vector<double>>& scores,
                            const std::vector<int>& y, const std::vector<std::string>& detectors,
                            const std::string& transform, double l2, int folds,
                            const nlohmann::json& trained_on) {
  // Each row as the reports of its detectors: the same fit, without a reference.
  std::vector<std::vector<DetectorReport>> reports;
  for (const auto& row : scores) {
    if (row.size() != detectors.size()) {
      fail<InvalidArgument>("", "calibration scores",
                            std::to_string(detectors.size()) + " per model",
                            std::to_string(row.size()));
    }
    std::vector<DetectorReport>& r = reports.emplace_back(detectors.size());
    for (size_t d = 0; d < row.size(); ++d) {
      r[d].name = detectors[d];
      r[d].score = row[d];
    }
  }
  return fit_calibration(reports, y, detectors, transform, l2, folds, /*with_reference=*/false,
                         trained_on);
}

}  // namespace bdguard
