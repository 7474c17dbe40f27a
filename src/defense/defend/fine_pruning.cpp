// fine-pruning: bdguard prune's sweep over the whole clean validation data, the model
// pruned to the first step `drop` points below the unpruned accuracy, then fine-tuned
// with its pruned channels held at zero (Liu, Dolan-Gavitt, Garg, RAID 2018).
#include "bdguard/prune.h"
#include "methods.h"

namespace bdguard::defense {

nlohmann::json fine_pruning_schema() {
  nlohmann::json s = nlohmann::json::object();
  s["drop"] = option(4.0, "validation accuracy drop (points) the pruning goes to", 0, 100);
  s["layer"] =
      option("", "the Conv, Gemm or MatMul node to prune (empty: bdguard prune's default)");
  add_finetune_options(s, kFinetuneEpochs, kFinetuneLr, kFinetuneBatch);
  return s;
}

void run_fine_pruning(const Context& c, DefenseResult& r) {
  c.stage("pruning sweep");
  const LabDataset clean =
      LabDataset::in_memory("clean validation data", c.data.clean.images, c.data.clean.labels);
  // The sweep records an ASR per step; without poisoned data the clean images stand in
  // (that ASR is not reported).
  const TensorData& bd = c.poisoned() ? *c.poisoned() : c.data.clean;
  const LabDataset poisoned =
      LabDataset::in_memory("poisoned validation data", bd.images, bd.labels);
  SweepOptions so;
  so.layer = c.params.at("layer").get<std::string>();
  so.stop_drop = get_double(c.params, "drop");
  so.batch = c.options.eval_batch;
  so.progress = c.options.progress;
  const SweepResult sweep = run_sweep(c.badnet, {&clean, &poisoned, nullptr, nullptr}, so);
  int step = first_step_with_drop(sweep, so.stop_drop);
  const bool reached = step >= 0;
  if (!reached) step = sweep.steps.back().step;
  r.model = pruned_copy(c.badnet, sweep, step);

  c.stage("fine-tuning");
  FinetuneRun run = finetune_in_memory(r.model, c.split.train, c.split.holdout, c.poisoned(),
                                       finetune_options(c, c.data.neural_cleanse));
  r.figures = finetune_figures(run);
  std::vector<int64_t> pruned(sweep.order.begin(), sweep.order.begin() + step);
  const SweepStep& at = sweep.steps[static_cast<size_t>(step)];
  r.figures["layer"] = sweep.layer;
  r.figures["target"] = sweep.target;
  r.figures["channels"] = sweep.channels;
  r.figures["channels_pruned"] = step;
  r.figures["pruned"] = pruned;
  r.figures["drop_reached"] = reached;
  r.figures["pruned_valid_accuracy"] = at.valid_accuracy;
  r.figures["unpruned_valid_accuracy"] = sweep.steps.front().valid_accuracy;
}

}  // namespace bdguard::defense
