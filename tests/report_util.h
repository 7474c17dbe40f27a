// A hand-made run report for the report and plot tests.
#pragma once

#include <string>

#include "bdguard/fileio.h"
#include "bdguard/report.h"
#include "bdguard/sweep_files.h"

namespace bdguard::test {

// A 4-channel sweep by hand: accuracy 98 -> 97 -> 95 -> 88 -> 10, ASR 100 -> 100 -> 99 -> 80 -> 2.
// Drops of 2, 4 and 10 points are first reached at steps 2 (95: 3 points), 2 and 3 (88 is
// exactly 10 below 98, which counts).
inline RunReport small_report(bool with_test = true) {
  RunReport r;
  r.tool_version = "test";
  r.model_name = "bd_net.h5";
  r.num_classes = 10;
  r.settings = {{"model", "bd_net.h5"}, {"batch", 512}};
  r.inputs = {{"model", "bd_net.h5", std::string(64, 'a'), 1234}};
  r.valid = {98, 100, 100, 50};
  if (with_test) r.test = SplitMetrics{97, 100, 200, 100};
  SweepResult& s = r.sweep;
  s.layer = "conv_3";
  s.cut_layer = "pool_3";
  s.channels = 4;
  s.mean_activation = {0.5, 0.1, 2.0, 0.3};
  s.order = {1, 3, 0, 2};
  const double acc[] = {98, 97, 95, 88, 10}, asr[] = {100, 100, 99, 80, 2};
  for (int i = 0; i <= 4; ++i) {
    SweepStep st;
    st.step = i;
    st.channel = i == 0 ? -1 : s.order[static_cast<size_t>(i - 1)];
    st.fraction_pruned = i / 4.0;
    st.valid_accuracy = acc[i];
    st.valid_asr = asr[i];
    if (with_test) {
      st.test_accuracy = acc[i] - 1;
      st.test_asr = asr[i] - 1;
    }
    s.steps.push_back(st);
  }
  s.n_clean = 100;
  s.n_poisoned = 50;
  if (with_test) s.n_test = 200, s.n_poisoned_test = 100;
  for (double drop : {2.0, 4.0, 10.0}) {
    ReportedModel m;
    m.saved.drop = drop;
    m.saved.reached = true;
    m.saved.step = drop == 10 ? 3 : 2;
    m.saved.path = "/out/model_X=" + std::to_string(static_cast<int>(drop)) + ".h5";
    m.saved.sha256 = std::string(64, 'b');
    r.saved.push_back(m);
  }
  r.timings = {{"load", 0.5}, {"sweep", 2.25}};
  return r;
}

// sweep.csv, as `bdguard prune` and `bdguard run` write it, for the plots to read.
inline void write_sweep_csv(const RunReport& r, const std::string& dir) {
  write_file_atomic(dir + "/sweep.csv", sweep_csv(r.sweep));
}

}  // namespace bdguard::test
