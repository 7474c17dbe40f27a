// finetune: plain fine-tuning on the clean data, and the fine-tuning options every
// training method shares.
#include "bdguard/finetune.h"

#include "bdguard/prune.h"
#include "bdguard/repair.h"
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
  add_select_options(schema);
}

void add_select_options(nlohmann::json& schema) {
  schema["select"] = option("proxy",
                            "the epoch kept: proxy (the lowest proxy ASR within proxy_slack "
                            "points of the best held-out accuracy, where compare, repair or "
                            "defend give a proxy of the attack; else as accuracy) or accuracy "
                            "(the best held-out accuracy)");
  schema["select"]["choices"] = {"proxy", "accuracy"};
  schema["proxy_slack"] = option(kProxySlack,
                                 "select proxy: points of held-out accuracy an epoch may lose "
                                 "against the best for a lower proxy ASR",
                                 0, 100);
}

std::function<double(const Model&)> proxy_of(const Context& c, const NeuralCleanseResult* nc) {
  if (!nc || c.params.value("select", std::string("accuracy")) != "proxy") return {};
  std::vector<const LabelTrigger*> triggers = proxy_triggers(*nc);
  if (triggers.empty()) return {};
  const TensorData* holdout = &c.split.holdout;
  const int64_t batch = c.options.eval_batch;
  return [triggers, holdout, batch](const Model& m) {
    return proxy_asr(m, triggers, *holdout, batch);
  };
}

FinetuneOptions finetune_options(const Context& c, const NeuralCleanseResult* nc) {
  FinetuneOptions o;
  o.proxy = proxy_of(c, nc);
  o.proxy_slack = get_double(c.params, "proxy_slack");
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
  const nlohmann::json epochs = to_json(run.epochs);
  return {{"epochs_run", run.epochs.size()},
          {"best_epoch", run.best_epoch},
          {"kept_by", run.proxy_asr ? "proxy" : "accuracy"},
          {"holdout_accuracy", run.holdout_accuracy},
          {"proxy_asr", run.proxy_asr ? nlohmann::json(*run.proxy_asr) : nlohmann::json()},
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
                                       finetune_options(c, c.data.neural_cleanse));
  r.figures = finetune_figures(run);
}

}  // namespace bdguard::defense
