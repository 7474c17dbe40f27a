// The defenses of defend.h, one file each in this folder, and what they share.
//
// A method is a row of the table in registry.cpp: its name, its source, its options
// (a JSON object {"KEY": {"default": V, "help": "...", "min": ..., "max": ...}}) and a
// runner. The runner gets the BadNet, the data, the options completed with their
// defaults, and the validation split; it sets result.model (a copy of the BadNet,
// changed) and result.figures. The registry measures before and after and times it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "bdguard/defend.h"
#include "bdguard/finetune.h"
#include "bdguard/prune.h"

namespace bdguard::defense {

struct Context {
  const Model& badnet;
  const DefenseData& data;
  const DefenseOptions& options;
  const nlohmann::json& params;  // every option of the method, defaults filled in
  const ValidationSplit& split;  // the clean validation data, train and held-out parts
  const TensorData* poisoned() const { return data.poisoned ? &*data.poisoned : nullptr; }
  void stage(const std::string& name) const {
    if (options.stage) options.stage(name);
  }
};

using Runner = void (*)(const Context&, DefenseResult&);

// Options of a method: {"KEY": {"default": V, "help": H}}, and with min / max.
nlohmann::json option(const nlohmann::json& value, const std::string& help);
nlohmann::json option(const nlohmann::json& value, const std::string& help, double min, double max);
// The "keep" option of the methods that train in rounds or epochs: "last" (the last
// one's weights) or "best" (the best held-out accuracy's), `value` by default.
nlohmann::json keep_option(const std::string& value, const std::string& help);

// The fine-tuning options every training method shares (epochs, lr, batch, optimizer,
// cosine, clip_grad_norm, shift, select, proxy_slack), with the given defaults, added
// to `schema`.
void add_finetune_options(nlohmann::json& schema, int epochs, double lr, int64_t batch);
// "select" (proxy or accuracy: how the epoch kept is chosen, EpochKeeper) and
// "proxy_slack", added to `schema`.
void add_select_options(nlohmann::json& schema);
// The proxy ASR on the held-out part with `nc`'s proxy triggers (repair.h), for
// FinetuneOptions::proxy; empty without `nc`, without a trigger, or with select
// "accuracy". `nc` must outlive the function.
std::function<double(const Model&)> proxy_of(const Context& c, const NeuralCleanseResult* nc);
// Those options as FinetuneOptions (seed and eval batch from the context), the proxy
// from `nc` (the given Neural Cleanse result, or the method's own).
FinetuneOptions finetune_options(const Context& c, const NeuralCleanseResult* nc);
// Fine-tunes `m` as finetune does (best held-out epoch kept), returning the figures:
// epochs run, best epoch, held-out accuracy per epoch.
nlohmann::json finetune_figures(const FinetuneRun& run);

// "tune" (proxy or off) and "tune_max_drop", for a method whose `key` is chosen per model
// among `values` (defend.h: TunedSetting), added to `schema`.
void add_tune_options(nlohmann::json& schema, const std::string& key,
                      const std::vector<double>& values);
// Runs `run` once per value of `key` (unless tune is off, `given` (the user's options)
// sets `key`, or there is no held-out data or proxy: then once, as it is) and keeps the
// run pick_tuned chooses; figures["tuning"] records every trial.
void run_tuned(const Context& c, DefenseResult& r, Runner run, const std::string& key,
               const std::vector<double>& values, const nlohmann::json& given);

int64_t get_int(const nlohmann::json& params, const char* key);
double get_double(const nlohmann::json& params, const char* key);

// The methods.
nlohmann::json finetune_schema();
void run_finetune(const Context& c, DefenseResult& r);
nlohmann::json fine_pruning_schema();
void run_fine_pruning(const Context& c, DefenseResult& r);
nlohmann::json nc_unlearn_schema();
void run_nc_unlearn(const Context& c, DefenseResult& r);
nlohmann::json clp_schema();
void run_clp(const Context& c, DefenseResult& r);
nlohmann::json anp_schema();
void run_anp(const Context& c, DefenseResult& r);
// clp's upper bound of each output channel's Lipschitz constant.
std::vector<double> channel_lipschitz(const Model& m, const ChannelUnit& u);
nlohmann::json nad_schema();
void run_nad(const Context& c, DefenseResult& r);
nlohmann::json i_bau_schema();
void run_i_bau(const Context& c, DefenseResult& r);
nlohmann::json sau_schema();
void run_sau(const Context& c, DefenseResult& r);
nlohmann::json ft_sam_schema();
void run_ft_sam(const Context& c, DefenseResult& r);
nlohmann::json fst_schema();
void run_fst(const Context& c, DefenseResult& r);

}  // namespace bdguard::defense
