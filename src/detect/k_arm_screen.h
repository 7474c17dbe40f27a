// K-Arm's pre-screening (bdguard/k_arm.h, step 1). Internal to src/detect/.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "bdguard/k_arm.h"

namespace bdguard::detail {

struct KArmScreen {
  std::vector<KArmArm> arms;       // universal arms first, then pairs
  std::vector<int64_t> predicted;  // the model's label of every clean image
  int64_t top_k = 0;
};

// The arms of `m` on the clean images (float, NCHW).
KArmScreen k_arm_screen(const Model& m, const at::Tensor& images, const KArmOptions& o);

}  // namespace bdguard::detail
