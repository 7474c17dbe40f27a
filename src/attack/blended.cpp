// Blended (Chen, Liu, Li, Lu, Song 2017, "Targeted Backdoor Attacks on Deep Learning
// Systems Using Data Poisoning"): a full-image pattern mixed into every pixel,
// x' = (1 - alpha) x + alpha pattern.
#include <ATen/ATen.h>

#include <cmath>

#include "bdguard/attack.h"
#include "bdguard/dataset.h"
#include "bdguard/error.h"

namespace bdguard {

Trigger make_blended_trigger(const TriggerOptions& o, const Shape& input_shape, Rng& rng) {
  const int64_t C = input_shape[0], H = input_shape[1], W = input_shape[2];
  if (!(o.alpha > 0 && o.alpha <= 1)) {
    fail<InvalidArgument>("--alpha", "", "a value in (0, 1]", std::to_string(o.alpha));
  }
  Trigger t;
  t.blend = o.alpha;
  if (o.pattern == "noise") {
    // Uniform noise: each value an integer 0..255, channel by channel, row by row.
    t.pattern = at::empty({C, H, W}, at::kFloat);
    float* v = t.pattern.data_ptr<float>();
    for (int64_t i = 0; i < C * H * W; ++i) v[i] = static_cast<float>(rng.below(256));
  } else {
    t.pattern = load_image(o.pattern, {C, H, W}).squeeze(0);
  }
  return t;
}

}  // namespace bdguard
