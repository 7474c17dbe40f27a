// What `bdguard prune` writes: the pruned models at the accuracy-drop thresholds,
// DIR/sweep.csv and DIR/sweep.json.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdguard/finetune.h"
#include "bdguard/goodnet.h"
#include "bdguard/model.h"
#include "bdguard/prune.h"

namespace bdguard {

struct SavedModel {
  double drop = 0;  // X, in accuracy points
  bool reached = false;
  int step = -1;     // first step with a drop of at least X points
  std::string file;  // model_X=<X>.h5 or .onnx (the input's format)
  std::string path;  // DIR/<file> (empty when not reached)
  std::string sha256;
};

// "model_X=2.h5", "model_X=2.5.onnx".
std::string drop_file_name(double drop, const std::string& extension = ".h5");
// "DIR/model_X=2_finetuned.onnx" for "DIR/model_X=2.onnx".
std::string finetuned_path(const std::string& path);
// "2", "2.5": X as users write it.
std::string format_drop(double drop);

// Saves the pruned model of each threshold into `dir` (see prune.h: first_step_with_drop).
std::vector<SavedModel> save_drop_models(const Model& m, const SweepResult& r,
                                         const std::vector<double>& drops, const std::string& dir);

// A saved model after fine-tuning on clean validation data (fine-pruning), with its
// GoodNet on the test files (when given).
struct FinePrunedModel {
  double drop = 0;
  std::string path, sha256;  // DIR/model_X=<X>_finetuned.<ext>
  double holdout_accuracy_before = 0, holdout_accuracy_after = 0;  // held-out clean data
  std::optional<double> asr_before, asr_after;                     // poisoned validation data
  double test_accuracy = 0, test_asr = 0;
  int best_epoch = 0, epochs = 0;
  int diverged_epoch = 0;  // FinetuneResult::diverged_epoch
  double seconds = 0;
  GoodNetRow goodnet;
};

// Fine-tunes the pruned model of every reached threshold (finetune.h: pruned channels
// stay exactly zero) and saves it beside its model_X=<X>.<ext> as model_X=<X>_finetuned.<ext>.
// `data` is the sweep's data; the GoodNet rows use the sweep's BadNet test predictions.
std::vector<FinePrunedModel> fine_prune_saved(
    const Model& m, const SweepResult& r, const std::vector<SavedModel>& saved,
    const FinetuneData& data, const FinetuneOptions& options,
    const std::function<TrainProgressFn(double drop)>& progress_for = {});
nlohmann::json to_json(const FinePrunedModel& f);

// DIR/sweep.csv: `step,channel,fraction_pruned,valid_accuracy,valid_asr` (and
// `,test_accuracy,test_asr` with test files); step 0 is the unpruned model.
std::string sweep_csv(const SweepResult& r);

// DIR/sweep.json: the curve, pruning order, mean activations, baseline, saved models
// (step, SHA-256), GoodNet rows, `settings`, and `timings` (the only part that varies
// between runs on the same inputs).
nlohmann::json sweep_json(const SweepResult& r, const std::vector<SavedModel>& saved,
                          const std::vector<GoodNetRow>& goodnet, const nlohmann::json& settings,
                          const std::vector<FinePrunedModel>& fine_pruned = {});

}  // namespace bdguard
