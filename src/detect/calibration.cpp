// The combination of the detectors' scores: the calibration file, the logistic fit
// that makes one, and the verdicts with and without one (bdguard/scan.h).
#include <algorithm>
#include <cmath>
#include <set>

#include "bdguard/config.h"
#include "bdguard/error.h"
#include "bdguard/fileio.h"
#include "bdguard/scan.h"

namespace bdguard {
namespace {

const char* kFormat = "bdguard-scan-calibration";
constexpr size_t kMaxCalibrationBytes = size_t{1} << 20;

std::string list_text(const std::vector<std::string>& v) {
  return v.empty() ? "none" : detector_list(v);
}

// Solves a x = b (n small) by Gaussian elimination with partial pivoting.
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r) {
      if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
    }
    std::swap(a[c], a[p]);
    std::swap(b[c], b[p]);
    if (std::abs(a[c][c]) < 1e-300) {
      fail<InvalidArgument>("", "logistic fit", "features that are not collinear",
                            "a singular Hessian");
    }
    for (size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= a[i][k] * x[k];
    x[i] = s / a[i][i];
  }
  return x;
}

// The calibration file's "reference": {"k-arm": {"classes", "input", "sizes", "models"}}.
template <typename Bad>
KArmReference parse_reference(const nlohmann::json& doc, const Calibration& c, Bad bad) {
  if (!doc.is_object() || doc.size() != 1 || !doc.contains("k-arm")) {
    bad("'reference'", "{\"k-arm\": {...}}", doc.dump());
  }
  if (std::find(c.detectors.begin(), c.detectors.end(), "k-arm") == c.detectors.end()) {
    bad("'reference'", "one for a detector of the calibration", "k-arm's");
  }
  const nlohmann::json& r = doc["k-arm"];
  if (!r.is_object() || r.size() != 4) {
    bad("'reference.k-arm'", "{classes, input, sizes, models}", r.dump());
  }
  KArmReference ref;
  const nlohmann::json &classes = r.value("classes", nlohmann::json()),
                       &models = r.value("models", nlohmann::json()),
                       &input = r.value("input", nlohmann::json()),
                       &sizes = r.value("sizes", nlohmann::json());
  if (!classes.is_number_integer() || classes.get<int64_t>() < 2 ||
      classes.get<int64_t>() > 1000000) {
    bad("'reference.k-arm.classes'", "an integer from 2 to 1000000", classes.dump());
  }
  ref.classes = classes.get<int64_t>();
  if (!models.is_number_integer() || models.get<int64_t>() < 1) {
    bad("'reference.k-arm.models'", "a positive integer", models.dump());
  }
  ref.models = models.get<int64_t>();
  if (!input.is_array() || input.size() != 3) {
    bad("'reference.k-arm.input'", "[C, H, W]", input.dump());
  }
  for (const auto& v : input) {
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1000000) {
      bad("'reference.k-arm.input'", "[C, H, W] of positive integers", input.dump());
    }
    ref.input.push_back(v.get<int64_t>());
  }
  if (!sizes.is_array() || static_cast<int64_t>(sizes.size()) != ref.classes) {
    bad("'reference.k-arm.sizes'", std::to_string(ref.classes) + " numbers (one per label)",
        sizes.is_array() ? std::to_string(sizes.size()) + " entries" : sizes.dump());
  }
  for (const auto& v : sizes) {
    if (!v.is_number() || !(v.get<double>() > 0) || !(v.get<double>() <= 1)) {
      bad("'reference.k-arm.sizes'", "fractions of the image in (0, 1]", v.dump());
    }
    ref.sizes.push_back(v.get<double>());
  }
  return ref;
}

}  // namespace

double sigmoid(double z) {
  return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z));
}

double calibration_feature(const std::string& transform, double score) {
  return transform == "log1p" ? std::log1p(std::max(0.0, score)) : score;
}

Calibration parse_calibration(const nlohmann::json& doc, const std::string& file) {
  auto bad = [&file](const std::string& object, const std::string& expected,
                     const std::string& found) { fail(file, object, expected, found); };
  if (!doc.is_object()) bad("calibration", "a JSON object", doc.type_name());
  const std::set<std::string> known{"format",    "version",    "detectors", "transform", "weights",
                                    "intercept", "trained_on", "metrics",   "reference"};
  for (const auto& [key, value] : doc.items()) {
    if (!known.count(key))
      bad("calibration", "only the keys of docs/commands/scan.md", "'" + key + "'");
  }
  if (!doc.contains("format") || doc["format"] != kFormat) {
    bad("'format'", std::string("\"") + kFormat + "\"",
        doc.contains("format") ? doc["format"].dump() : "nothing");
  }
  if (!doc.contains("version") || doc["version"] != 1) {
    bad("'version'", "1", doc.contains("version") ? doc["version"].dump() : "nothing");
  }
  Calibration c;
  const nlohmann::json& det = doc.value("detectors", nlohmann::json());
  if (!det.is_array() || det.empty()) bad("'detectors'", "a non-empty array", det.dump());
  const auto& names = scan_detector_names();
  for (const auto& d : det) {
    if (!d.is_string() ||
        std::find(names.begin(), names.end(), d.get<std::string>()) == names.end()) {
      bad("'detectors'", "names among " + list_text(names), d.dump());
    }
    const std::string name = d.get<std::string>();
    if (std::find(c.detectors.begin(), c.detectors.end(), name) != c.detectors.end()) {
      bad("'detectors'", "each detector once", name + " twice");
    }
    c.detectors.push_back(name);
  }
  const nlohmann::json& tr = doc.value("transform", nlohmann::json());
  if (tr != "identity" && tr != "log1p") bad("'transform'", "\"identity\" or \"log1p\"", tr.dump());
  c.transform = tr.get<std::string>();
  const nlohmann::json& w = doc.value("weights", nlohmann::json());
  if (!w.is_array() || w.size() != c.detectors.size()) {
    bad("'weights'", std::to_string(c.detectors.size()) + " numbers (one per detector)", w.dump());
  }
  for (const auto& v : w) {
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      bad("'weights'", "finite numbers", v.dump());
    c.weights.push_back(v.get<double>());
  }
  const nlohmann::json& b = doc.value("intercept", nlohmann::json());
  if (!b.is_number() || !std::isfinite(b.get<double>()))
    bad("'intercept'", "a finite number", b.dump());
  c.intercept = b.get<double>();
  if (!doc.contains("trained_on") || doc["trained_on"].is_null()) {
    bad("'trained_on'", "what the calibration was fitted on", "nothing");
  }
  c.trained_on = doc["trained_on"];
  if (doc.contains("reference")) c.k_arm_reference = parse_reference(doc["reference"], c, bad);
  if (doc.contains("metrics")) {
    if (!doc["metrics"].is_object()) bad("'metrics'", "an object", doc["metrics"].type_name());
    c.metrics = doc["metrics"];
  }
  return c;
}

Calibration read_calibration(const std::string& path) {
  return parse_calibration(read_json_file(path, kMaxCalibrationBytes, "a scan calibration"), path);
}

nlohmann::json calibration_json(const Calibration* c, const std::string& file, bool is_default) {
  return {{"file", c ? nlohmann::json(file) : nlohmann::json()},
          {"sha256", c ? nlohmann::json(sha256_file(file)) : nlohmann::json()},
          {"default", c != nullptr && is_default},
          {"detectors", c ? nlohmann::json(c->detectors) : nlohmann::json()},
          {"trained_on", c ? c->trained_on : nlohmann::json()}};
}

nlohmann::json to_json(const Calibration& c) {
  nlohmann::json doc = {{"format", kFormat},          {"version", 1},
                        {"detectors", c.detectors},   {"transform", c.transform},
                        {"weights", c.weights},       {"intercept", c.intercept},
                        {"trained_on", c.trained_on}, {"metrics", c.metrics}};
  if (c.k_arm_reference) doc["reference"] = {{"k-arm", to_json(*c.k_arm_reference)}};
  return doc;
}

LogisticFit fit_logistic(const std::vector<std::vector<double>>& x, const std::vector<int>& y,
                         double l2) {
  if (x.empty() || x.size() != y.size()) {
    fail<InvalidArgument>(
        "", "logistic fit", "as many labels as rows, at least 1",
        std::to_string(x.size()) + " rows, " + std::to_string(y.size()) + " labels");
  }
  const size_t d = x[0].size(), n = d + 1;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].size() != d || (y[i] != 0 && y[i] != 1)) {
      fail<InvalidArgument>("", "logistic fit row " + std::to_string(i),
                            std::to_string(d) + " features and a label 0 or 1", "another row");
    }
  }
  std::vector<double> beta(n, 0);  // intercept first
  LogisticFit fit;
  for (int it = 1; it <= 200; ++it) {
    std::vector<std::vector<double>> h(n, std::vector<double>(n, 0));
    std::vector<double> g(n, 0);
    for (size_t i = 0; i < x.size(); ++i) {
      std::vector<double> row{1};
      row.insert(row.end(), x[i].begin(), x[i].end());
      double z = 0;
      for (size_t k = 0; k < n; ++k) z += beta[k] * row[k];
      const double p = sigmoid(z), wgt = p * (1 - p);
      for (size_t a = 0; a < n; ++a) {
        g[a] += (y[i] - p) * row[a];
        for (size_t b = 0; b < n; ++b) h[a][b] += wgt * row[a] * row[b];
      }
    }
    for (size_t k = 1; k < n; ++k) {
      g[k] -= l2 * beta[k];
      h[k][k] += l2;
    }
    const std::vector<double> step = solve(h, g);
    double size = 0;
    for (size_t k = 0; k < n; ++k) {
      beta[k] += step[k];
      size = std::max(size, std::abs(step[k]));
    }
    if (size < 1e-10) {
      fit.intercept = beta[0];
      fit.weights.assign(beta.begin() + 1, beta.end());
      fit.iterations = it;
      return fit;
    }
  }
  fail<InvalidArgument>("", "logistic fit", "convergence in 200 Newton steps",
                        "none (separable scores? fit with l2 > 0)");
}

CalibrationFeatures calibration_features(const Calibration& c,
                                         const std::vector<DetectorReport>& reports) {
  std::vector<std::string> ran;
  for (const auto& r : reports) ran.push_back(r.name);
  std::vector<std::string> a = ran, b = c.detectors;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (a != b) {
    fail<InvalidArgument>("", "calibration",
                          "one fitted for the detectors that ran (" + list_text(ran) + ")",
                          "one fitted for " + list_text(c.detectors));
  }
  CalibrationFeatures f;
  for (const std::string& name : c.detectors) {
    const auto& r = *std::find_if(reports.begin(), reports.end(),
                                  [&](const DetectorReport& x) { return x.name == name; });
    double score = r.score;
    int64_t target = r.target, source = r.source;
    if (name == "k-arm" && c.k_arm_reference) {
      const std::string why = k_arm_reference_mismatch(*c.k_arm_reference, r);
      f.reference = {{"applied", why.empty()}};
      if (why.empty()) {
        const ReferencedScore s = k_arm_referenced_score(*c.k_arm_reference, r);
        score = s.score;
        target = s.target;
        source = s.source;
        auto label = [](int64_t l) { return l >= 0 ? nlohmann::json(l) : nlohmann::json(); };
        f.reference.update({{"score", score},
                            {"target", label(target)},
                            {"source", label(source)},
                            {"size", s.size},
                            {"reference_size", s.reference}});
      } else {
        f.reference["why"] = why + ": K-Arm's own score is used";
      }
    }
    f.x.push_back(calibration_feature(c.transform, score));
    f.target.push_back(target);
    f.source.push_back(source);
  }
  return f;
}

ScanVerdict combine(const Calibration& c, const std::vector<DetectorReport>& reports,
                    double threshold) {
  const CalibrationFeatures f = calibration_features(c, reports);
  ScanVerdict v;
  v.threshold = threshold;
  v.reference = f.reference;
  double z = c.intercept, best = -INFINITY;
  for (size_t i = 0; i < c.detectors.size(); ++i) {
    const double term = c.weights[i] * f.x[i];
    z += term;
    if (term > best && f.target[i] >= 0) {
      best = term;
      v.target = f.target[i];
      v.source = f.source[i];
    }
  }
  v.probability = sigmoid(z);
  v.backdoored = v.probability >= threshold;
  return v;
}

ScanVerdict combine_uncalibrated(const std::vector<DetectorReport>& reports, double threshold) {
  ScanVerdict v;
  v.threshold = threshold;
  double p_min = 1;
  int64_t with_p = 0;
  for (const auto& r : reports) {
    if (!r.p_value) continue;
    ++with_p;
    if (*r.p_value < p_min || v.target < 0) {
      p_min = std::min(p_min, *r.p_value);
      v.target = r.target;
      v.source = r.source;
    }
  }
  if (with_p == 0 && reports.empty()) {
    fail<InvalidArgument>("", "uncalibrated verdict", "at least one detector", "none");
  }
  const double p = std::min(1.0, static_cast<double>(with_p) * p_min);
  v.probability = with_p > 0 ? kUncalibratedAlpha / (kUncalibratedAlpha + p) : 0;
  // A detector without a p-value decides by its own bound, where its score is 0.
  for (const auto& r : reports) {
    if (r.p_value || !(sigmoid(r.score) > v.probability)) continue;
    v.probability = sigmoid(r.score);
    v.target = r.target;
    v.source = r.source;
  }
  v.backdoored = v.probability >= threshold;
  return v;
}

}  // namespace bdguard
