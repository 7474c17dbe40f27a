// finetune: plain fine-tuning on the clean data, and the fine-tuning options every
// training method shares.
#include "bdguard/finetune.h"

#include "bdguard/prune.h"
#include "methods.h"

namespace bdguard::defense {

void add_finetune_options(nlohmann::json& schema, int epochs, double lr, int64_t batch) {
  schema["epochs"] = option(epochs, "fine-tuning epochs", 0, 100000);
  schema["lr"] = option(lr, "learning rate (cosine decay to 0 with \"cosine\")", 1e-12, 1e6);
  schema["batch"] = option(batch, "images per step", 1, 1 << 20);
  schema["optimizer"] = option("sgd", "sgd (momentum 0.9) or adam");
  schema["optimizer"]["choices"] = {"sgd", "adam"};
  schema["cosine"] = option(true, "cosine decay of the learning rate over all steps");
  schema["clip_grad_norm"] =
      option(kFinetuneClipNorm, "global L2 norm gradients are clipped to (0: never)", 0, 1e12);
  schema["shift"] =
      option(kFinetuneShift, "augmentation: images moved by up to this many pixels", 0, 64);
}

FinetuneOptions finetune_options(const Context& c) {
  FinetuneOptions o;
  o.epochs = static_cast<int>(get_int(c.params, "epochs"));
  o.lr = get_double(c.params, "lr");
  o.batch = get_int(c.params, "batch");
  o.optimizer = parse_optimizer(c.params.at("optimizer").get<std::string>());
  o.cosine_decay = c.params.at("cosine").get<bool>();
  o.clip_grad_norm = get_double(c.params, "clip_grad_norm");
  o.shift = static_cast<int>(get_int(c.params, "shift"));
  o.holdout = get_double(c.params, "holdout");
  o.seed = c.options.seed;
  o.eval_batch = c.options.eval_batch;
  o.progress = c.options.train_progress;
  return o;
}

nlohmann::json finetune_figures(const FinetuneRun& run) {
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : run.epochs) {
    epochs.push_back({{"epoch", e.epoch},
                      {"loss", e.loss},
                      {"train_accuracy", e.train_accuracy},
                      {"holdout_accuracy", e.holdout_accuracy},
                      {"asr", e.asr ? nlohmann::json(*e.asr) : nlohmann::json()}});
  }
  return {{"epochs_run", run.epochs.size()},
          {"best_epoch", run.best_epoch},
          {"diverged_epoch",
           run.diverged_epoch ? nlohmann::json(run.diverged_epoch) : nlohmann::json()},
          {"epochs", epochs}};
}

nlohmann::json finetune_schema() {
  nlohmann::json s = nlohmann::json::object();
  add_finetune_options(s, kFinetuneEpochs, kFinetuneLr, kFinetuneBatch);
  return s;
}

void run_finetune(const Context& c, DefenseResult& r) {
  c.stage("fine-tuning");
  FinetuneRun run = finetune_in_memory(r.model, c.split.train, c.split.holdout, c.poisoned(),
                                       finetune_options(c));
  r.figures = finetune_figures(run);
}

}  // namespace bdguard::defense
