// Every defense of defend.h on the same model and data, side by side: a
// BackdoorBench-style table on the user's own model.
//
// Each method gets the same clean validation data (and its seeded held-out split) and
// chooses everything from it; the poisoned validation data is reported only. The
// defended models are measured on the test files: clean accuracy and attack success
// rate in percent, the accuracy lost against the BadNet, and BackdoorBench's defense
// effectiveness rating
//   DER = (max(0, ASR_bd - ASR) - max(0, ACC_bd - ACC) + 1) / 2,
// on fractions, reported in percent (50: no change; 100: the backdoor gone at no cost).
// A method that fails on the model gets a row with the reason; the others still run.
//
// Where every poisoned test image carries one label (an all-to-one attack's target),
// each row also has its natural rate: the percentage of the clean test images of the
// other labels that the model puts in the target label with no trigger on them. It is
// the floor under the ASR that no defense can remove by removing the backdoor: a
// model's own confusion between the target and its neighbours (T-shirts and shirts).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bdguard/defend.h"

namespace bdguard {

// DER in percent, from rates in percent.
double defense_effectiveness(double acc_bd, double asr_bd, double acc, double asr);

// The label all the given labels share; nullopt when there are none or several.
std::optional<int64_t> single_label(const std::vector<int64_t>& labels);
// Percentage of the images whose label is not `target` that are predicted `target`
// (0 when every image is the target's).
double natural_rate(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels,
                    int64_t target);

struct CompareData {
  TensorData valid;                                     // clean validation data
  std::optional<TensorData> poisoned_valid;             // reported only
  TensorData test, poisoned_test;                       // the table's rates
  const NeuralCleanseResult* neural_cleanse = nullptr;  // reused by nc-unlearn
};

// The proxy ASR (what a defender without poisoned data can measure; bdguard/repair.h):
// the clean validation data is split as every defense splits it (kFinetuneHoldout, the
// seed); the reversed triggers are those of the given Neural Cleanse result
// (CompareData::neural_cleanse: `compare --detect`, `run`'s detection stage) or of
// Neural Cleanse run on the training part with the defenses' options; each model's
// proxy ASR is measured on the held-out part. Each method chooses its epoch and its
// tuned setting by it (defend.h); compare picks no row by it. That own run is
// nc-unlearn's too (as in repair), so compare's rows are the candidates repair would
// train with the same seed.
struct CompareOptions {
  std::vector<std::string> methods;              // empty: every method, in defense_methods() order
  bool proxy = true;                             // measure the proxy ASR (above)
  DefenseOptions defense;                        // seed, batch, progress (params: per method below)
  std::map<std::string, nlohmann::json> params;  // options per method
  // Where the defended models go: DIR/models/<method>.<ext> (empty: not saved).
  std::string out_dir;
  std::function<void(const std::string& method)> on_start;
};

struct CompareRow {
  std::string method;
  bool ok = false;
  std::string error;                   // why the method failed (ok = false)
  double clean_accuracy = 0, asr = 0;  // on the test files, percent
  double accuracy_drop = 0;            // the BadNet's accuracy minus this one's, points
  double der = 0;                      // percent
  std::optional<double> natural_rate;  // percent (see the top); nullopt: no one target
  std::optional<double> proxy_asr;     // percent, held-out clean data (above)
  double seconds = 0;
  DefenseMetrics valid;       // on the held-out / poisoned validation data
  std::string model, sha256;  // the saved model, relative to out_dir
  nlohmann::json figures, params;
};

struct CompareResult {
  double baseline_accuracy = 0, baseline_asr = 0;  // the BadNet on the test files
  DefenseMetrics baseline_valid;
  std::optional<int64_t> target;  // the label of every poisoned test image, if one
  std::optional<double> baseline_natural_rate;
  std::optional<double> baseline_proxy_asr;  // nullopt: no proxy measured
  nlohmann::json proxy;                      // to_json(AttackProxy), null without one
  int64_t n_test = 0, n_poisoned_test = 0, n_valid = 0, n_poisoned_valid = 0;
  std::vector<CompareRow> rows;
  int best = -1;  // the row with the highest DER (ties: fewer points lost), -1: none ran
  double seconds = 0;
};

CompareResult compare_defenses(const Model& m, const CompareData& data,
                               const CompareOptions& options);

// "nc-unlearn: ASR 0.9 % at 1.2 points lost (DER 98.9 %)", or why no method won.
std::string compare_verdict(const CompareResult& r);

nlohmann::json to_json(const CompareResult& r);

}  // namespace bdguard
