// Fine-tuning with pruned channels held at zero (see finetune.h).
#include "bdguard/finetune.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "bdguard/error.h"
#include "bdguard/evaluate.h"
#include "bdguard/prune.h"

namespace bdguard {
namespace {

// Keeps the held-out split independent of the shuffling seed's stream.
constexpr uint64_t kSplitSalt = 0x686f6c646f7574ULL;  // "holdout"

void check(const FinetuneData& d, const FinetuneOptions& o) {
  if (!d.clean) throw InvalidArgument("finetune: clean validation data is required");
  if ((d.test == nullptr) != (d.poisoned_test == nullptr)) {
    throw InvalidArgument("finetune: --test and --poisoned-test go together");
  }
  if (!(o.holdout > 0 && o.holdout < 1)) {
    fail<InvalidArgument>("--holdout", "", "a fraction in (0, 1)", std::to_string(o.holdout));
  }
  if (o.epochs < 0) fail<InvalidArgument>("--epochs", "", "0 or more", std::to_string(o.epochs));
  if (d.clean->size() < 2) {
    fail<InvalidArgument>(d.clean->path(), "data", "at least 2 images to split",
                          std::to_string(d.clean->size()));
  }
}

double accuracy_on(const Model& m, const LabDataset& data, int64_t batch,
                   std::vector<int64_t>* predictions = nullptr) {
  auto pred = predict_dataset({&m}, data, batch);
  double acc = match_rate(pred[0], data.labels());
  if (predictions) *predictions = std::move(pred[0]);
  return acc;
}

nlohmann::json metrics_json(const FinetuneMetrics& m) {
  auto opt = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
  };
  return {{"holdout_accuracy", m.holdout_accuracy},
          {"asr", opt(m.asr)},
          {"test_accuracy", opt(m.test_accuracy)},
          {"test_asr", opt(m.test_asr)}};
}

}  // namespace

EpochKeeper::EpochKeeper(bool use_proxy, double slack)
    : use_proxy_(use_proxy), slack_(use_proxy ? std::max(0.0, slack) : 0.0) {}

// Whether `a` is kept rather than `b` whenever both can be (a's accuracy is at least
// b's, so a stays within the slack as long as b does).
bool EpochKeeper::beats(const Entry& a, const Entry& b) const {
  if (a.accuracy < b.accuracy) return false;
  if (a.proxy != b.proxy) return a.proxy < b.proxy;
  return a.accuracy > b.accuracy || a.epoch < b.epoch;
}

void EpochKeeper::offer(int epoch, double accuracy, double proxy_asr, const Model& m) {
  Entry e{epoch, accuracy, use_proxy_ ? proxy_asr : 0.0, {}};
  best_ = std::max(best_, accuracy);
  const double floor = best_ - slack_;
  front_.erase(std::remove_if(front_.begin(), front_.end(),
                              [&](const Entry& f) { return f.accuracy < floor || beats(e, f); }),
               front_.end());
  if (e.accuracy < floor) return;
  for (const Entry& f : front_) {
    if (beats(f, e)) return;
  }
  for (const auto& p : m.parameters()) e.weights.push_back(p.detach().clone());
  front_.push_back(std::move(e));
}

const EpochKeeper::Entry* EpochKeeper::kept() const {
  const Entry* k = nullptr;
  for (const Entry& e : front_) {
    if (!k || e.proxy < k->proxy ||
        (e.proxy == k->proxy &&
         (e.accuracy > k->accuracy || (e.accuracy == k->accuracy && e.epoch < k->epoch)))) {
      k = &e;
    }
  }
  return k;
}

int EpochKeeper::restore(Model& m) const {
  const Entry* k = kept();
  if (!k) return 0;
  size_t i = 0;
  for (int node : m.parameter_nodes()) m.node(static_cast<size_t>(node)).value = k->weights[i++];
  return k->epoch;
}

double EpochKeeper::accuracy() const {
  const Entry* k = kept();
  return k ? k->accuracy : -1;
}

double EpochKeeper::proxy_asr() const {
  const Entry* k = kept();
  return k ? k->proxy : 0;
}

ValidationSplit split_validation(const TensorData& clean, double holdout, uint64_t seed) {
  const int64_t n = clean.size();
  if (n < 2)
    fail<InvalidArgument>("", "clean data", "at least 2 images to split", std::to_string(n));
  if (!(holdout > 0 && holdout < 1)) {
    fail<InvalidArgument>("", "holdout", "a fraction in (0, 1)", std::to_string(holdout));
  }
  const int64_t n_hold =
      std::clamp<int64_t>(std::llround(holdout * static_cast<double>(n)), 1, n - 1);
  std::vector<int64_t> order = Rng(seed ^ kSplitSalt).permutation(n);
  std::vector<int64_t> hold(order.begin(), order.begin() + n_hold);
  std::vector<int64_t> rest(order.begin() + n_hold, order.end());
  std::sort(hold.begin(), hold.end());
  std::sort(rest.begin(), rest.end());
  return {clean.subset(rest), clean.subset(hold)};
}

FinetuneRun finetune_in_memory(Model& m, const TensorData& train, const TensorData& holdout,
                               const TensorData* poisoned, const FinetuneOptions& o) {
  FinetuneRun r;
  const std::vector<int64_t> hold_labels = holdout.label_vector();
  auto holdout_accuracy = [&](const Model& model) {
    return match_rate(predict(model, holdout, o.eval_batch), hold_labels);
  };
  EpochKeeper keeper(static_cast<bool>(o.proxy), o.proxy_slack);
  std::vector<at::Tensor> input;  // kept when no epoch ends (0 epochs, or the first diverged)
  for (const auto& p : m.parameters()) input.push_back(p.detach().clone());
  TrainOptions t;
  t.epochs = o.epochs;
  t.batch = o.batch;
  t.lr = o.lr;
  t.optimizer = o.optimizer;
  t.cosine_decay = o.cosine_decay;
  t.seed = o.seed;
  t.zero_masks = pruned_masks(m);
  t.progress = o.progress;
  t.clip_grad_norm = o.clip_grad_norm;
  t.shift = o.shift;
  t.on_epoch = [&](Model& model, const EpochStats& s) {
    const double acc = holdout_accuracy(model);
    std::optional<double> asr, proxy;
    if (poisoned) asr = accuracy(model, *poisoned, o.eval_batch);
    if (o.proxy) proxy = o.proxy(model);
    r.epochs.push_back({s.epoch, s.loss, s.accuracy, acc, asr, s.seconds, proxy});
    keeper.offer(s.epoch, acc, proxy.value_or(0), model);
  };
  if (o.epochs > 0) {
    for (const EpochStats& e : train_model(m, train, t)) {
      if (e.diverged) r.diverged_epoch = e.epoch;
    }
  }
  r.best_epoch = keeper.restore(m);
  if (r.best_epoch == 0) {
    size_t k = 0;
    for (int i : m.parameter_nodes()) m.node(static_cast<size_t>(i)).value = input[k++];
    r.holdout_accuracy = holdout_accuracy(m);
    if (o.proxy) r.proxy_asr = o.proxy(m);
  } else {
    r.holdout_accuracy = keeper.accuracy();
    if (o.proxy) r.proxy_asr = keeper.proxy_asr();
  }
  return r;
}

FinetuneResult finetune(Model& m, const FinetuneData& d, const FinetuneOptions& o) {
  check(d, o);
  const auto start = std::chrono::steady_clock::now();
  FinetuneResult r;
  ValidationSplit split = split_validation(read_tensor_data(*d.clean), o.holdout, o.seed);
  r.n_train = split.train.size();
  r.n_holdout = split.holdout.size();
  r.n_poisoned = d.poisoned ? d.poisoned->size() : 0;
  r.n_test = d.test ? d.test->size() : 0;
  r.n_poisoned_test = d.poisoned_test ? d.poisoned_test->size() : 0;
  std::optional<TensorData> poisoned;
  if (d.poisoned) poisoned = read_tensor_data(*d.poisoned);

  auto measure = [&](const Model& model) {
    FinetuneMetrics x;
    x.holdout_accuracy = accuracy(model, split.holdout, o.eval_batch);
    if (poisoned) x.asr = accuracy(model, *poisoned, o.eval_batch);
    if (d.test) {
      x.test_accuracy = accuracy_on(model, *d.test, o.eval_batch, &r.test_predictions);
      x.test_asr = accuracy_on(model, *d.poisoned_test, o.eval_batch, &r.poisoned_test_predictions);
    }
    return x;
  };
  r.before = measure(m);
  r.pruned = pruned_channels(m);
  FinetuneRun run =
      finetune_in_memory(m, split.train, split.holdout, poisoned ? &*poisoned : nullptr, o);
  r.epochs = std::move(run.epochs);
  r.best_epoch = run.best_epoch;
  r.diverged_epoch = run.diverged_epoch;
  r.after = measure(m);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

nlohmann::json to_json(const std::vector<FinetuneEpoch>& epochs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : epochs) {
    out.push_back({{"epoch", e.epoch},
                   {"loss", e.loss},
                   {"train_accuracy", e.train_accuracy},
                   {"holdout_accuracy", e.holdout_accuracy},
                   {"asr", e.asr ? nlohmann::json(*e.asr) : nlohmann::json()},
                   {"proxy_asr", e.proxy_asr ? nlohmann::json(*e.proxy_asr) : nlohmann::json()}});
  }
  return out;
}

nlohmann::json to_json(const FinetuneResult& r) {
  const nlohmann::json epochs = to_json(r.epochs);
  nlohmann::json pruned = nlohmann::json::array();
  for (const auto& p : r.pruned) {
    pruned.push_back({{"layer", p.layer},
                      {"kind", p.kind},
                      {"count", p.channels.size()},
                      {"channels", p.channels}});
  }
  return {
      {"before", metrics_json(r.before)},
      {"after", metrics_json(r.after)},
      {"best_epoch", r.best_epoch},
      {"diverged_epoch", r.diverged_epoch ? nlohmann::json(r.diverged_epoch) : nlohmann::json()},
      {"epochs", epochs},
      {"n_train", r.n_train},
      {"n_holdout", r.n_holdout},
      {"n_poisoned", r.n_poisoned},
      {"n_test", r.n_test},
      {"n_poisoned_test", r.n_poisoned_test},
      {"pruned", pruned},
      {"seconds", r.seconds}};
}

}  // namespace bdguard
