// The fast sweep against the plain method: every step's counts, every test label,
// and the pruned weights must be identical.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "bdguard/prune.h"
#include "bdguard/sweep_files.h"
#include "model_util.h"

namespace bdguard::test {

inline void expect_same_sweep(const Model& m, const SweepResult& fast, const SweepResult& plain) {
  ASSERT_EQ(fast.order, plain.order);
  ASSERT_EQ(fast.mean_activation, plain.mean_activation);
  ASSERT_EQ(fast.steps.size(), plain.steps.size());
  ASSERT_EQ(fast.test_predictions.size(), plain.test_predictions.size());
  for (size_t s = 0; s < fast.steps.size(); ++s) {
    EXPECT_EQ(fast.steps[s].channel, plain.steps[s].channel) << "step " << s;
    EXPECT_EQ(fast.steps[s].valid_hits, plain.steps[s].valid_hits) << "step " << s;
    EXPECT_EQ(fast.steps[s].valid_asr_hits, plain.steps[s].valid_asr_hits) << "step " << s;
    EXPECT_EQ(fast.steps[s].test_accuracy, plain.steps[s].test_accuracy) << "step " << s;
    EXPECT_EQ(fast.steps[s].test_asr, plain.steps[s].test_asr) << "step " << s;
    if (s < fast.test_predictions.size()) {
      EXPECT_EQ(fast.test_predictions[s], plain.test_predictions[s]) << "step " << s;
      EXPECT_EQ(fast.poisoned_test_predictions[s], plain.poisoned_test_predictions[s])
          << "step " << s;
    }
  }
  EXPECT_EQ(sweep_csv(fast), sweep_csv(plain));
  for (int k : {1, 3, static_cast<int>(fast.steps.size()) - 1}) {
    Model a = pruned_copy(m, fast, k), b = pruned_copy(m, plain, k);
    EXPECT_TRUE(same_parameters(a, b)) << "after " << k << " steps";
  }
}

}  // namespace bdguard::test
