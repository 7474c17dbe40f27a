// The Gamma distribution MM-BD fits to its null margins: maximum-likelihood fit,
// digamma and trigamma, the upper tail through the regularized incomplete gamma
// function (series below x < k + 1, Lentz's continued fraction above), and the
// p-value of a maximum.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "bdguard/error.h"
#include "bdguard/mm_bd.h"

namespace bdguard {
namespace {

constexpr double kTiny = 1e-300;
constexpr int kMaxIter = 1000;

// psi'(x): recurrence up to 10, then the asymptotic series.
double trigamma(double x) {
  double r = 0;
  while (x < 10) {
    r += 1 / (x * x);
    x += 1;
  }
  const double x2 = 1 / (x * x);
  return r + 1 / x + x2 / 2 +
         x2 / x * (1.0 / 6 - x2 * (1.0 / 30 - x2 * (1.0 / 42 - x2 * (1.0 / 30 - x2 * 5.0 / 66))));
}

// P(a, x) by its series (x < a + 1).
double lower_series(double a, double x) {
  double term = 1 / a, sum = term;
  for (int n = 1; n < kMaxIter; ++n) {
    term *= x / (a + n);
    sum += term;
    if (std::abs(term) < std::abs(sum) * 1e-16) break;
  }
  return sum * std::exp(-x + a * std::log(x) - std::lgamma(a));
}

// Q(a, x) by its continued fraction (x >= a + 1), modified Lentz.
double upper_fraction(double a, double x) {
  double b = x + 1 - a, c = 1 / kTiny, d = 1 / b, h = d;
  for (int i = 1; i < kMaxIter; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::abs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::abs(delta - 1) < 1e-16) break;
  }
  return std::exp(-x + a * std::log(x) - std::lgamma(a)) * h;
}

}  // namespace

double digamma(double x) {
  double r = 0;
  while (x < 10) {
    r -= 1 / x;
    x += 1;
  }
  const double x2 = 1 / (x * x);
  return r + std::log(x) - 0.5 / x -
         x2 * (1.0 / 12 - x2 * (1.0 / 120 - x2 * (1.0 / 252 - x2 * (1.0 / 240 - x2 / 132))));
}

GammaFit fit_gamma(const std::vector<double>& x, double loc) {
  if (x.size() < 2) {
    fail<InvalidArgument>("", "Gamma fit", "at least 2 values", std::to_string(x.size()));
  }
  double sum = 0, sum_log = 0;
  for (double v : x) {
    if (!(v - loc > 0) || !std::isfinite(v)) {
      fail<InvalidArgument>("", "Gamma fit",
                            "finite values above the location " + std::to_string(loc),
                            std::to_string(v));
    }
    sum += v - loc;
    sum_log += std::log(v - loc);
  }
  const double n = static_cast<double>(x.size());
  const double mean = sum / n;
  const double s = std::log(mean) - sum_log / n;
  if (!(s > 1e-12)) {
    fail<InvalidArgument>("", "Gamma fit", "values that are not all equal", "equal values");
  }
  // Minka's start, then Newton on ln k - psi(k) = s.
  double k = (3 - s + std::sqrt((s - 3) * (s - 3) + 24 * s)) / (12 * s);
  for (int i = 0; i < 100; ++i) {
    const double f = std::log(k) - digamma(k) - s;
    const double step = f / (1 / k - trigamma(k));
    double next = k - step;
    if (next <= 0) next = k / 2;
    const bool done = std::abs(next - k) < 1e-14 * k;
    k = next;
    if (done) break;
  }
  return GammaFit{k, mean / k, loc};
}

double gamma_sf(const GammaFit& g, double x) {
  const double z = (x - g.loc) / g.scale;
  if (!(z > 0)) return 1;
  if (z < g.shape + 1) return 1 - lower_series(g.shape, z);
  return upper_fraction(g.shape, z);
}

double max_p_value(double sf, int64_t k) {
  sf = std::clamp(sf, 0.0, 1.0);
  if (sf >= 1) return 1;
  return -std::expm1(static_cast<double>(k) * std::log1p(-sf));
}

}  // namespace bdguard
