// What the fast and the plain sweep share: recording steps, channel means, checks.
#pragma once

#include <ATen/Tensor.h>

#include <chrono>
#include <vector>

#include "bdguard/prune.h"

namespace bdguard::sweep {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t);

// One data set's predictions during a sweep.
struct TrackView {
  const LabDataset* data = nullptr;
  int64_t hits = 0;
  const std::vector<int64_t>* labels = nullptr;
};
template <class T>
std::vector<TrackView> tracks_of(const std::vector<T*>& tracks) {
  std::vector<TrackView> out;
  for (const T* t : tracks) out.push_back({t->data, t->hits, &t->labels});
  return out;
}

// Mean of every channel of an (N, C, h, w) tensor, summed in float64 in a fixed order:
// the same numbers for any thread count.
std::vector<double> channel_means(const at::Tensor& cut);
int64_t count_hits(const std::vector<int64_t>& pred, const std::vector<int64_t>& truth);
// The step's rates from the tracks (clean, poisoned[, test, poisoned test]); keeps the
// test predictions in `r`.
SweepStep record(int step, int64_t channel, int64_t channels, const std::vector<TrackView>& tracks,
                 SweepResult& r);
bool stop_now(const SweepResult& r, const SweepOptions& o);
void check_sweep_data(const SweepData& d);
// The result's description of the target and the data sizes.
SweepResult start_result(const Model& m, const ChannelUnit& target, const SweepData& data);

}  // namespace bdguard::sweep
