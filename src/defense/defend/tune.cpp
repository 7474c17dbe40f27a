// Per-model choice of the setting a defense hinges on (methods.h: run_tuned).
//
// The method runs once per candidate value of its setting, each run on a fresh copy of
// the BadNet with the same split, seed and data. Each run is measured on the held-out
// part of the clean data: its accuracy, and its proxy ASR (Neural Cleanse's reversed
// triggers stamped on the same held-out images, repair.h). The rule is repair's, inside
// one method: among the runs that lose at most `tune_max_drop` points of the BadNet's
// held-out accuracy, the lowest proxy ASR; ties go to the higher accuracy, then to the
// default; with none that close, the highest accuracy. (Measured against the best run's
// accuracy instead, as EpochKeeper does for epochs, the gentlest value won nearly
// always: the run that changes the BadNet least keeps its accuracy best.) Nothing else
// is seen: no test file, no poisoned image.
#include <chrono>
#include <cmath>
#include <sstream>

#include "bdguard/repair.h"
#include "methods.h"

namespace bdguard::defense {
namespace {

std::string value_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Why the setting is not tuned (empty: it is).
std::string untuned_reason(const Context& c, const std::string& key, const nlohmann::json& given) {
  if (c.params.at("tune").get<std::string>() == "off") return "tune is off";
  if (given.is_object() && given.contains(key)) return "set by the user";
  if (c.split.holdout.size() == 0) return "no clean data to choose on";
  if (!c.data.neural_cleanse || proxy_triggers(*c.data.neural_cleanse).empty()) {
    return "no proxy of the attack (Neural Cleanse's triggers) to choose by";
  }
  return "";
}

}  // namespace

void add_tune_options(nlohmann::json& schema, const std::string& key,
                      const std::vector<double>& values) {
  std::string list;
  for (double v : values) list += (list.empty() ? "" : ", ") + value_text(v);
  schema["tune"] =
      option("proxy", "per-model choice of " + key + " among " + list +
                          ": proxy (the lowest proxy ASR of the runs losing at most "
                          "tune_max_drop points of the BadNet's held-out accuracy; needs a "
                          "proxy of the attack) or off (the value of " +
                          key + " alone)");
  schema["tune"]["choices"] = {"proxy", "off"};
  schema["tune_max_drop"] = option(kTuneMaxDrop,
                                   "tune proxy: points of the BadNet's held-out accuracy a run "
                                   "may lose and still be chosen for a lower proxy ASR",
                                   0, 100);
}

}  // namespace bdguard::defense

namespace bdguard {
namespace {

bool tune_beats(const TuneTrial& a, const TuneTrial& b, double floor) {
  const bool a_in = a.accuracy >= floor;
  const bool b_in = b.accuracy >= floor;
  if (a_in != b_in) return a_in;
  if (!a_in) return a.accuracy > b.accuracy;
  if (a.proxy_asr != b.proxy_asr) return a.proxy_asr < b.proxy_asr;
  if (a.accuracy != b.accuracy) return a.accuracy > b.accuracy;
  return a.is_default && !b.is_default;
}

}  // namespace

int pick_tuned(const std::vector<TuneTrial>& trials, double base_accuracy, double max_drop) {
  if (trials.empty()) return -1;
  int pick = 0;
  for (size_t i = 1; i < trials.size(); ++i) {
    if (tune_beats(trials[i], trials[static_cast<size_t>(pick)], base_accuracy - max_drop)) {
      pick = static_cast<int>(i);
    }
  }
  return pick;
}

}  // namespace bdguard

namespace bdguard::defense {

namespace {

// One run of the method with `key` = `v`, measured on the held-out part.
struct Trial {
  TuneTrial figures;
  DefenseResult result;
};

Trial run_trial(const Context& c, Runner run, const std::string& method, const std::string& key,
                double v, const std::vector<const LabelTrigger*>& triggers) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool int_setting = c.params.at(key).is_number_integer();
  nlohmann::json params = c.params;
  params[key] = int_setting ? nlohmann::json(std::llround(v)) : nlohmann::json(v);
  const Context trial_context{c.badnet, c.data, c.options, params, c.split};
  trial_context.stage(key + " = " + value_text(v));
  Trial t;
  t.result.method = method;
  t.result.model = c.badnet.clone();
  t.result.params = params;
  run(trial_context, t.result);
  t.figures.value = v;
  t.figures.is_default = v == c.params.at(key).get<double>();
  t.figures.accuracy = accuracy(t.result.model, c.split.holdout, c.options.eval_batch);
  t.figures.proxy_asr = proxy_asr(t.result.model, triggers, c.split.holdout, c.options.eval_batch);
  t.figures.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

}  // namespace

void run_tuned(const Context& c, DefenseResult& r, Runner run, const std::string& key,
               const std::vector<double>& values, const nlohmann::json& given) {
  const std::string why = untuned_reason(c, key, given);
  if (why.empty() == false || values.empty()) {
    run(c, r);
    r.figures["tuning"] = {{"setting", key}, {"tuned", false}, {"why", why}};
    return;
  }
  const std::vector<const LabelTrigger*> triggers = proxy_triggers(*c.data.neural_cleanse);
  const double max_drop = get_double(c.params, "tune_max_drop");
  // defend() measured the BadNet on the held-out part (untuned_reason: there is one).
  const double base = r.before.clean_accuracy.value();
  // One after another, each on all compute threads: two at once, each on one thread,
  // took longer (182 s against 172 s for compare's eight methods on a Fashion-MNIST
  // BadNet, 2 cores), and each run is then the run of its value alone, bit for bit.
  std::vector<Trial> done;
  for (double v : values) done.push_back(run_trial(c, run, r.method, key, v, triggers));
  std::vector<TuneTrial> trials;
  nlohmann::json rows = nlohmann::json::array();
  for (const Trial& t : done) {
    trials.push_back(t.figures);
    rows.push_back({{"value", t.result.params.at(key)},
                    {"holdout_accuracy", t.figures.accuracy},
                    {"proxy_asr", t.figures.proxy_asr},
                    {"seconds", t.figures.seconds}});
  }
  DefenseResult& best = done[static_cast<size_t>(pick_tuned(trials, base, max_drop))].result;
  r.model = std::move(best.model);
  r.figures = std::move(best.figures);
  r.params = best.params;
  r.figures["tuning"] = {{"setting", key},
                         {"tuned", true},
                         {"rule",
                          "the lowest proxy ASR of the runs losing at most tune_max_drop points "
                          "of the BadNet's held-out accuracy (ties: the higher accuracy, then "
                          "the default; none: the highest accuracy)"},
                         {"tune_max_drop", max_drop},
                         {"badnet_holdout_accuracy", base},
                         {"chosen", r.params[key]},
                         {"trials", rows}};
}

}  // namespace bdguard::defense
