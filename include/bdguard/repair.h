// bdguard repair: the defenses of defend.h on one model, and the one to keep chosen from
// clean data alone.
//
// A defender has no poisoned data, so the attack is measured by a proxy: the reversed
// triggers Neural Cleanse finds on the model (its flagged labels; without one, the label
// of the smallest mask) stamped on held-out clean images, x' = (1 - m) x + m p. The
// proxy ASR of a model is the largest, over those triggers, percentage of the held-out
// images of other labels that it puts in the trigger's label.
//
// The clean data is split as every defense splits it (split_validation with the
// defenses' `holdout`, 20 %, and the seed): Neural Cleanse runs on the training part,
// every candidate trains on it and chooses its own settings on the held-out part, and
// the held-out part measures each candidate's clean accuracy and proxy ASR. The rule:
// among the candidates whose held-out accuracy is at most `max_drop` points below the
// model's, the lowest proxy ASR (ties: the higher accuracy, then the earlier method).
// Test and poisoned data never enter.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/compare.h"
#include "bdguard/defend.h"
#include "bdguard/detect.h"
#include "bdguard/model.h"

namespace bdguard {

constexpr double kRepairMaxDrop = 3.0;  // points of held-out clean accuracy

// The methods `--methods auto` runs, in defense_methods() order: every defense but anp
// and nad (on the BadNets of issue 26's first measurement they left most of the attack
// or lost most of the accuracy) and i-bau and sau (i-bau lost 8 to 19 points there and
// on the demo BadNet, sau left 91 % ASR on the demo's, and with its setting chosen per
// model it takes three times 25 s on a Fashion-MNIST CNN; docs/commands/repair.md).
std::vector<std::string> repair_auto_methods();

// The triggers of the proxy: Neural Cleanse's flagged labels, else its smallest mask.
std::vector<const LabelTrigger*> proxy_triggers(const NeuralCleanseResult& nc);
// The proxy ASR of `m` (percent; 0 without triggers): the largest over `triggers` of
// the share of `clean`'s images of other labels that `m` puts in the trigger's label
// once stamped.
double proxy_asr(const Model& m, const std::vector<const LabelTrigger*>& triggers,
                 const TensorData& clean, int64_t batch);

// The proxy as `compare` and `defend` report it beside the real ASR: `clean` split as
// every defense splits it (kFinetuneHoldout, `seed`), the triggers of `given` when there
// is one (`--detect`, run's detection stage), else of Neural Cleanse run with `nc` on the
// training part (into `*own` when given, so that the caller can reuse that run:
// nc-unlearn and the methods' epoch choice do); measured on the held-out part.
struct AttackProxy {
  std::vector<LabelTrigger> triggers;  // copies of proxy_triggers()
  std::string source;                  // where they came from, in words
  TensorData holdout;
};
AttackProxy make_attack_proxy(const Model& m, const TensorData& clean, uint64_t seed,
                              const NeuralCleanseResult* given, const NeuralCleanseOptions& nc,
                              NeuralCleanseResult* own = nullptr);
double proxy_asr(const Model& m, const AttackProxy& p, int64_t batch);
// {"labels", "source", "n_holdout"}
nlohmann::json to_json(const AttackProxy& p);

struct RepairCandidate {
  std::string method;
  bool ok = false;
  std::string error;          // why the method failed (ok = false)
  double clean_accuracy = 0;  // held-out, percent
  double proxy_asr = 0;       // held-out, percent
  double seconds = 0;
  nlohmann::json figures;  // the method's own (defend.h)
};

// Whether `c` ran and kept its held-out accuracy within `max_drop` points of `base_accuracy`.
bool repair_qualifies(double base_accuracy, const RepairCandidate& c, double max_drop);
// The index of the candidate the rule picks (above), or -1 when no candidate qualifies.
int pick_repair(double base_accuracy, const std::vector<RepairCandidate>& candidates,
                double max_drop);

struct RepairOptions {
  std::vector<std::string> methods;  // empty: repair_auto_methods()
  double max_drop = kRepairMaxDrop;
  DefenseOptions defense;  // seed, batch, progress; params per method below
  std::map<std::string, nlohmann::json> params;
  NeuralCleanseOptions neural_cleanse;  // for the proxy (and nc-unlearn, which reuses it)
  std::function<void(const std::string& method)> on_start;
};

struct RepairResult {
  double base_accuracy = 0, base_proxy_asr = 0;  // the model's, held-out
  std::vector<int64_t> proxy_labels;
  NeuralCleanseResult neural_cleanse;
  int64_t n_train = 0, n_holdout = 0;
  std::vector<RepairCandidate> candidates;
  int picked = -1;  // index into candidates; -1: none qualified
  Model model;      // the picked candidate's model (empty when none)
  double seconds = 0;
};

// Runs the candidates on `m` with the clean data `clean` (at least 2 images) and picks
// one. A method that fails is a candidate with its error; the others still run.
RepairResult repair(const Model& m, const TensorData& clean, const RepairOptions& o);

// repair's rule on a comparison that measured the proxy (`bdguard run`'s last stage,
// which picks among the defenses it compared instead of training them again): the rows
// of repair_auto_methods() that ran are the candidates, with their held-out clean
// accuracy (row.valid) and proxy ASR; the base is the BadNet's held-out accuracy and
// proxy ASR. picked is -1 when none qualifies or the comparison has no proxy.
struct RepairPick {
  std::vector<RepairCandidate> candidates;
  int picked = -1;
  double base_accuracy = 0, base_proxy_asr = 0, max_drop = kRepairMaxDrop;
  std::string model;            // the picked row's saved model, as the comparison names it
  std::string output, sha256;   // where the caller copied it (relative to its folder)
  std::vector<int64_t> labels;  // the proxy's trigger labels
};
RepairPick repair_from_compare(const CompareResult& c, double max_drop = kRepairMaxDrop);
// "nc-unlearn: the lowest proxy ASR (2.1 %) of the 6 compared defenses within 3 points of
// the BadNet's held-out accuracy (88.2 %); ..." or why none was picked.
std::string repair_reason(const RepairPick& p);
nlohmann::json to_json(const RepairPick& p);

nlohmann::json to_json(const RepairCandidate& c);

}  // namespace bdguard
