// The numbers of a saved model, looked up in its sweep step: what the plots and the
// report show for each row of RunReport::saved.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bdguard/report.h"

namespace bdguard::report {

struct ModelView {
  double drop = 0;
  bool reached = false;
  int step = -1;
  std::string file;  // relative to the output folder ("" when not reached)
  std::string sha256;
  double fraction_pruned = 0;
  double valid_accuracy = 0, valid_asr = 0, valid_drop = 0;
  std::optional<double> test_accuracy, test_asr;
  const GoodNetRow* goodnet = nullptr;
};

// One view per saved model, in order. Throws InvalidArgument for a step outside the sweep.
std::vector<ModelView> model_views(const RunReport& r);

}  // namespace bdguard::report
