// Post-training defenses: each a function of (model, data, options) on the graph of any
// model, whatever file it came from. `compare.h` runs them side by side.
//
// Every defense gets the BadNet and the clean validation data. A seeded part of that
// data (`holdout`, 20 % by default, the split finetune.h uses) is held out: the
// defense trains on the rest and makes every choice it has to make (a threshold, the
// epoch kept) on the held-out part. Poisoned validation data, when given, is reported,
// never used. A defense returns a model with the BadNet's graph: saved, it keeps the
// input's format and structure, and pruned channels are exactly zero.
//
//   finetune      plain fine-tuning on the clean data (bdguard finetune, nothing pruned)
//   fine-pruning  prune to a validation drop as bdguard prune does, then fine-tune
//   nc-unlearn    Neural Cleanse's unlearning: the reversed trigger of each flagged label
//                 stamped on a fraction of the clean data, true labels kept, fine-tuned
//   anp           Adversarial Neuron Pruning (Wu & Wang, NeurIPS 2021)
//   clp           Channel Lipschitzness-based Pruning (Zheng et al., ECCV 2022), data-free
//   nad           Neural Attention Distillation (Li et al., ICLR 2021)
//   i-bau         Implicit Backdoor Adversarial Unlearning (Zeng et al., ICLR 2022)
//   sau           Shared Adversarial Unlearning (Wei et al., NeurIPS 2023)
//   ft-sam        fine-tuning with sharpness-aware minimisation (Zhu et al., ICCV 2023)
//   fst           Feature Shift Tuning (Min et al., NeurIPS 2023)
//
// Each method's options are a JSON object; defense_defaults() gives every key with its
// default (from the method's original code, see the README) and its meaning.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/detect.h"
#include "bdguard/evaluate.h"
#include "bdguard/finetune.h"
#include "bdguard/model.h"
#include "bdguard/train.h"

namespace bdguard {

struct DefenseData {
  TensorData clean;  // clean validation images (required, except for clp)
  // Poisoned validation images (labels: the attack target): reported, never used.
  std::optional<TensorData> poisoned;
  // Neural Cleanse on this model with this data, if already run (nc-unlearn then uses
  // it instead of running Neural Cleanse itself).
  const NeuralCleanseResult* neural_cleanse = nullptr;
};

struct DefenseOptions {
  uint64_t seed = 0;
  int64_t eval_batch = kDefaultBatch;
  // Options of the method; keys not given take defense_defaults(method)'s values.
  nlohmann::json params = nlohmann::json::object();
  // Neural Cleanse settings for nc-unlearn when it runs Neural Cleanse itself.
  NeuralCleanseOptions neural_cleanse;
  TrainProgressFn train_progress;                 // training epochs and steps
  ProgressFn progress;                            // other loops: (done, total)
  std::function<void(const std::string&)> stage;  // names each step of the method
};

struct DefenseMetrics {
  // On the held-out validation images, percent (none for clp run without clean data).
  std::optional<double> clean_accuracy;
  std::optional<double> asr;  // on the poisoned validation images, percent
};

struct DefenseResult {
  std::string method;
  Model model;
  DefenseMetrics before, after;  // the BadNet's and the defended model's
  int64_t n_train = 0, n_holdout = 0, n_poisoned = 0;
  nlohmann::json figures = nlohmann::json::object();  // channels pruned, threshold, epochs...
  nlohmann::json params = nlohmann::json::object();   // every option, as used
  double seconds = 0;
};

// The methods, in the order compare lists them.
const std::vector<std::string>& defense_methods();
bool is_defense_method(const std::string& method);
// {"KEY": {"default": V, "help": "..."}} for every option of `method`.
nlohmann::json defense_defaults(const std::string& method);
// The paper and the code its defaults come from.
std::string defense_source(const std::string& method);
// Whether the method trains on clean data (clp does not: it is data-free).
bool defense_needs_clean(const std::string& method);
// `params` completed with the defaults. Throws InvalidArgument for an unknown method,
// an option it does not have, or a value of the wrong type or out of range.
nlohmann::json defense_params(const std::string& method, const nlohmann::json& params);

// The setting a method hinges on (its "tune" option, empty: none) and the values it is
// chosen among, per model, by pick_tuned on the held-out clean part and the proxy of
// the attack (repair.h). A user's own value of the setting is never overridden.
struct TunedSetting {
  std::string key;
  std::vector<double> values;
};
TunedSetting defense_tuned_setting(const std::string& method);

// One run of a method with one value of its tuned setting, measured on the held-out part.
struct TuneTrial {
  double value = 0;
  bool is_default = false;
  double accuracy = 0;   // held-out clean accuracy, percent
  double proxy_asr = 0;  // proxy ASR on the held-out part, percent
  double seconds = 0;
};
// The trial kept: among those whose accuracy is at least `base_accuracy - max_drop`
// (the BadNet's held-out accuracy less the drop allowed), the lowest proxy ASR; ties go
// to the higher accuracy, then to the default value, then to the earlier trial. With
// none that close, the highest accuracy. -1 for no trials.
int pick_tuned(const std::vector<TuneTrial>& trials, double base_accuracy, double max_drop);
// tune_max_drop's default: a point below repair's --max-drop (3), for the noise of a
// held-out part of 400 images.
constexpr double kTuneMaxDrop = 2.0;

// Runs `method` on a copy of `m`.
DefenseResult defend(const std::string& method, const Model& m, const DefenseData& data,
                     const DefenseOptions& options);

nlohmann::json to_json(const DefenseMetrics& m);

}  // namespace bdguard
