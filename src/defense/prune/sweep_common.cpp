#include "sweep_common.h"

#include <ATen/ATen.h>

#include "bdguard/error.h"

namespace bdguard::sweep {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<double> channel_means(const at::Tensor& cut) {
  at::Tensor x = cut.reshape({cut.size(0), cut.size(1), -1}).contiguous();
  const int64_t channels = x.size(1), hw = x.size(2);
  const float* px = x.data_ptr<float>();
  std::vector<double> sums(static_cast<size_t>(channels), 0.0);
  for (int64_t i = 0; i < x.size(0); ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      const float* q = px + (i * channels + c) * hw;
      double s = 0;
      for (int64_t k = 0; k < hw; ++k) s += q[k];
      sums[static_cast<size_t>(c)] += s;
    }
  }
  double denom = static_cast<double>(std::max<int64_t>(x.size(0), 1) * hw);
  for (auto& s : sums) s /= denom;
  return sums;
}

int64_t count_hits(const std::vector<int64_t>& pred, const std::vector<int64_t>& truth) {
  int64_t h = 0;
  for (size_t i = 0; i < pred.size(); ++i) h += pred[i] == truth[i];
  return h;
}

SweepStep record(int step, int64_t channel, int64_t channels, const std::vector<TrackView>& tracks,
                 SweepResult& r) {
  SweepStep s;
  s.step = step;
  s.channel = channel;
  s.fraction_pruned = static_cast<double>(step) / static_cast<double>(channels);
  s.valid_hits = tracks[0].hits;
  s.valid_asr_hits = tracks[1].hits;
  s.valid_accuracy = percent(tracks[0].hits, tracks[0].data->size());
  s.valid_asr = percent(tracks[1].hits, tracks[1].data->size());
  if (tracks.size() > 2) {
    s.test_accuracy = percent(tracks[2].hits, tracks[2].data->size());
    s.test_asr = percent(tracks[3].hits, tracks[3].data->size());
    r.test_predictions.push_back(*tracks[2].labels);
    r.poisoned_test_predictions.push_back(*tracks[3].labels);
  }
  return s;
}

bool stop_now(const SweepResult& r, const SweepOptions& o) {
  const SweepStep& base = r.steps.front();
  const SweepStep& last = r.steps.back();
  return base.valid_accuracy - last.valid_accuracy > o.stop_drop;
}

void check_sweep_data(const SweepData& d) {
  if (!d.clean || !d.poisoned) {
    throw InvalidArgument("prune: clean and poisoned validation data are both required");
  }
  if ((d.test == nullptr) != (d.poisoned_test == nullptr)) {
    throw InvalidArgument("prune: --test and --poisoned-test go together");
  }
}

SweepResult start_result(const Model& m, const ChannelUnit& target, const SweepData& data) {
  SweepResult r;
  r.layer = m.node(static_cast<size_t>(target.node)).name;
  r.target = describe_target(m, target);
  r.kind = target.kind == ChannelKind::kOutput ? "output" : "input";
  for (const auto& s : target.slices) r.zeroed.push_back(m.node(static_cast<size_t>(s.param)).name);
  r.channels = target.channels;
  r.n_clean = data.clean->size();
  r.n_poisoned = data.poisoned->size();
  r.n_test = data.test ? data.test->size() : 0;
  r.n_poisoned_test = data.poisoned_test ? data.poisoned_test->size() : 0;
  return r;
}

}  // namespace bdguard::sweep
