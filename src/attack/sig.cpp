// SIG (Barni, Kallas, Tondi, ICIP 2019, "A New Backdoor Attack in CNNs by Training Set
// Corruption without Label Poisoning"): a horizontal sinusoid added to every row,
// v(i, j) = delta sin(2 pi j f / W), the sum clamped to 0..255.
#include <ATen/ATen.h>

#include <cmath>

#include "bdguard/attack.h"
#include "bdguard/error.h"

namespace bdguard {

Trigger make_sig_trigger(const TriggerOptions& o, const Shape& input_shape) {
  const int64_t C = input_shape[0], H = input_shape[1], W = input_shape[2];
  if (!(o.delta > 0 && o.delta <= 255)) {
    fail<InvalidArgument>("--delta", "", "a value in (0, 255]", std::to_string(o.delta));
  }
  if (!(o.frequency > 0) || !std::isfinite(o.frequency)) {
    fail<InvalidArgument>("--frequency", "", "a positive number", std::to_string(o.frequency));
  }
  std::vector<float> row(static_cast<size_t>(W));
  for (int64_t j = 0; j < W; ++j) {
    row[static_cast<size_t>(j)] =
        static_cast<float>(o.delta * std::sin(2.0 * M_PI * static_cast<double>(j) * o.frequency /
                                              static_cast<double>(W)));
  }
  Trigger t;
  t.pattern = at::tensor(row, at::kFloat).view({1, 1, W}).expand({C, H, W}).contiguous();
  return t;
}

}  // namespace bdguard
