// Fitting a calibration on a labelled zoo (bdguard/scan.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "bdguard/campaign.h"
#include "bdguard/error.h"
#include "bdguard/scan.h"

namespace bdguard {

Calibration fit_calibration(const std::vector<std::vector<double>>& scores,
                            const std::vector<int>& y, const std::vector<std::string>& detectors,
                            const std::string& transform, double l2, int folds,
                            const nlohmann::json& trained_on) {
  if (transform != "identity" && transform != "log1p") {
    fail<InvalidArgument>("", "calibration transform", "identity or log1p", transform);
  }
  std::vector<std::vector<double>> x = scores;
  for (auto& row : x) {
    if (row.size() != detectors.size()) {
      fail<InvalidArgument>("", "calibration scores",
                            std::to_string(detectors.size()) + " per model",
                            std::to_string(row.size()));
    }
    for (double& v : row) v = calibration_feature(transform, v);
  }
  Calibration c;
  c.detectors = detectors;
  c.transform = transform;
  LogisticFit all = fit_logistic(x, y, l2);
  c.weights = all.weights;
  c.intercept = all.intercept;
  c.trained_on = trained_on;
  c.metrics = {{"models", x.size()}, {"l2", l2}, {"folds", folds}};
  if (folds >= 2) {
    std::vector<double> p(x.size());
    for (int f = 0; f < folds; ++f) {
      std::vector<std::vector<double>> tx;
      std::vector<int> ty;
      for (size_t i = 0; i < x.size(); ++i) {
        if (static_cast<int>(i % static_cast<size_t>(folds)) != f) {
          tx.push_back(x[i]);
          ty.push_back(y[i]);
        }
      }
      LogisticFit fit = fit_logistic(tx, ty, l2);
      for (size_t i = static_cast<size_t>(f); i < x.size(); i += static_cast<size_t>(folds)) {
        double z = fit.intercept;
        for (size_t d = 0; d < fit.weights.size(); ++d) z += fit.weights[d] * x[i][d];
        p[i] = sigmoid(z);
      }
    }
    c.metrics["cv_roc_auc"] = roc_auc(p, y);
    c.metrics["cv_cross_entropy"] = cross_entropy(p, y);
  }
  return c;
}

}  // namespace bdguard
